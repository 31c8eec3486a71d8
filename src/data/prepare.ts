import { promises as fs } from 'node:fs';
import { availableParallelism } from 'node:os';
import * as path from 'node:path';
import { removeStaleTemps, writeBufferAtomic } from '../io/atomic.js';
import { DirLock } from '../io/dir-lock.js';
import { UserError } from '../util/errors.js';
import { BinWriter } from './bin-writer.js';
import { buildMeta, serializeMeta, type PrepareMeta } from './meta.js';
import type { DocumentSource } from './source.js';
import { DEFAULT_SPLIT_SEED, DEFAULT_VAL_FRACTION, StreamingSplitter, type SplitName } from './split.js';
import { TokenizePool, type TokenizedBatch } from './tokenize-pool.js';

/** Where `nanogpt prepare` and `nanogpt download` put the files unless told otherwise. */
export const DEFAULT_OUT_DIR = 'data';

/** Text per batch sent to a worker: big enough to amortise messaging, small enough to balance workers. */
const DEFAULT_BATCH_BYTES = 256 * 1024;
/**
 * Batches in flight per worker. Results are written in order, so a slow batch at the head holds back submissions;
 * with 2 per worker a 2-worker run over 6 copies of the embedded corpus left one worker idle 105 ms of 3.2 s
 * waiting for work, with 4 about 20 ms, with 8 none. Memory stays a few MB (batches are ~256 KB of text).
 */
const BATCHES_PER_WORKER = 4;
/**
 * Text in flight per worker beyond which prepare waits (it always keeps at least one batch going). Only Parquet row
 * groups come near it: a row group is one batch however large (reading part of one would decompress all of it),
 * and Hub datasets' row groups can be ~100 MB of text.
 */
const INFLIGHT_BYTES_PER_WORKER = 128 * 1024 * 1024;
/** A batch also closes at this many documents, so corpora of tiny documents still stream. */
const MAX_BATCH_DOCS = 4096;

export interface PrepareProgress {
  documents: number;
  /** UTF-8 bytes of text tokenized and written so far. */
  bytes: number;
  tokens: number;
  elapsedS: number;
  estimatedBytes?: number;
  estimatedDocuments?: number;
  done: boolean;
}

export interface PrepareOptions {
  source: DocumentSource;
  /** Directory for train.bin, val.bin, meta.json (created if missing). Default: DEFAULT_OUT_DIR. */
  outDir?: string;
  /** Worker threads for tokenizing. Default: os.availableParallelism(). The output does not depend on it. */
  workers?: number;
  valFraction?: number;
  seed?: number;
  /** Called after each written batch and once at the end (done: true). */
  onProgress?: (p: PrepareProgress) => void;
  /** Aborting stops the run; temp files are removed and nothing appears under the final names. */
  signal?: AbortSignal;
  /** Notes for the user (a stale lock or temp files of a killed run removed). */
  log?: (line: string) => void;
  /** Test hook: text per worker batch. */
  batchBytes?: number;
}

export interface PrepareResult {
  meta: PrepareMeta;
  files: { train: string; val: string; meta: string };
  elapsedS: number;
  /** UTF-8 bytes of text tokenized. */
  bytes: number;
}

/**
 * Tokenizes a document source into train.bin / val.bin / meta.json.
 *
 * Streaming with bounded memory: documents are read in order, grouped into batches, tokenized on worker threads
 * (at most BATCHES_PER_WORKER batches per worker in flight) and written in submission order as results arrive, so
 * memory is a few batches regardless of corpus size, and the bytes do not depend on the worker count.
 */
export async function prepareDataset(opts: PrepareOptions): Promise<PrepareResult> {
  const started = performance.now();
  const outDir = opts.outDir ?? DEFAULT_OUT_DIR;
  const workers = opts.workers ?? availableParallelism();
  const valFraction = opts.valFraction ?? DEFAULT_VAL_FRACTION;
  const seed = opts.seed ?? DEFAULT_SPLIT_SEED;
  const batchBytes = opts.batchBytes ?? DEFAULT_BATCH_BYTES;
  if (!Number.isInteger(workers) || workers < 1) throw new UserError(`the worker count must be a positive integer, got ${workers}`);
  if (!Number.isInteger(seed)) throw new UserError(`the split seed must be an integer, got ${seed}`);
  opts.signal?.throwIfAborted();

  try {
    await fs.mkdir(outDir, { recursive: true });
  } catch (err) {
    throw new UserError(`cannot create the output directory ${outDir}: ${(err as Error).message}`, 'choose a writable --out_dir');
  }
  const finals = { train: path.join(outDir, 'train.bin'), val: path.join(outDir, 'val.bin'), meta: path.join(outDir, 'meta.json') };
  // One prepare per directory at a time (two would replace each other's files), and what a killed one left (its
  // temp files: `.train.bin.<pid>.<rand>.tmp`…) is removed while we hold the lock.
  const startedAt = Date.now();
  const lock = DirLock.acquire(outDir, 'nanogpt prepare', opts.log);
  let writers: Record<SplitName, BinWriter>;
  try {
    const removed = await removeStaleTemps(outDir, Object.values(finals).map((f) => path.basename(f)), { olderThanMs: startedAt, locked: true });
    for (const f of removed) opts.log?.(`removed ${f}, left by an interrupted prepare`);
    const train = await BinWriter.open(finals.train);
    try {
      writers = { train, val: await BinWriter.open(finals.val) };
    } catch (err) {
      await train.abort();
      throw err;
    }
  } catch (err) {
    lock.release();
    throw err;
  }
  const docs = { train: 0, val: 0 };
  let flushes: Promise<void>[] = [];
  const splitter = new StreamingSplitter<Uint16Array>(valFraction, seed, (split, tokens) => {
    docs[split]++;
    const f = writers[split].append(tokens);
    if (f) flushes.push(f);
  });

  const pool = new TokenizePool(workers);
  let ok = false;
  let bytes = 0;
  const progress = (done: boolean): void =>
    opts.onProgress?.({
      documents: splitter.documents,
      bytes,
      tokens: writers.train.tokens + writers.val.tokens,
      elapsedS: (performance.now() - started) / 1000,
      estimatedBytes: opts.source.estimatedBytes,
      estimatedDocuments: opts.source.estimatedDocuments,
      done,
    });

  try {
    const inflight: { result: Promise<TokenizedBatch>; estimatedBytes: number }[] = [];
    let inflightBytes = 0;
    // Results are consumed strictly in submission order: that, not worker timing, decides file order.
    const drainOne = async (): Promise<void> => {
      const head = inflight.shift()!;
      inflightBytes -= head.estimatedBytes;
      const { tokens, counts, bytes: batchBytes } = await head.result;
      let at = 0;
      for (const n of counts) {
        splitter.push(tokens.subarray(at, at + n));
        at += n;
      }
      bytes += batchBytes;
      const pending = flushes;
      flushes = [];
      await Promise.all(pending); // backpressure: never run ahead of the disk
      progress(false);
    };
    /** Queues a batch, then waits while too much is in flight (by count, or by text for large Parquet row groups). */
    const enqueue = async (result: Promise<TokenizedBatch>, estimatedBytes: number): Promise<void> => {
      // Mark the promise handled now: it is awaited later in order, and a worker failure must not become an
      // unhandled rejection in between.
      result.catch(() => undefined);
      inflight.push({ result, estimatedBytes });
      inflightBytes += estimatedBytes;
      while (inflight.length >= BATCHES_PER_WORKER * workers || (inflight.length > 1 && inflightBytes > INFLIGHT_BYTES_PER_WORKER * workers)) {
        await drainOne();
      }
    };

    let texts: (string | Uint8Array)[] = [];
    let origins: string[] = [];
    let pendingBytes = 0;
    const submit = async (): Promise<void> => {
      const batch = pool.encode(texts, origins);
      const estimate = pendingBytes;
      texts = [];
      origins = [];
      pendingBytes = 0;
      await enqueue(batch, estimate);
    };

    for await (const unit of opts.source.units?.() ?? opts.source.documents()) {
      opts.signal?.throwIfAborted();
      if ('kind' in unit) {
        // A unit (Parquet row group, chunk of JSON lines): its documents come after those already gathered, and its
        // worker reads them itself.
        if (texts.length > 0) await submit();
        await enqueue(pool.encodeUnit(unit), unit.estimatedBytes);
        continue;
      }
      if (unit.utf8) {
        texts.push(unit.utf8);
        pendingBytes += unit.utf8.byteLength;
      } else {
        texts.push(unit.text);
        // UTF-16 length: close enough to size a batch (the worker counts the exact bytes), and free.
        pendingBytes += unit.text.length;
      }
      origins.push(unit.origin);
      if (pendingBytes >= batchBytes || texts.length >= MAX_BATCH_DOCS) await submit();
    }
    if (texts.length > 0) await submit();
    while (inflight.length > 0) {
      opts.signal?.throwIfAborted();
      await drainOne();
    }
    splitter.finish(opts.source.describe);
    await Promise.all(flushes);

    const train = await writers.train.finish();
    const val = await writers.val.finish();
    opts.signal?.throwIfAborted();
    const meta = buildMeta({
      source: opts.source,
      valFraction,
      seed,
      train: { file: 'train.bin', documents: docs.train, tokens: train.tokens, bytes: train.bytes, sha256: train.sha256 },
      val: { file: 'val.bin', documents: docs.val, tokens: val.tokens, bytes: val.bytes, sha256: val.sha256 },
    });
    // A stale meta.json must not vouch for a half-replaced pair of .bin files: remove it first, rename the
    // data, and write the new meta.json last. A reader that finds meta.json finds the files it describes.
    await fs.rm(finals.meta, { force: true });
    await writers.train.commit();
    await writers.val.commit();
    await writeBufferAtomic(finals.meta, serializeMeta(meta));
    ok = true;
    progress(true);
    return { meta, files: finals, elapsedS: (performance.now() - started) / 1000, bytes };
  } finally {
    if (ok) await pool.close();
    else {
      await pool.terminate();
      await Promise.all([writers.train.abort(), writers.val.abort()]);
    }
    lock.release();
  }
}
