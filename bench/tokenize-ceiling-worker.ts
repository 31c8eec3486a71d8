/**
 * One thread of `bench tokenize`'s ceiling measurement: tokenizes the same in-memory texts as its siblings, with no
 * reading, writing or messaging per batch, so the only thing the threads share is the machine. Warms up (JIT, memo)
 * first, waits at a barrier so every thread times the same stretch of wall-clock time, then reports its wall and
 * its own CPU time (from /proc/thread-self/stat on Linux).
 */
import { readFileSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { Gpt2Tokenizer } from '../src/data/tokenizer.js';

export interface CeilingJob {
  texts: string[];
  passes: number;
  /** Int32Array over a SharedArrayBuffer: [threads ready]. */
  barrier: Int32Array;
  threads: number;
}
export interface CeilingResult {
  wallMs: number;
  /** This thread's CPU time over the timed passes, or undefined where /proc/thread-self is missing. */
  cpuMs: number | undefined;
}

function threadCpuMs(): number | undefined {
  try {
    const stat = readFileSync('/proc/thread-self/stat', 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // utime + stime, in USER_HZ (100 on Linux)
  } catch {
    return undefined;
  }
}

const job = workerData as CeilingJob;
const tok = await Gpt2Tokenizer.open();
try {
  tok.encodeDocuments(job.texts);
  tok.encodeDocuments(job.texts);
  // Barrier: the last thread to arrive wakes the others.
  if (Atomics.add(job.barrier, 0, 1) + 1 === job.threads) Atomics.notify(job.barrier, 0);
  else while (Atomics.load(job.barrier, 0) < job.threads) Atomics.wait(job.barrier, 0, Atomics.load(job.barrier, 0), 100);
  const cpu0 = threadCpuMs();
  const t0 = performance.now();
  for (let p = 0; p < job.passes; p++) tok.encodeDocuments(job.texts);
  const wallMs = performance.now() - t0;
  const cpu1 = threadCpuMs();
  const result: CeilingResult = { wallMs, cpuMs: cpu0 !== undefined && cpu1 !== undefined ? cpu1 - cpu0 : undefined };
  parentPort!.postMessage(result);
} finally {
  tok.free();
}
