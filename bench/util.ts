// Helpers shared by the benchmarks: flag parsing, median timing, aligned tables, peak RSS, and running a
// python3-torch reference script that answers with one JSON object on stdout.
import { spawn, spawnSync, type ChildProcessByStdio } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { activeAllocator } from '../src/runtime/allocator.js';

/**
 * Debian's interpreter, named explicitly: the `python3` first on PATH may be a pyenv or venv without torch, and
 * the point of the reference is the system python3-torch, which wraps the same libtorch 1.13 the addon links.
 */
export const SYSTEM_PYTHON = process.env.NANOGPT_BENCH_PYTHON ?? '/usr/bin/python3';

/** bench/python/ in the source tree. Compiled code runs from dist/bench/, so go back up to the repository root. */
export function pythonScript(name: string): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const root = path.basename(path.dirname(here)) === 'dist' ? path.resolve(here, '..', '..') : path.resolve(here, '..');
  return path.join(root, 'bench', 'python', name);
}

export type Flags = Map<string, string | true>;

/** Bad flags: main.ts prints the message alone (no stack) and exits 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** `--key value`, `--key=value` and bare `--switch` (a following `--x` or nothing means a switch). */
export function parseFlags(args: readonly string[], known: readonly string[]): Flags {
  const flags: Flags = new Map();
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (!a.startsWith('--')) throw new UsageError(`unexpected argument '${a}' (flags: ${known.map((k) => `--${k}`).join(', ')})`);
    const eq = a.indexOf('=');
    const key = eq >= 0 ? a.slice(2, eq) : a.slice(2);
    if (!known.includes(key)) throw new UsageError(`unknown flag --${key} (flags: ${known.map((k) => `--${k}`).join(', ')})`);
    if (eq >= 0) flags.set(key, a.slice(eq + 1));
    else if (i + 1 < args.length && !args[i + 1]!.startsWith('--')) flags.set(key, args[++i]!);
    else flags.set(key, true);
  }
  return flags;
}

export function intFlag(flags: Flags, key: string): number | undefined {
  const v = flags.get(key);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v === true || !Number.isInteger(n) || n <= 0) throw new UsageError(`--${key} wants a positive integer, got '${v}'`);
  return n;
}

export function intListFlag(flags: Flags, key: string): number[] | undefined {
  const v = flags.get(key);
  if (v === undefined) return undefined;
  const out = v === true ? [] : v.split(',').map(Number);
  if (out.length === 0 || out.some((n) => !Number.isInteger(n) || n <= 0)) {
    throw new UsageError(`--${key} wants a comma-separated list of positive integers, got '${v}'`);
  }
  return out;
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export interface TimingPlan {
  warmup: number;
  minRuns: number;
  maxRuns: number;
  /** Stop adding runs past minRuns once this much time was spent timing, so a 4096³ fp32 matmul stays bounded. */
  budgetMs: number;
}

export interface Timing {
  medianMs: number;
  minMs: number;
  runs: number;
}

/**
 * Times `fn` after `warmup` untimed calls (first calls pay for allocation, oneDNN primitive creation, page
 * faults). The median, not the mean, is reported: on a shared machine a few runs are slowed by other processes,
 * and the median ignores them where the mean would not.
 */
export function timeRuns(fn: () => void, plan: TimingPlan): Timing {
  for (let i = 0; i < plan.warmup; i++) fn();
  const samples: number[] = [];
  const start = performance.now();
  while (samples.length < plan.maxRuns && (samples.length < plan.minRuns || performance.now() - start < plan.budgetMs)) {
    samples.push(timeOnceMs(fn));
  }
  return { medianMs: median(samples), minMs: Math.min(...samples), runs: samples.length };
}

/** Milliseconds one call of `fn` takes. */
export function timeOnceMs(fn: () => void): number {
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

/**
 * Per-call cost of a very cheap operation in µs, from one batch of `iters` calls. Timing a whole batch keeps
 * the clock's own cost (tens of ns) out of a figure that is only a few µs; callers take the median of batches.
 */
export function batchMicros(fn: () => void, iters: number): number {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < iters; i++) fn();
  return Number(process.hrtime.bigint() - t0) / 1e3 / iters;
}

/** A plain-text table with right-aligned columns (numbers line up), left-aligned first column. */
export function printTable(headers: readonly string[], rows: readonly (readonly string[])[]): void {
  const widths = headers.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? '').length)));
  const fmt = (r: readonly string[]) =>
    r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ');
  console.log(fmt(headers));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) console.log(fmt(r));
}

export function fixed(x: number | undefined, digits: number): string {
  return x === undefined || !Number.isFinite(x) ? '—' : x.toFixed(digits);
}

/** Peak resident set size of this process so far, in MiB (maxRSS is reported in KiB). */
export function peakRssMiB(): number {
  return process.resourceUsage().maxRSS / 1024;
}

/** What a benchmark prints first, so a pasted result says where it came from. */
export function machineLine(): string {
  const cpus = os.cpus();
  const model = cpus[0]?.model.trim() || 'unknown CPU';
  return `${model}, ${os.availableParallelism()} logical cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ` +
    `load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}, node ${process.version}, ${activeAllocator()}` +
    // Python children inherit LD_PRELOAD, so both sides of a comparison run on the same allocator.
    (/tcmalloc/.test(process.env.LD_PRELOAD ?? '') ? ' (LD_PRELOAD, python too)' : '');
}

export type PythonResult<T> = { ok: true; value: T } | { ok: false; reason: string };

/**
 * Runs a reference script under SYSTEM_PYTHON and parses the last line of its stdout as JSON. Never throws:
 * a missing interpreter or a missing torch module is a reason to print next to the figures, not a crash that
 * would lose our own measurements.
 */
export function runPythonJson<T>(script: string, args: readonly string[], timeoutMs = 30 * 60_000): PythonResult<T> {
  const r = spawnSync(SYSTEM_PYTHON, [script, ...args], { encoding: 'utf8', timeout: timeoutMs, maxBuffer: 16 << 20 });
  if (r.error) {
    const code = (r.error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { ok: false, reason: `${SYSTEM_PYTHON} not found (apt-get install -y python3 python3-torch)` };
    return { ok: false, reason: `${SYSTEM_PYTHON} ${path.basename(script)}: ${r.error.message}` };
  }
  const lines = r.stdout.trim().split('\n');
  const last = lines[lines.length - 1] ?? '';
  let parsed: unknown;
  try {
    parsed = JSON.parse(last);
  } catch {
    const err = r.stderr.trim().split('\n').slice(-3).join(' | ');
    return { ok: false, reason: `${path.basename(script)} exited ${r.status ?? r.signal} without a JSON result: ${err || last || '(no output)'}` };
  }
  if (parsed && typeof parsed === 'object' && 'error' in parsed) {
    return { ok: false, reason: String((parsed as { error: unknown }).error) };
  }
  return { ok: true, value: parsed as T };
}

/**
 * A reference script kept running under SYSTEM_PYTHON and asked one JSON line at a time (`--serve` mode), so a
 * benchmark can alternate its own runs with Python's. Alternating matters on a shared machine: when the two sides
 * run as separate phases, a compile starting halfway through lands on one side only and the ratio means nothing.
 */
export class PythonServer {
  #child: ChildProcessByStdio<Writable, Readable, Readable>;
  #lines: AsyncIterator<string>;
  #stderr = '';

  private constructor(child: ChildProcessByStdio<Writable, Readable, Readable>) {
    this.#child = child;
    this.#lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => {
      this.#stderr = (this.#stderr + d).slice(-2000);
    });
  }

  /**
   * Starts the script; its first line is an info object (or {"error"}). Never throws: a missing interpreter or
   * torch module comes back as a reason to print next to our own figures.
   */
  static async start<I>(script: string, args: readonly string[]): Promise<{ ok: true; server: PythonServer; info: I } | { ok: false; reason: string }> {
    const child = spawn(SYSTEM_PYTHON, [script, '--serve', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    const spawned = await new Promise<NodeJS.ErrnoException | null>((resolve) => {
      child.once('spawn', () => resolve(null));
      child.once('error', (e) => resolve(e));
    });
    if (spawned) {
      return { ok: false, reason: spawned.code === 'ENOENT'
        ? `${SYSTEM_PYTHON} not found (apt-get install -y python3 python3-torch)`
        : `${SYSTEM_PYTHON}: ${spawned.message}` };
    }
    const server = new PythonServer(child);
    try {
      const info = await server.#next<I>();
      return { ok: true, server, info };
    } catch (e) {
      server.close();
      return { ok: false, reason: (e as Error).message };
    }
  }

  async #next<T>(): Promise<T> {
    const r = await this.#lines.next();
    if (r.done) {
      const err = this.#stderr.trim().split('\n').slice(-3).join(' | ');
      throw new Error(`${SYSTEM_PYTHON} exited without answering${err ? `: ${err}` : ''}`);
    }
    const reply = JSON.parse(r.value) as T | { error: string };
    if (reply && typeof reply === 'object' && 'error' in reply) throw new Error(String(reply.error));
    return reply as T;
  }

  /** One request, one reply. Requests are strictly sequential: Python is idle while our side runs. */
  async ask<T>(request: object): Promise<T> {
    this.#child.stdin.write(JSON.stringify(request) + '\n');
    return this.#next<T>();
  }

  close(): void {
    this.#child.stdin.end();
  }
}
