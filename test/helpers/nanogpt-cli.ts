// Driving the real `bin/nanogpt` in child processes: tiny training runs and checks of how a command failed.
import * as assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { runNode, type ChildResult } from './children.js';

export const bin = fileURLToPath(new URL('../../../bin/nanogpt', import.meta.url));

/**
 * No tcmalloc re-exec: the process that trains is the one spawned, so its pid is the one a lock names and the one
 * a test kills. One thread, so parallel test files do not fight over the two cores.
 */
export const childEnv: NodeJS.ProcessEnv = { NANOGPT_ALLOCATOR: 'system', OMP_NUM_THREADS: '1' };

/** Flags for a tiny CPU training run over a corpus of vocabulary 64 (see writePatternCorpus). */
export function tinyTrainArgs(dataDir: string, outDir: string, extra: string[] = []): string[] {
  return [
    'train', `--data_dir=${dataDir}`, `--out_dir=${outDir}`, '--block_size=16', '--model.preset=gpt2-tiny', '--model.n_embd=32',
    '--model.vocab_size=64', '--trainer_config.batch_size=2', '--trainer_config.gradient_accumulation_steps=1',
    '--trainer_config.mixed_precision=fp32', '--trainer_config.max_iters=2', '--trainer_config.eval_interval=1',
    '--trainer_config.eval_iters=1', '--trainer_config.warmup_iters=1', '--trainer_config.lr_decay_iters=2', '--threads=1',
    ...extra,
  ];
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

/** Exit 2, the message matches, no stack trace, no "internal error". */
export function assertUserError(r: ChildResult, pattern: RegExp): void {
  assert.equal(r.code, 2, `exit code ${r.code} (signal ${r.signal}); stderr:\n${r.stderr}`);
  assert.match(r.stderr, pattern);
  assert.doesNotMatch(r.stderr, /internal error/);
  assert.doesNotMatch(r.stderr, /\n\s+at .*:\d+:\d+/, 'no stack trace');
}
