// Continuous batching: the sequences being generated advance together, one forward pass per step; a sequence that
// finishes (or is cancelled) leaves at once and frees its slot, and a waiting one joins at the next step with its
// own prefill. Each sequence samples with its own settings and its own generator, so its tokens depend only on its
// prompt, settings and seed — not on which other sequences shared its steps (up to the float rounding of GEMMs
// with different row counts; see gpt/generate.ts).
//
// Synchronous by design: step() is one unit of native work. The caller (engine-worker.ts) yields to its event loop
// between steps, which is where submissions and cancellations arrive.
import * as torch from '../torch/index.js';
import { EOT_TOKEN } from '../gpt/config.js';
import type { GPT } from '../gpt/model.js';
import { sampleRng, sampleRows } from '../gpt/generate.js';
import { decodeRows, forwardRows, newRowCache, type RowCache } from '../gpt/row-decode.js';
import type { SamplerRng } from '../util/rng.js';

export interface SequenceParams {
  /** The context to continue, already cut to at most block_size tokens, never empty. */
  promptTokens: number[];
  /** Tokens to generate at most (≥ 1). */
  maxTokens: number;
  /** 0 is greedy. */
  temperature: number;
  /** Nucleus sampling in (0, 1]; undefined or 1 keeps every token. */
  topP?: number;
  /** The sequence draws from the generator seeded with (seed, sampleIndex), as `nanogpt sample` does. */
  seed: number;
  sampleIndex: number;
}

export type FinishReason = 'length' | 'stop' | 'error';

export interface StepReport {
  /** [sequence id, token] in the order chosen. */
  tokens: [number, number][];
  /** Sequences that ended in this step (not cancelled ones). */
  finished: { id: number; reason: FinishReason; error?: string }[];
  /** Rows in this step's batched decode (0 when the step only prefilled). */
  decodeRows: number;
  /** Sequences that joined in this step. */
  prefills: number;
}

interface Sequence {
  id: number;
  params: SequenceParams;
  rng: SamplerRng;
  /** Every token of the sequence so far (prompt and generated): needed to rebuild the cache when it slides. */
  context: number[];
  generated: number;
  cache: RowCache | undefined;
}

export interface SchedulerOptions {
  /** Most sequences decoded together; more wait in a first-come queue. */
  maxBatch: number;
  /** Run under bf16 autocast, with a bf16 cache. */
  bf16: boolean;
}

export class BatchScheduler {
  private readonly waiting: Sequence[] = [];
  private readonly active: Sequence[] = [];
  private readonly cacheDtype: torch.DType;

  constructor(
    private readonly model: GPT,
    private readonly opts: SchedulerOptions,
  ) {
    if (!Number.isInteger(opts.maxBatch) || opts.maxBatch < 1) throw new RangeError(`maxBatch must be a positive integer, got ${opts.maxBatch}`);
    model.eval();
    this.cacheDtype = opts.bf16 ? 'bfloat16' : model.transformer.wte.weight.dtype;
  }

  get waitingCount(): number {
    return this.waiting.length;
  }
  get activeCount(): number {
    return this.active.length;
  }
  hasWork(): boolean {
    return this.waiting.length > 0 || this.active.length > 0;
  }

  submit(id: number, params: SequenceParams): void {
    const { blockSize, vocabSize } = this.model.config;
    if (params.promptTokens.length === 0 || params.promptTokens.length > blockSize) throw new RangeError(`prompt of ${params.promptTokens.length} tokens: must be 1 to ${blockSize}`);
    if (params.promptTokens.some((t) => !Number.isInteger(t) || t < 0 || t >= vocabSize)) throw new RangeError(`prompt token outside the vocabulary of ${vocabSize}`);
    if (!Number.isInteger(params.maxTokens) || params.maxTokens < 1) throw new RangeError(`maxTokens must be ≥ 1, got ${params.maxTokens}`);
    this.waiting.push({ id, params, rng: sampleRng(params.seed, params.sampleIndex), context: [...params.promptTokens], generated: 0, cache: undefined });
  }

  /** Removes a sequence wherever it is and frees its cache now. Unknown ids (already finished) are ignored. */
  cancel(id: number): boolean {
    for (const list of [this.waiting, this.active]) {
      const i = list.findIndex((s) => s.id === id);
      if (i >= 0) {
        release(list[i]!);
        list.splice(i, 1);
        return true;
      }
    }
    return false;
  }

  /** Cancels everything (shutdown). */
  cancelAll(): void {
    for (const s of [...this.waiting, ...this.active]) release(s);
    this.waiting.length = 0;
    this.active.length = 0;
  }

  /**
   * One step: waiting sequences join while there is room (prefilled, equal-length prompts together, and their first
   * token sampled), then every sequence already running advances by one token in one batched forward pass.
   */
  step(): StepReport {
    const report: StepReport = { tokens: [], finished: [], decodeRows: 0, prefills: 0 };
    const precision = <T>(fn: () => T): T => (this.opts.bf16 ? torch.autocast(fn) : fn());
    const running = [...this.active];
    try {
      torch.noGrad(() => {
        // Join: as many waiting sequences as there are free slots, prompts of equal length prefilled together.
        const joining = this.waiting.splice(0, Math.max(0, this.opts.maxBatch - this.active.length));
        // Active from now on (so a failure below reports them), but they decode only from the next step: `running`
        // was taken before.
        this.active.push(...joining);
        const byLength = new Map<number, Sequence[]>();
        for (const s of joining) byLength.set(s.params.promptTokens.length, [...(byLength.get(s.params.promptTokens.length) ?? []), s]);
        for (const group of byLength.values()) {
          for (const s of group) {
            // Room for the prompt and every token fed back (the last one sampled is never fed), up to block_size.
            const { promptTokens, maxTokens } = s.params;
            s.cache = newRowCache(this.model, Math.min(this.model.config.blockSize, Math.max(1, promptTokens.length + maxTokens - 1)), this.cacheDtype);
          }
          const next = torch.scope(() => this.sample(precision(() => forwardRows(this.model, group.map((s) => s.params.promptTokens), group.map((s) => s.cache!))), group));
          report.prefills += group.length;
          group.forEach((s, i) => this.accept(s, next[i]!, report));
        }
        // Sequences at a full block_size window slide: the cache is rebuilt from the last block_size tokens (GPT-2's
        // positions are absolute), each step, as generateBatch does. Everyone else decodes together.
        const sliding = running.filter((s) => s.cache!.length >= s.cache!.capacity);
        const batch = running.filter((s) => s.cache!.length < s.cache!.capacity);
        for (const s of sliding) {
          release(s);
          s.cache = newRowCache(this.model, this.model.config.blockSize, this.cacheDtype);
          const [token] = torch.scope(() => this.sample(precision(() => forwardRows(this.model, [s.context.slice(-this.model.config.blockSize)], [s.cache!])), [s]));
          this.accept(s, token!, report);
        }
        if (batch.length > 0) {
          const next = torch.scope(() => {
            const logits = precision(() => decodeRows(this.model, batch.map((s) => s.context[s.context.length - 1]!), batch.map((s) => s.cache!)));
            return this.sample(logits, batch);
          });
          report.decodeRows = batch.length;
          batch.forEach((s, i) => this.accept(s, next[i]!, report));
        }
      });
    } catch (err) {
      // A failed step (e.g. NaN logits) fails the sequences in it, not the server.
      const message = err instanceof Error ? err.message : String(err);
      for (const s of [...this.active]) {
        if (!report.finished.some((f) => f.id === s.id)) report.finished.push({ id: s.id, reason: 'error', error: message });
        this.drop(s);
      }
    }
    return report;
  }

  /** Next token of each row (logits [B, 1, V], row b for seqs[b]), rows with the same settings sampled together. */
  private sample(logits: torch.Tensor, seqs: readonly Sequence[]): number[] {
    const out = new Array<number>(seqs.length);
    const groups = new Map<string, number[]>();
    seqs.forEach((s, b) => {
      const key = `${s.params.temperature}/${s.params.topP ?? 1}`;
      const g = groups.get(key);
      if (g) g.push(b);
      else groups.set(key, [b]);
    });
    for (const rows of groups.values()) {
      const first = seqs[rows[0]!]!.params;
      const sub = rows.length === seqs.length ? logits : logits.indexSelect(0, torch.tensor(Int32Array.from(rows), { dtype: 'int64', device: logits.device }));
      const picks = sampleRows(sub, { temperature: first.temperature, topP: first.topP }, rows.map((b) => seqs[b]!.rng));
      rows.forEach((b, i) => (out[b] = picks[i]!));
    }
    return out;
  }

  /** Records a sampled token: reported, or the sequence ends (end-of-text, or max tokens reached). */
  private accept(s: Sequence, token: number, report: StepReport): void {
    if (token === EOT_TOKEN) {
      report.finished.push({ id: s.id, reason: 'stop' });
      this.drop(s);
      return;
    }
    s.generated++;
    s.context.push(token);
    report.tokens.push([s.id, token]);
    if (s.generated >= s.params.maxTokens) {
      report.finished.push({ id: s.id, reason: 'length' });
      this.drop(s);
    }
  }

  private drop(s: Sequence): void {
    release(s);
    const i = this.active.indexOf(s);
    if (i >= 0) this.active.splice(i, 1);
  }
}

function release(s: Sequence): void {
  if (!s.cache) return;
  for (const l of s.cache.layers) {
    l?.k.dispose();
    l?.v.dispose();
  }
  s.cache = undefined;
}
