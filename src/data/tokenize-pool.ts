import { Worker } from 'node:worker_threads';
import { compileBpeModule } from './bpe-wasm.js';
import type { WorkerUnit } from './source.js';
import type { EncodedBatch } from './tokenizer.js';
import { UserError } from '../util/errors.js';

export type WorkerRequest =
  | { type: 'init'; bpeModule: WebAssembly.Module }
  /** Documents as text or UTF-8 bytes (decoded and checked in the worker); origins name them in errors. */
  | { type: 'encode'; id: number; texts: (string | Uint8Array)[]; origins: string[] }
  /** Documents the worker reads itself: a Parquet row group, a chunk of JSON lines. */
  | { type: 'encode-unit'; id: number; unit: WorkerUnit }
  | { type: 'close' };
export type WorkerReply =
  /** `bytes`: UTF-8 bytes of the batch's text, counted by the worker (the main thread may only have estimated). */
  | { id: number; tokens: Uint16Array; counts: Uint32Array; bytes: number }
  /** `problem`/`fix`: the worker's error was a UserError (bad input), rebuilt as one on this side. */
  | { id: number; error: string; problem?: string; fix?: string };

/**
 * `bytes` ready to post, and the buffer to transfer with them: their own when they own all of it (and it is not
 * already being moved), else a copy's (a view into a shared buffer, such as Node's small-Buffer pool, must not be
 * detached). Either way the message carries no second copy.
 */
function movable(bytes: Uint8Array, moving: readonly ArrayBuffer[] = []): [Uint8Array, ArrayBuffer[]] {
  const buffer = bytes.buffer;
  const owned = buffer instanceof ArrayBuffer && bytes.byteOffset === 0 && bytes.byteLength === buffer.byteLength && !moving.includes(buffer);
  // new Uint8Array copies; bytes.slice() would not for a Buffer (Buffer#slice is a view), and moving that view
  // would detach the memory it shares.
  const sent = owned ? bytes : new Uint8Array(bytes);
  return [sent, [sent.buffer as ArrayBuffer]];
}

/** A batch's tokens, EOT after each document, with its UTF-8 byte count. */
export interface TokenizedBatch extends EncodedBatch {
  bytes: number;
}

interface Slot {
  worker: Worker;
  exited: boolean;
  pending: Map<number, { resolve: (b: TokenizedBatch) => void; reject: (e: Error) => void }>;
}

/**
 * A fixed set of worker threads, each with its own GPT-2 encoder. encode() hands a batch to the least-busy
 * worker; results may complete out of order, so callers that need order (prepare does) keep the promises in
 * submission order and await them first-in first-out.
 */
export class TokenizePool {
  private readonly slots: Slot[] = [];
  private nextId = 0;
  private failure: Error | undefined;

  constructor(readonly size: number) {
    if (!Number.isInteger(size) || size < 1) throw new Error(`TokenizePool size must be a positive integer, got ${size}`);
    // Compiled JS beside this file: workers cannot run TypeScript, and the URL keeps it independent of the cwd.
    const file = new URL('./tokenize-worker.js', import.meta.url);
    for (let i = 0; i < size; i++) {
      const slot: Slot = { worker: new Worker(file), exited: false, pending: new Map() };
      slot.worker.on('message', (reply: WorkerReply) => {
        const p = slot.pending.get(reply.id);
        if (!p) return;
        slot.pending.delete(reply.id);
        if (!('error' in reply)) p.resolve({ tokens: reply.tokens, counts: reply.counts, bytes: reply.bytes });
        else if (reply.problem !== undefined) p.reject(new UserError(reply.problem, reply.fix));
        else p.reject(new Error(`tokenizer worker failed: ${reply.error}`));
      });
      slot.worker.on('error', (err) => this.fail(slot, err));
      slot.worker.on('exit', (code) => {
        slot.exited = true;
        if (slot.pending.size > 0) this.fail(slot, new Error(`tokenizer worker exited with code ${code} while busy`));
      });
      this.slots.push(slot);
    }
    // Workers start booting now; the BPE module is compiled once here while they do, and shared (each worker
    // compiling its own cost ~220 ms of CPU more per worker, which on 2 cores is most of a small corpus's run).
    compileBpeModule().then(
      (bpeModule) => {
        for (const s of this.slots) s.worker.postMessage({ type: 'init', bpeModule } satisfies WorkerRequest);
      },
      (err: Error) => {
        const failure = new Error(`cannot load the GPT-2 tokenizer: ${err.message}`);
        for (const s of this.slots) this.fail(s, failure);
        void this.terminate();
      },
    );
  }

  /** Records the pool's first failure and rejects what `slot` still owed. */
  private fail(slot: Slot, err: Error): void {
    this.failure ??= err;
    for (const p of slot.pending.values()) p.reject(err);
    slot.pending.clear();
  }

  /**
   * Tokenizes a batch. UTF-8 byte documents are moved to the worker, not copied, when they own their whole buffer
   * (they are detached here afterwards); a view into a shared buffer (Node's small-Buffer pool) is copied.
   */
  encode(texts: (string | Uint8Array)[], origins: string[]): Promise<TokenizedBatch> {
    const transfer: ArrayBuffer[] = [];
    const sent = texts.map((t) => {
      if (typeof t === 'string') return t;
      const [bytes, moved] = movable(t, transfer);
      transfer.push(...moved);
      return bytes;
    });
    return this.send((id) => ({ type: 'encode', id, texts: sent, origins }), transfer);
  }

  /** Tokenizes the documents of a unit, which the worker reads itself; a chunk's bytes are moved as in encode(). */
  encodeUnit(unit: WorkerUnit): Promise<TokenizedBatch> {
    if (unit.kind !== 'jsonl-lines') return this.send((id) => ({ type: 'encode-unit', id, unit }), []);
    const [bytes, transfer] = movable(unit.bytes);
    return this.send((id) => ({ type: 'encode-unit', id, unit: { ...unit, bytes } }), transfer);
  }

  /** Sends a request to the least-busy worker; its reply settles the promise. */
  private send(request: (id: number) => WorkerRequest, transfer: ArrayBuffer[]): Promise<TokenizedBatch> {
    if (this.failure) return Promise.reject(this.failure);
    let best = this.slots[0]!;
    for (const s of this.slots) if (s.pending.size < best.pending.size) best = s;
    const id = this.nextId++;
    return new Promise<TokenizedBatch>((resolve, reject) => {
      best.pending.set(id, { resolve, reject });
      best.worker.postMessage(request(id), transfer);
    });
  }

  /** Asks every worker to free its encoder and exit; waits for them. */
  async close(): Promise<void> {
    await Promise.all(
      this.slots.map(
        (s) =>
          new Promise<void>((resolve) => {
            if (s.exited) return resolve();
            s.worker.once('exit', () => resolve());
            s.worker.postMessage({ type: 'close' } satisfies WorkerRequest);
            // A worker that does not exit promptly (wedged in a huge document) is stopped outright.
            const timer = setTimeout(() => void s.worker.terminate(), 5000);
            timer.unref();
          }),
      ),
    );
  }

  /** Stops the workers immediately (on error or abort). */
  async terminate(): Promise<void> {
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }
}
