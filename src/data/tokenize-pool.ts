import { Worker } from 'node:worker_threads';
import { compileBpeModule } from './bpe-wasm.js';
import type { EncodedBatch } from './tokenizer.js';

export type WorkerRequest =
  | { type: 'init'; bpeModule: WebAssembly.Module }
  | { type: 'encode'; id: number; texts: string[] }
  | { type: 'close' };
export type WorkerReply = { id: number; tokens: Uint16Array; counts: Uint32Array } | { id: number; error: string };

interface Slot {
  worker: Worker;
  exited: boolean;
  pending: Map<number, { resolve: (b: EncodedBatch) => void; reject: (e: Error) => void }>;
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
        if ('error' in reply) p.reject(new Error(`tokenizer worker failed: ${reply.error}`));
        else p.resolve({ tokens: reply.tokens, counts: reply.counts });
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

  encode(texts: string[]): Promise<EncodedBatch> {
    if (this.failure) return Promise.reject(this.failure);
    let best = this.slots[0]!;
    for (const s of this.slots) if (s.pending.size < best.pending.size) best = s;
    const id = this.nextId++;
    return new Promise<EncodedBatch>((resolve, reject) => {
      best.pending.set(id, { resolve, reject });
      const req: WorkerRequest = { type: 'encode', id, texts };
      best.worker.postMessage(req);
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
