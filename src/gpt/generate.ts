// Autoregressive text generation from a GPT: temperature, top-k and top-p (nucleus) sampling, greedy decoding,
// incremental decoding with the model's KV cache, and several samples decoded together as one batch.
//
// Semantics follow nanoGPT's generate(): the model always sees the last min(len, block_size) tokens of the
// sequence, with positions counted from the start of that window. The cache is only an optimisation: with or
// without it the same logits are computed (up to float rounding), so greedy decoding gives the same tokens.
//
// Each sample draws from its own seeded generator (seed, sample index), so its random draws depend on the seed and
// its index only, not on how many samples are decoded with it. The logits themselves can differ in their last bits
// with the batch size (GEMM kernels differ for 1 row and for several); in float32 that has not changed a token in
// our tests and benchmarks, in bf16 it occasionally flips a sampled token (docs/benchmarks.md, "generate").
import * as torch from '../torch/index.js';
import { SamplerRng } from '../util/rng.js';
import { UserError } from '../util/errors.js';
import { EOT_TOKEN } from './config.js';
import { GPT, type KVCache } from './model.js';

export interface GenerateOptions {
  /** How many tokens to generate (fewer when `stopAtEot` ends the text early). */
  maxNewTokens: number;
  /** Divides the logits before sampling; 0 means greedy (argmax), and then topK/topP/seed do not matter. */
  temperature: number;
  /** Sample only among the k most likely tokens. Undefined (or k ≥ vocab size) keeps all. */
  topK?: number;
  /** Sample only from the smallest set of most likely tokens whose probability reaches p, in (0, 1]. */
  topP?: number;
  /** Sample i draws from a generator seeded with (seed, firstSample + i). Default: a random seed. */
  seed?: number;
  /** Index of the first sample for seeding (to decode sample 2 of a set alone and get the same text). Default 0. */
  firstSample?: number;
  /** Stop when the model emits the end-of-text token; that token is then neither returned nor reported. */
  stopAtEot?: boolean;
  /** Incremental decoding with the KV cache (default). false recomputes the whole context for every token. */
  useCache?: boolean;
  /** Run the model under bf16 autocast (faster on CPUs with bf16 units; the KV cache is bf16 too). */
  bf16?: boolean;
  /** Called with each new token as soon as it is chosen (for streaming output), with the sample's index. */
  onToken?: (id: number, sample: number) => void;
}

/**
 * Sets every logit outside the k largest of its row (last dimension) to -Infinity. Exactly k survive, also when
 * values tie at the boundary (ties are broken by topk's order), so "top 200" never silently means 201.
 */
export function filterTopK(logits: torch.Tensor, k: number): torch.Tensor {
  if (!Number.isInteger(k) || k < 1) throw new RangeError(`top-k must be a positive integer, got ${k}`);
  const V = logits.size(-1);
  if (k >= V) return logits.clone();
  return torch.scope(() => {
    const { indices } = torch.topk(logits, k, -1);
    // true = removed; the k chosen positions are cleared to false.
    const removed = torch.ones(logits.shape, { dtype: 'bool', device: logits.device }).scatter(-1, indices, false);
    return logits.maskedFill(removed, -Infinity);
  });
}

/**
 * Nucleus filter: keeps, per row, the smallest set of most likely tokens whose total probability is ≥ p and sets
 * the rest to -Infinity. A token is kept when the probability of the tokens ranked above it is still < p, so the
 * most likely token always survives. p = 1 keeps everything (and skips the work: float rounding in the running
 * sum could otherwise drop a tail whose mass is below the last float32 step).
 */
export function filterTopP(logits: torch.Tensor, p: number): torch.Tensor {
  if (!(p > 0 && p <= 1)) throw new RangeError(`top-p must be in (0, 1], got ${p}`);
  if (p === 1) return logits.clone();
  return torch.scope(() => {
    const V = logits.size(-1);
    const last = logits.ndim - 1;
    const sorted = torch.sort(logits, -1, true);
    const probs = torch.softmax(sorted.values, -1, 'float32');
    const cum = probs.cumsum(-1);
    // Probability mass strictly above each rank: the cumulative sum shifted right by one. Taking it from `cum`
    // (rather than cum - probs) means the comparison at a boundary sees the very sum that reached p.
    const zeroShape = logits.shape;
    zeroShape[last] = 1;
    // The first rank gets -1, not 0: a p below float32's smallest value (1e-300) rounds to 0 in the comparison, and
    // 0 >= 0 would remove every token.
    const first = torch.full(zeroShape, -1, { device: logits.device });
    const above = V === 1 ? first : torch.cat([first, cum.narrow(-1, 0, V - 1)], -1);
    const removedSorted = above.ge(p);
    // Back from rank order to vocabulary order: sorting the permutation gives its inverse (rank of each token).
    const rank = torch.sort(sorted.indices, -1, false).indices;
    const removed = removedSorted.gather(-1, rank);
    return logits.maskedFill(removed, -Infinity);
  });
}

/** The generator of sample `index` under `seed` (distinct, well-mixed streams for neighbouring indices). */
export function sampleRng(seed: number, index: number): SamplerRng {
  return new SamplerRng((Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(index + 1, 0x85ebca6b)) >>> 0);
}

// Top-p looks at this many candidates first (see sampleRows).
const TOP_P_FIRST = 1024;

/**
 * Chooses the next token of each row of `logits` ([B, V] or [B, 1, V]): greedy when temperature is 0, else a draw
 * from the tempered, filtered softmax with that row's generator (rngs[b]). Same distribution as filterTopK then
 * filterTopP then softmax, computed on the k candidates only: with top-k, only [B, k] values and indices leave the
 * native side (a full [B, V] filter, softmax and copy per token cost ~8 ms per sample at GPT-2's vocabulary).
 */
export function sampleRows(logits: torch.Tensor, opts: Pick<GenerateOptions, 'temperature' | 'topK' | 'topP'>, rngs: readonly SamplerRng[]): number[] {
  return torch.scope(() => {
    const V = logits.size(-1);
    const rows = logits.reshape(-1, V).float();
    const B = rows.size(0);
    // Weights are checked when loaded, but finite weights can still overflow float32 on the way to the logits; a
    // NaN would otherwise become a silent garbage token (greedy argmax and the draw below both accept it).
    if (torch.nonFiniteCount(rows) > 0) {
      throw new UserError(
        'the model produced NaN or infinite logits: its weights are finite but too large for float32 arithmetic',
        'the checkpoint is unusable for sampling; use an earlier one (or one saved before training diverged)',
      );
    }
    if (opts.temperature === 0) return [...(rows.argmax(-1).toTypedArray() as BigInt64Array)].map(Number);
    // Shifted so each row's largest logit is 0 (softmax is unchanged), and divided in float64 when the temperature
    // is below float32's range: a tiny temperature (1e-300) then gives 0 and -Infinity, a one-hot choice, where
    // the plain division gave Infinity - Infinity = NaN and an arbitrary token.
    const shifted = rows.sub(rows.max(-1, true).values);
    const tempered = opts.temperature < 1e-30 ? shifted.to('float64').div(opts.temperature) : shifted.div(opts.temperature);
    // Candidates in descending order of probability when a filter needs the order, all V in vocabulary order else;
    // probs are theirs, as the filters define them: top-k renormalises over its k, top-p keeps the full softmax.
    let ids: torch.Tensor | null = null;
    let probs: torch.Tensor;
    const topP = opts.topP !== undefined && opts.topP < 1 ? opts.topP : undefined;
    if (opts.topK !== undefined && opts.topK < V) {
      const top = torch.topk(tempered, opts.topK, -1);
      ids = top.indices;
      probs = torch.softmax(top.values, -1, 'float32');
    } else if (topP !== undefined) {
      // Top-p needs its candidates in order, but seldom many: the TOP_P_FIRST most likely are enough when they hold
      // at least p of every row's mass (all ranked below are cut either way); else the full sort, which alone
      // costs ~90 ms at 16 rows of GPT-2's vocabulary.
      const full = torch.softmax(tempered, -1, 'float32');
      const first = torch.topk(full, Math.min(V, TOP_P_FIRST), -1);
      const covered = first.values.sum(-1).toTypedArray() as Float32Array;
      ({ values: probs, indices: ids } = covered.every((m) => m >= topP) ? first : torch.sort(full, -1, true));
    } else {
      probs = torch.softmax(tempered, -1, 'float32');
    }
    // The draw stays native: only one index per row comes back. Copying the [B, K] probabilities and the sort's
    // indices into JavaScript and walking them there took 64 ms per step at 16 rows of GPT-2's vocabulary with
    // top-p 0.9, 8.5 ms this way; unfiltered, 2.5 vs 3.0 ms at 16 rows, 0.9 vs 0.3 ms at one (npm run bench --
    // sampling). Float64 sums, like the walk it replaced, so both pick the same tokens.
    const K = probs.size(-1);
    probs = probs.to('float64');
    let cum = probs.cumsum(-1);
    if (topP !== undefined) {
      // Top-p over the ordered candidates: keep a candidate while the mass ranked above it is still below p.
      probs = probs.mul(cum.sub(probs).lt(topP));
      cum = probs.cumsum(-1);
    }
    // Inverse CDF, one uniform per row from that row's generator: the first candidate whose cumulative mass exceeds
    // u × total. A zero-probability candidate never qualifies (its cumulative mass equals its predecessor's).
    const u = torch.tensor(Float64Array.from({ length: B }, (_, b) => rngs[b]!.uniform()), { shape: [B, 1] });
    const target = u.mul(cum.narrow(-1, K - 1, 1));
    let picks = cum.le(target).sum(-1, true);
    if ((picks.toTypedArray() as BigInt64Array).some((k) => k >= BigInt(K))) {
      // u × total rounded up to the total: the last candidate with mass, as the sequential walk would take.
      const last = probs.gt(0).to('int64').mul(torch.arange(1, K + 1, 1, { dtype: 'int64' })).argmax(-1, true);
      picks = torch.where(picks.ge(K), last, picks);
    }
    const chosen = ids ? ids.gather(-1, picks) : picks;
    return [...(chosen.toTypedArray() as BigInt64Array)].map(Number);
  });
}

/** Chooses the next token from logits for one position, shape [V] or [1, V]. */
export function sampleNext(logits: torch.Tensor, opts: Pick<GenerateOptions, 'temperature' | 'topK' | 'topP'>, rng = new SamplerRng(Math.floor(Math.random() * 2 ** 32))): number {
  return sampleRows(logits.reshape(1, logits.size(-1)), opts, [rng])[0]!;
}

export function validateGenerateOptions(opts: GenerateOptions): void {
  if (!Number.isInteger(opts.maxNewTokens) || opts.maxNewTokens < 0) throw new RangeError(`maxNewTokens must be a non-negative integer, got ${opts.maxNewTokens}`);
  if (!(opts.temperature >= 0) || !Number.isFinite(opts.temperature)) throw new RangeError(`temperature must be a finite number ≥ 0, got ${opts.temperature}`);
  if (opts.topK !== undefined && (!Number.isInteger(opts.topK) || opts.topK < 1)) throw new RangeError(`topK must be a positive integer, got ${opts.topK}`);
  if (opts.topP !== undefined && !(opts.topP > 0 && opts.topP <= 1)) throw new RangeError(`topP must be in (0, 1], got ${opts.topP}`);
}

/** A [B, T] int64 tensor of token ids (B rows of equal length). */
function idsTensor(rows: readonly (readonly number[])[], device: string): torch.Tensor {
  const T = rows[0]!.length;
  const flat = new Int32Array(rows.length * T);
  rows.forEach((r, b) => flat.set(r, b * T));
  return torch.tensor(flat, { dtype: 'int64', shape: [rows.length, T], device });
}

/**
 * Generates up to `maxNewTokens` tokens after `promptTokens` and returns the new tokens only (not the prompt).
 * An empty prompt starts from the end-of-text token, as GPT-2 was trained to begin documents after one.
 */
export function generate(model: GPT, promptTokens: readonly number[], opts: GenerateOptions): number[] {
  return generateBatch(model, promptTokens, 1, opts)[0]!;
}

/**
 * `numSamples` continuations of one prompt, decoded together as one batch (one forward pass per step for all of
 * them), sample i drawing from its own generator (see sampleRng). Returns the new tokens of each.
 *
 * With the cache, the prompt is run once and then each step feeds only the newest token per sample. GPT-2's
 * position embeddings are absolute, so every cached key/value depends on its position in the window: once the
 * sequence outgrows block_size the window slides, every position shifts, and the cache must be rebuilt by running
 * the last block_size tokens again. A context that is already full therefore costs a full block_size forward pass
 * per new token — the same as decoding without the cache — while everything before that point costs one token.
 * With `stopAtEot`, a finished sample stays in the batch (its further tokens are discarded) until all have ended.
 *
 * Runs without autograd and in eval mode (dropout off; the model's previous mode is restored). Each step runs
 * in a scope, so native memory stays flat however many tokens are generated.
 */
export function generateBatch(model: GPT, promptTokens: readonly number[], numSamples: number, opts: GenerateOptions): number[][] {
  validateGenerateOptions(opts);
  if (!Number.isInteger(numSamples) || numSamples < 1) throw new RangeError(`numSamples must be a positive integer, got ${numSamples}`);
  const { blockSize, vocabSize } = model.config;
  for (const t of promptTokens) {
    if (!Number.isInteger(t) || t < 0 || t >= vocabSize) throw new RangeError(`prompt token ${t} is outside the model's vocabulary of ${vocabSize}`);
  }
  const seed = opts.seed ?? Math.floor(Math.random() * 2 ** 32);
  const rngs = Array.from({ length: numSamples }, (_, i) => sampleRng(seed, (opts.firstSample ?? 0) + i));
  const useCache = opts.useCache ?? true;
  const device = model.transformer.wte.weight.device;
  const start = promptTokens.length > 0 ? [...promptTokens] : [EOT_TOKEN];
  if (start[0]! >= vocabSize) throw new RangeError(`the model's vocabulary of ${vocabSize} has no end-of-text token (${EOT_TOKEN}); give a prompt`);
  // Every sample's whole sequence (prompt included); all grow in lockstep.
  const seqs = Array.from({ length: numSamples }, () => [...start]);
  const out: number[][] = Array.from({ length: numSamples }, () => []);
  const done = new Array<boolean>(numSamples).fill(false);
  const wasTraining = model.training;
  model.eval();
  const cache: KVCache | undefined = useCache ? model.newCache() : undefined;
  // Positions of the sequences whose keys/values are not in the cache yet (initially the whole prompt).
  let pendingFrom = 0;
  const precision = <T>(fn: () => T): T => (opts.bf16 ? torch.autocast(fn) : fn());
  try {
    torch.noGrad(() => {
      for (let step = 0; step < opts.maxNewTokens && done.includes(false); step++) {
        const next = torch.scope(() => {
          const len = seqs[0]!.length;
          let logits: torch.Tensor;
          if (!cache) {
            logits = precision(() => model.forward(idsTensor(seqs.map((q) => q.slice(-blockSize)), device)).logits);
          } else {
            if (cache.length + (len - pendingFrom) > blockSize) {
              // Slide: drop the cache and rebuild it from the last block_size tokens (see the cost note above).
              GPT.disposeCache(cache);
              pendingFrom = len - blockSize;
            }
            logits = precision(() => model.forward(idsTensor(seqs.map((q) => q.slice(pendingFrom)), device), null, cache).logits);
            pendingFrom = len;
          }
          return sampleRows(logits, opts, rngs);
        });
        next.forEach((id, b) => {
          seqs[b]!.push(id);
          if (done[b]) return;
          if (opts.stopAtEot && id === EOT_TOKEN) {
            done[b] = true;
            return;
          }
          out[b]!.push(id);
          opts.onToken?.(id, b);
        });
      }
    });
  } finally {
    if (cache) GPT.disposeCache(cache);
    model.train(wasTraining);
  }
  return out;
}
