/**
 * `npm run bench -- tokenize`: tokenizer throughput of `nanogpt prepare` on the embedded corpus with 1 and 2
 * worker threads (the whole pipeline: read, tokenize, split, write, hash), and the process's peak RSS.
 *
 * Two figures per worker count:
 * - one pass over the embedded corpus (10.8 MB), start-up included: what `nanogpt prepare` takes on it;
 * - `--passes N` (default 4) copies of the corpus streamed as one source, timed after the first copy: the rate a
 *   long run settles at, once workers are started and compiled. Later copies repeat the first one's text, so every
 *   piece is already in each worker's BPE memo: an upper bound for fresh text of a similar vocabulary.
 * Worker counts alternate run by run (1, 2, 1, 2, …) so machine noise hits both alike; the best of `--repeat` runs
 * (default 3) is reported.
 *
 * And the machine's own ceiling for the same worker counts: that many threads tokenizing the corpus from memory at
 * the same time, warm, with nothing else running (no reading, writing, messages or main-thread work). The pipeline's
 * scaling cannot beat it; on a VM whose cores share caches or a physical core, it is well under N×.
 * Options: --workers 1,2,4  --repeat N  --passes N.
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { prepareDataset } from '../src/data/prepare.js';
import { documentText } from '../src/data/document.js';
import type { DocumentSource } from '../src/data/source.js';
import { sotuSource } from '../src/data/sources/embedded.js';
import type { CeilingJob, CeilingResult } from './tokenize-ceiling-worker.js';
import { intFlag, intListFlag, parseFlags, peakRssMiB, UsageError } from './util.js';

/** Warm passes each ceiling thread times (~0.3-0.5 s each here). */
const CEILING_PASSES = 3;

/** `source` streamed `passes` times over, as one source. */
function repeated(source: DocumentSource, passes: number): DocumentSource {
  return {
    id: `${source.id}x${passes}`,
    describe: `${source.describe} ×${passes}`,
    estimatedBytes: (source.estimatedBytes ?? 0) * passes,
    async *documents() {
      for (let p = 0; p < passes; p++) yield* source.documents();
    },
  };
}

interface Run {
  /** MB/s over the whole run, start-up included. */
  total: number;
  /** MB/s after the first copy of the corpus had been written (multi-pass runs only). */
  steady?: number;
}

async function timeRun(source: DocumentSource, outDir: string, workers: number, firstCopyBytes?: number): Promise<Run> {
  let mark: { bytes: number; s: number } | undefined;
  const res = await prepareDataset({
    source,
    outDir,
    workers,
    onProgress: (p) => {
      if (firstCopyBytes !== undefined && !mark && p.bytes >= firstCopyBytes) mark = { bytes: p.bytes, s: p.elapsedS };
    },
  });
  const total = res.bytes / 1e6 / res.elapsedS;
  const steady = mark && res.elapsedS > mark.s ? (res.bytes - mark.bytes) / 1e6 / (res.elapsedS - mark.s) : undefined;
  return { total, steady };
}

/** `threads` threads tokenizing `texts` together: their combined MB/s and mean CPU ms per pass per thread. */
async function ceilingRun(texts: string[], bytes: number, threads: number, passes: number): Promise<{ mbps: number; cpuPerPass?: number }> {
  const barrier = new Int32Array(new SharedArrayBuffer(4));
  const file = new URL('./tokenize-ceiling-worker.js', import.meta.url);
  const results = await Promise.all(
    Array.from(
      { length: threads },
      () =>
        new Promise<CeilingResult>((resolve, reject) => {
          const job: CeilingJob = { texts, passes, barrier, threads };
          const w = new Worker(file, { workerData: job });
          w.once('message', resolve);
          w.once('error', reject);
          w.once('exit', (code) => code !== 0 && reject(new Error(`ceiling worker exited with code ${code}`)));
        }),
    ),
  );
  const slowest = Math.max(...results.map((r) => r.wallMs));
  const cpu = results.map((r) => r.cpuMs);
  const cpuPerPass = cpu.every((c) => c !== undefined) ? cpu.reduce((a, c) => a + c!, 0) / threads / passes : undefined;
  return { mbps: (threads * passes * bytes) / 1e6 / (slowest / 1000), cpuPerPass };
}

function report(label: string, best: Map<number, number>, counts: number[], noun = 'workers'): void {
  const base = best.get(counts[0]!)!;
  for (const w of counts) {
    const mbps = best.get(w)!;
    console.log(
      `${label} ${noun}=${w}: ${mbps.toFixed(2)} MB/s (${(mbps / w).toFixed(2)} MB/s per ${noun.replace(/s$/, '')}, ${(mbps / base).toFixed(2)}x vs ${counts[0]})`,
    );
  }
}

export async function run(args: string[]): Promise<void> {
  const flags = parseFlags(args, ['workers', 'repeat', 'passes']);
  const counts = intListFlag(flags, 'workers') ?? [1, 2];
  const repeat = intFlag(flags, 'repeat') ?? 3;
  const passes = intFlag(flags, 'passes') ?? 4;
  if (passes < 2) throw new UsageError('--passes wants an integer ≥ 2 (the first copy is not timed)');
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'nanogpt-bench-tokenize-'));
  try {
    const source = await sotuSource();
    const bytes = source.estimatedBytes ?? 0;
    console.log(`tokenize: ${source.describe}, ${(bytes / 1e6).toFixed(1)} MB, ${os.availableParallelism()} cores`);
    const long = repeated(source, passes);
    const single = new Map<number, number>();
    const steady = new Map<number, number>();
    for (let r = 0; r < repeat; r++) {
      for (const workers of counts) {
        const one = await timeRun(source, path.join(dir, `w${workers}`), workers);
        const many = await timeRun(long, path.join(dir, `w${workers}`), workers, bytes);
        single.set(workers, Math.max(single.get(workers) ?? 0, one.total));
        if (many.steady !== undefined) steady.set(workers, Math.max(steady.get(workers) ?? 0, many.steady));
        console.log(
          `  run ${r + 1} workers=${workers}: one pass ${one.total.toFixed(2)} MB/s; ×${passes} ${many.total.toFixed(2)} MB/s, ` +
            `after the first copy ${many.steady?.toFixed(2) ?? '-'} MB/s`,
        );
      }
    }
    const texts: string[] = [];
    for await (const doc of source.documents()) texts.push(documentText(doc));
    const ceiling = new Map<number, number>();
    const cpuPerPass = new Map<number, number>();
    for (let r = 0; r < repeat; r++) {
      for (const threads of counts) {
        const c = await ceilingRun(texts, bytes, threads, CEILING_PASSES);
        ceiling.set(threads, Math.max(ceiling.get(threads) ?? 0, c.mbps));
        if (c.cpuPerPass !== undefined) cpuPerPass.set(threads, Math.min(cpuPerPass.get(threads) ?? Infinity, c.cpuPerPass));
        console.log(
          `  ceiling run ${r + 1} threads=${threads}: ${c.mbps.toFixed(2)} MB/s` +
            (c.cpuPerPass !== undefined ? `, ${c.cpuPerPass.toFixed(0)} ms of CPU per pass per thread` : ''),
        );
      }
    }
    report('one pass (start-up included):', single, counts);
    if (steady.size === counts.length) report(`×${passes}, after the first copy:`, steady, counts);
    report(`ceiling (threads tokenizing from memory, warm, ${CEILING_PASSES} passes):`, ceiling, counts, 'threads');
    const base = cpuPerPass.get(counts[0]!);
    if (base !== undefined && cpuPerPass.size === counts.length) {
      for (const w of counts.slice(1)) {
        console.log(`ceiling threads=${w}: CPU per pass per thread ${(cpuPerPass.get(w)! / base).toFixed(2)}x that of ${counts[0]} (1.00 = no slowdown from running together)`);
      }
    }
    // The whole process's peak, worker threads included (they share it).
    console.log(`peak RSS: ${peakRssMiB().toFixed(0)} MiB`);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}
