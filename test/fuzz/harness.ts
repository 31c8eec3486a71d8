// The fuzz suite's runner: every case runs the real CLI in a fresh directory, as a user would, and must end with
// exit code 2 and a message that names what is wrong — never "internal error", a stack trace, a signal, a hang,
// an allocation driven by an unchecked header field, or a changed/half-written file.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

// Compiled to dist/test/fuzz/: the repository root is three levels up.
export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const bin = path.join(root, 'bin', 'nanogpt');

/** Valid files the cases start from (never modified: a case copies what it mutates into its own directory). */
export interface Fixtures {
  /** A tiny model checkpoint with GPT-2's vocabulary (so prompts tokenize). */
  ckpt: string;
  /** A snapshot written by a real tiny training run (vocab 64), and the data it trained on. */
  snapshot: string;
  dataDir: string;
  /** CLI overrides that train the tiny model on dataDir. */
  trainArgs: string[];
}

export interface FuzzCase {
  family: string;
  name: string;
  /** Writes the case's inputs into `dir` (its working directory) and returns the CLI arguments. */
  setup: (dir: string, fx: Fixtures) => string[];
  /** The message must match this: the file, field, key or flag at fault. */
  expect: RegExp;
  /** Extra environment for the command. */
  env?: Record<string, string>;
}

export interface Outcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
  stdout: string;
  ms: number;
  maxRssMiB: number | undefined;
  timedOut: boolean;
}

// A case that takes longer than this hangs (the slowest legitimate failure loads libtorch and one small file).
const CASE_TIMEOUT_MS = 60_000;
// Peak memory of any failing command: the tiny fixtures need ~300 MiB; an allocation sized by a lying header
// field (a 10^9-element tensor, a 10^6-layer model) goes far beyond.
export const MAX_RSS_MIB = 1500;

const timeBinary = '/usr/bin/time';
export const canMeasureMemory = existsSync(timeBinary);

export function run(args: string[], cwd: string, env: Record<string, string> = {}): Promise<Outcome> {
  const rssFile = path.join(cwd, '..', `${path.basename(cwd)}.rss`);
  const argv = canMeasureMemory ? [timeBinary, '-f', '%M', '-o', rssFile, process.execPath, bin, ...args] : [process.execPath, bin, ...args];
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(argv[0]!, argv.slice(1), {
      cwd,
      // The system allocator: no tcmalloc re-exec, one Node start per case instead of two (the failure paths
      // are the same either way).
      env: { ...process.env, OMP_NUM_THREADS: '1', NANOGPT_THREADS: '1', NANOGPT_ALLOCATOR: 'system', NO_COLOR: '1', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s.length + stdout.length < 1e6 ? s : ''));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s.length + stderr.length < 1e6 ? s : ''));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }, CASE_TIMEOUT_MS);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      let maxRssMiB: number | undefined;
      let exit = code;
      if (canMeasureMemory && existsSync(rssFile)) {
        const lines = readFileSync(rssFile, 'utf8').trim().split('\n');
        const kb = Number(lines.at(-1));
        if (Number.isFinite(kb)) maxRssMiB = kb / 1024;
        // GNU time exits with the command's code, and reports a signal as "Command terminated by signal N".
        const sig = /terminated by signal (\d+)/.exec(lines.join('\n'));
        if (sig) exit = 128 + Number(sig[1]);
        rmSync(rssFile, { force: true });
      }
      resolve({ code: exit, signal, stderr, stdout, ms: Date.now() - started, maxRssMiB, timedOut });
    });
  });
}

/** Content hash of every regular file under `dir` (symlinks by their target text, not followed). */
export function hashTree(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string): void => {
    for (const name of readdirSync(d)) {
      const p = path.join(d, name);
      const st = lstatSync(p);
      if (st.isDirectory()) walk(p);
      else if (st.isFile()) out.set(path.relative(dir, p), createHash('sha256').update(readFileSync(p)).digest('hex'));
      else out.set(path.relative(dir, p), st.isSymbolicLink() ? 'symlink' : 'special');
    }
  };
  walk(dir);
  return out;
}

/** What is wrong with an outcome, or [] when the case was handled as it must be. */
export function problems(c: FuzzCase, o: Outcome, before: Map<string, string>, after: Map<string, string>): string[] {
  const out: string[] = [];
  if (o.timedOut) out.push(`hung: killed after ${CASE_TIMEOUT_MS} ms`);
  else if (o.code !== 2) out.push(`exit ${o.code ?? o.signal} (want 2)`);
  if (/internal error/.test(o.stderr)) out.push('"internal error"');
  if (/^\s+at .+(:\d+:\d+\)?|\(native\))$/m.test(o.stderr)) out.push('stack trace');
  if (!c.expect.test(o.stderr)) out.push(`message does not match ${c.expect}`);
  if (o.maxRssMiB !== undefined && o.maxRssMiB > MAX_RSS_MIB) out.push(`peak memory ${o.maxRssMiB.toFixed(0)} MiB > ${MAX_RSS_MIB}`);
  for (const [file, hash] of before) {
    const now = after.get(file);
    if (now === undefined) out.push(`${file} was removed`);
    else if (now !== hash) out.push(`${file} was changed`);
  }
  for (const file of after.keys()) if (!before.has(file) && /\.tmp$|\.tmp\b/.test(file)) out.push(`temp file ${file} left behind`);
  return out;
}

export async function runCase(c: FuzzCase, fx: Fixtures, parent: string): Promise<{ outcome: Outcome; problems: string[] }> {
  const dir = mkdtempSync(path.join(parent, `${c.family}-`));
  const args = c.setup(dir, fx);
  const before = hashTree(dir);
  const outcome = await run(args, dir, c.env);
  const after = hashTree(dir);
  return { outcome, problems: problems(c, outcome, before, after) };
}
