// The main thread's handle on the model thread (engine-worker.ts): starts it, submits sequences, routes each
// step's tokens to the sequence's handlers, and cancels. Holds the bookkeeping the HTTP layer needs without asking
// the worker: how many sequences are in flight, batch statistics for /metrics.
import { Worker } from 'node:worker_threads';
import { UserError } from '../util/errors.js';
import type { FinishReason, FromWorker, ModelInfo, SequenceParams, ToWorker, WorkerData } from './protocol.js';

export interface SequenceHandlers {
  onToken(token: number): void;
  /** Called once, unless the sequence is cancelled first. */
  onFinish(reason: FinishReason, error?: string): void;
}

export interface EngineStats {
  steps: number;
  decodeRows: number;
  prefills: number;
  peakBatch: number;
  tokens: number;
  active: number;
  waiting: number;
  stepSeconds: number;
}

export class Engine {
  private readonly seqs = new Map<number, SequenceHandlers>();
  private nextId = 1;
  private dead: string | undefined;
  private closed: Promise<void> | undefined;
  readonly stats: EngineStats = { steps: 0, decodeRows: 0, prefills: 0, peakBatch: 0, tokens: 0, active: 0, waiting: 0, stepSeconds: 0 };

  private constructor(
    private readonly worker: Worker,
    readonly info: ModelInfo,
  ) {
    worker.on('message', (m: FromWorker) => this.onMessage(m));
    worker.on('error', (err) => this.fail(`the model thread failed: ${err.message}`));
    worker.on('exit', () => this.fail('the model thread exited'));
  }

  /** Starts the model thread and resolves once the model is loaded (a UserError when the weights are unusable). */
  static start(data: WorkerData): Promise<Engine> {
    const worker = new Worker(new URL('./engine-worker.js', import.meta.url), { workerData: data });
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      const onExit = (code: number): void => reject(new Error(`the model thread exited with code ${code} while loading`));
      worker.once('error', onError);
      worker.once('exit', onExit);
      worker.once('message', (m: FromWorker) => {
        worker.off('error', onError);
        worker.off('exit', onExit);
        if (m.type === 'ready') resolve(new Engine(worker, m.info));
        else if (m.type === 'load-error') {
          void worker.terminate();
          if (m.userError) reject(new UserError(m.problem, m.fix));
          else reject(Object.assign(new Error(m.problem), { stack: m.stack }));
        } else reject(new Error(`unexpected first message from the model thread: ${m.type}`));
      });
    });
  }

  /** Sequences submitted and not yet finished or cancelled. */
  get inFlight(): number {
    return this.seqs.size;
  }

  /** Why the engine can no longer serve, or undefined while it can. */
  get failure(): string | undefined {
    return this.dead;
  }

  submit(params: SequenceParams, handlers: SequenceHandlers): number {
    const id = this.nextId++;
    if (this.dead) {
      queueMicrotask(() => handlers.onFinish('error', this.dead));
      return id;
    }
    this.seqs.set(id, handlers);
    this.post({ type: 'submit', id, params });
    return id;
  }

  /** Stops a sequence: no more callbacks; the worker frees its slot and cache before its next step. */
  cancel(id: number): void {
    if (this.seqs.delete(id) && !this.dead) this.post({ type: 'cancel', id });
  }

  /** Cancels everything and stops the model thread (waits up to `timeoutMs` for it to free the model). */
  close(timeoutMs = 5000): Promise<void> {
    this.closed ??= new Promise<void>((resolve) => {
      // Whoever still waits on a sequence hears that it ended (a complete() in flight rejects instead of hanging).
      const waiting = [...this.seqs.values()];
      this.seqs.clear();
      for (const h of waiting) h.onFinish('error', 'the model was closed');
      if (this.dead) return resolve();
      const timer = setTimeout(() => void this.worker.terminate().then(() => resolve()), timeoutMs);
      this.worker.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      this.post({ type: 'shutdown' });
    });
    return this.closed;
  }

  private post(m: ToWorker): void {
    this.worker.postMessage(m);
  }

  private onMessage(m: FromWorker): void {
    const s = this.stats;
    if (m.type === 'state') {
      s.active = m.active;
      s.waiting = m.waiting;
    }
    if (m.type !== 'step') return;
    s.steps++;
    s.decodeRows += m.decodeRows;
    s.prefills += m.prefills;
    s.peakBatch = Math.max(s.peakBatch, m.decodeRows);
    s.tokens += m.tokens.length;
    s.active = m.active;
    s.waiting = m.waiting;
    s.stepSeconds += m.ms / 1000;
    for (const [id, token] of m.tokens) this.seqs.get(id)?.onToken(token);
    for (const f of m.finished) {
      const h = this.seqs.get(f.id);
      if (!h) continue;
      this.seqs.delete(f.id);
      h.onFinish(f.reason, f.error);
    }
  }

  private fail(why: string): void {
    if (this.dead) return;
    this.dead = this.closed ? 'the server is shutting down' : why;
    const handlers = [...this.seqs.values()];
    this.seqs.clear();
    for (const h of handlers) h.onFinish('error', this.dead);
  }
}
