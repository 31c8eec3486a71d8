// Autoregressive text generation from a GPT: temperature, top-k and top-p (nucleus) sampling, greedy decoding, and
// incremental decoding with the model's KV cache.
//
// Semantics follow nanoGPT's generate(): the model always sees the last min(len, block_size) tokens of the
// sequence, with positions counted from the start of that window. The cache is only an optimisation: with or
// without it the same logits are computed (up to float rounding), so greedy decoding gives the same tokens.
import * as torch from '../torch/index.js';
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
  /** Seeds the (process-wide) libtorch generator first; without it the draws continue from its current state. */
  seed?: number;
  /** Stop when the model emits the end-of-text token; that token is then neither returned nor reported. */
  stopAtEot?: boolean;
  /** Incremental decoding with the KV cache (default). false recomputes the whole context for every token. */
  useCache?: boolean;
  /** Called with each new token as soon as it is chosen (for streaming output). */
  onToken?: (id: number) => void;
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
    const zero = torch.zeros(zeroShape, { device: logits.device });
    const above = V === 1 ? zero : torch.cat([zero, cum.narrow(-1, 0, V - 1)], -1);
    const removedSorted = above.ge(p);
    // Back from rank order to vocabulary order: sorting the permutation gives its inverse (rank of each token).
    const rank = torch.sort(sorted.indices, -1, false).indices;
    const removed = removedSorted.gather(-1, rank);
    return logits.maskedFill(removed, -Infinity);
  });
}

/** Chooses the next token from logits for one position, shape [V] or [1, V]. */
export function sampleNext(logits: torch.Tensor, opts: Pick<GenerateOptions, 'temperature' | 'topK' | 'topP'>): number {
  return torch.scope(() => {
    const V = logits.size(-1);
    const row = logits.reshape(1, V).float();
    if (opts.temperature === 0) return row.argmax(-1).item();
    let l = row.div(opts.temperature);
    if (opts.topK !== undefined) l = filterTopK(l, Math.min(opts.topK, V));
    if (opts.topP !== undefined) l = filterTopP(l, opts.topP);
    return torch.multinomial(torch.softmax(l, -1), 1).item();
  });
}

export function validateGenerateOptions(opts: GenerateOptions): void {
  if (!Number.isInteger(opts.maxNewTokens) || opts.maxNewTokens < 0) throw new RangeError(`maxNewTokens must be a non-negative integer, got ${opts.maxNewTokens}`);
  if (!(opts.temperature >= 0) || !Number.isFinite(opts.temperature)) throw new RangeError(`temperature must be a finite number ≥ 0, got ${opts.temperature}`);
  if (opts.topK !== undefined && (!Number.isInteger(opts.topK) || opts.topK < 1)) throw new RangeError(`topK must be a positive integer, got ${opts.topK}`);
  if (opts.topP !== undefined && !(opts.topP > 0 && opts.topP <= 1)) throw new RangeError(`topP must be in (0, 1], got ${opts.topP}`);
}

/** A [1, T] int64 tensor of token ids. */
function idsTensor(ids: readonly number[], device: string): torch.Tensor {
  return torch.tensor(Int32Array.from(ids), { dtype: 'int64', shape: [1, ids.length], device });
}

/**
 * Generates up to `maxNewTokens` tokens after `promptTokens` and returns the new tokens only (not the prompt).
 * An empty prompt starts from the end-of-text token, as GPT-2 was trained to begin documents after one.
 *
 * With the cache, the prompt is run once and then each step feeds only the newest token. GPT-2's position
 * embeddings are absolute, so every cached key/value depends on its position in the window: once the sequence
 * outgrows block_size the window slides, every position shifts, and the cache must be rebuilt by running the
 * last block_size tokens again. A context that is already full therefore costs a full block_size forward pass
 * per new token — the same as decoding without the cache — while everything before that point costs one token.
 *
 * Runs without autograd and in eval mode (dropout off; the model's previous mode is restored). Each step runs
 * in a scope, so native memory stays flat however many tokens are generated.
 */
export function generate(model: GPT, promptTokens: readonly number[], opts: GenerateOptions): number[] {
  validateGenerateOptions(opts);
  const { blockSize, vocabSize } = model.config;
  for (const t of promptTokens) {
    if (!Number.isInteger(t) || t < 0 || t >= vocabSize) throw new RangeError(`prompt token ${t} is outside the model's vocabulary of ${vocabSize}`);
  }
  if (opts.seed !== undefined) torch.manualSeed(opts.seed);
  const useCache = opts.useCache ?? true;
  const device = model.transformer.wte.weight.device;
  const tokens = promptTokens.length > 0 ? [...promptTokens] : [EOT_TOKEN];
  if (tokens[0]! >= vocabSize) throw new RangeError(`the model's vocabulary of ${vocabSize} has no end-of-text token (${EOT_TOKEN}); give a prompt`);
  const out: number[] = [];
  const wasTraining = model.training;
  model.eval();
  const cache: KVCache | undefined = useCache ? model.newCache() : undefined;
  // Tokens in the sequence whose keys/values are not in the cache yet (initially the whole prompt).
  let pending: number[] = [...tokens];
  try {
    torch.noGrad(() => {
      for (let step = 0; step < opts.maxNewTokens; step++) {
        const next = torch.scope(() => {
          let logits: torch.Tensor;
          if (!cache) {
            logits = model.forward(idsTensor(tokens.slice(-blockSize), device)).logits;
          } else {
            if (cache.length + pending.length > blockSize) {
              // Slide: drop the cache and rebuild it from the last block_size tokens (see the cost note above).
              GPT.disposeCache(cache);
              pending = tokens.slice(-blockSize);
            }
            logits = model.forward(idsTensor(pending, device), null, cache).logits;
            pending = [];
          }
          return sampleNext(logits, opts);
        });
        if (opts.stopAtEot && next === EOT_TOKEN) break;
        tokens.push(next);
        pending.push(next);
        out.push(next);
        opts.onToken?.(next);
      }
    });
  } finally {
    if (cache) GPT.disposeCache(cache);
    model.train(wasTraining);
  }
  return out;
}
