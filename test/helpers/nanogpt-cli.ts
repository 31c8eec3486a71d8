// Driving the real `bin/nanogpt` in child processes: tiny training runs and checks of how a command failed.
import * as assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runNode, type ChildResult } from './children.js';

export const bin = fileURLToPath(new URL('../../../bin/nanogpt', import.meta.url));

/**
 * No tcmalloc re-exec: the process that trains is the one spawned, so its pid is the one a lock names and the one
 * a test kills. One thread, so parallel test files do not fight over the two cores.
 */
export const childEnv: NodeJS.ProcessEnv = { NANOGPT_ALLOCATOR: 'system', OMP_NUM_THREADS: '1' };

/** Settings of a tiny fp32 CPU training run over a corpus of vocabulary 64 (see writePatternCorpus), by flag name. */
const TINY_RUN: Record<string, string | number> = {
  block_size: 16,
  'model.preset': 'gpt2-tiny',
  'model.n_embd': 32,
  'model.vocab_size': 64,
  'trainer_config.batch_size': 2,
  'trainer_config.gradient_accumulation_steps': 1,
  'trainer_config.mixed_precision': 'fp32',
  'trainer_config.max_iters': 2,
  'trainer_config.eval_interval': 1,
  'trainer_config.eval_iters': 1,
  'trainer_config.warmup_iters': 1,
  'trainer_config.lr_decay_iters': 2,
  threads: 1,
};

/**
 * `train` with the tiny run's flags; `settings` replace or add flags by name (each flag appears once), `extra`
 * comes last as given.
 */
export function tinyTrainArgs(dataDir: string, outDir: string, extra: string[] = [], settings: Record<string, string | number> = {}): string[] {
  const all = { data_dir: dataDir, out_dir: outDir, ...TINY_RUN, ...settings };
  return ['train', ...Object.entries(all).map(([k, v]) => `--${k}=${v}`), ...extra];
}

/** Runs `nanogpt ...args` to completion (killed after `timeoutMs`). */
export function nanogpt(args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number; cwd?: string } = {}): Promise<ChildResult> {
  return runNode([bin, ...args], { ...childEnv, ...opts.env }, opts.timeoutMs ?? 90_000, opts.cwd);
}

/** Starts `nanogpt ...args` and leaves it running; its stderr is collected in `output()`. */
export function startNanogpt(args: string[], env: NodeJS.ProcessEnv = {}): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [bin, ...args], { env: { ...process.env, ...childEnv, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return { child, output: () => stderr, exited };
}

/** Waits (bounded) until `file` exists. */
export async function waitForFile(file: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!existsSync(file)) {
    if (Date.now() > deadline) throw new Error(`${file} did not appear within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Waits (bounded) until `file` holds a complete first line (a file is created before its first write), and returns it. */
export async function waitForFirstLine(file: string, timeoutMs = 60_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
    if (text.includes('\n')) return text.slice(0, text.indexOf('\n'));
    if (Date.now() > deadline) throw new Error(`${file} had no complete line within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Exit 2, the message matches, no stack trace, no "internal error". */
export function assertUserError(r: { code: number | null; signal?: NodeJS.Signals | null; stderr: string }, pattern: RegExp | string): void {
  assert.equal(r.code, 2, `exit code ${r.code} (signal ${r.signal ?? null}); stderr:\n${r.stderr}`);
  if (typeof pattern === 'string') assert.ok(r.stderr.includes(pattern), `stderr lacks ${JSON.stringify(pattern)}:\n${r.stderr}`);
  else assert.match(r.stderr, pattern);
  assert.doesNotMatch(r.stderr, /internal error/);
  assert.doesNotMatch(r.stderr, /\n\s+at .*:\d+:\d+/, 'no stack trace');
}

/** Runs `nanogpt ...args` synchronously with one intra-op thread (killed after `timeoutMs`), for in-order checks. */
export function nanogptSync(args: readonly string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [bin, ...args], {
    cwd: opts.cwd,
    encoding: 'utf8',
    timeout: opts.timeoutMs ?? 60_000,
    env: { ...process.env, OMP_NUM_THREADS: '1', ...opts.env },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** sha256 of every file under `dir` (relative name → digest), to show a refused command changed nothing there. */
export function digestTree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  if (!existsSync(dir)) return out;
  const walk = (d: string): void => {
    for (const name of readdirSync(d).sort()) {
      const p = path.join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else out[path.relative(dir, p)] = createHash('sha256').update(readFileSync(p)).digest('hex');
    }
  };
  walk(dir);
  return out;
}
