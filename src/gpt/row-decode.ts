// Decoding for a server: sequences at different positions stepped together, one forward pass per step.
//
// generateBatch (generate.ts) keeps one KV cache for the whole batch with a single `length`: every row shares one
// position, so a row can neither join late nor leave early without copying everyone's cache. Here each sequence
// owns its cache (a KVCache of batch 1, the model's own layout), and a step runs the position-independent work —
// embeddings, LayerNorms, the QKV/output projections, the MLP and the LM head, nearly all of a step's FLOPs — on
// all rows as one [B, 1, C] batch, and only attention row by row (each row reads its own cache up to its own
// length; for one query token that is O(length · C), small next to the projections' O(C²)). A sequence can
// therefore join or leave between any two steps at the cost of its own prefill.
import * as torch from '../torch/index.js';
import { causalAttention } from './attention.js';
import { GPT, type KVCache } from './model.js';

/** One sequence's keys and values: a batch-1 KVCache whose buffers hold `capacity` positions. */
export interface RowCache extends KVCache {
  capacity: number;
}

/**
 * An empty cache for one sequence with room for `capacity` positions (≤ block_size). Buffers are allocated here,
 * at the size the sequence can reach, not at block_size: a 20-token request on GPT-2 124M then holds 1.5 MB of
 * cache instead of 75 MB.
 */
export function newRowCache(model: GPT, capacity: number, dtype: torch.DType): RowCache {
  const { nLayer, nEmbd, blockSize } = model.config;
  if (!Number.isInteger(capacity) || capacity < 1 || capacity > blockSize) throw new RangeError(`cache capacity must be in [1, ${blockSize}], got ${capacity}`);
  const device = model.transformer.wte.weight.device;
  const buffer = (): torch.Tensor => torch.keep(torch.empty([1, capacity, nEmbd], { dtype, device }));
  return { layers: Array.from({ length: nLayer }, () => ({ k: buffer(), v: buffer() })), length: 0, capacity };
}

function ids(tokens: readonly number[], shape: number[], device: string): torch.Tensor {
  return torch.tensor(Int32Array.from(tokens), { dtype: 'int64', shape, device });
}

/**
 * Runs `tokens` (the sequence from position cache.length on) through the model alone, filling its cache; returns
 * the logits of the last position, [1, 1, V]. Call inside noGrad, eval mode and the caller's scope.
 */
export function prefillRow(model: GPT, tokens: readonly number[], cache: RowCache): torch.Tensor {
  if (cache.length + tokens.length > cache.capacity) throw new RangeError(`${cache.length + tokens.length} positions exceed the cache's ${cache.capacity}`);
  const device = model.transformer.wte.weight.device;
  return model.forward(ids(tokens, [1, tokens.length], device), null, cache).logits;
}

/**
 * One decoding step for B sequences: tokens[b] is row b's newest token, to be placed at position caches[b].length.
 * Writes each row's key and value into its own cache and returns the next-token logits, [B, 1, V]. Every cache
 * needs room for one more position. Call inside noGrad, eval mode and the caller's scope (and autocast for bf16).
 */
export function decodeRows(model: GPT, tokens: readonly number[], caches: readonly RowCache[]): torch.Tensor {
  const B = tokens.length;
  if (caches.length !== B || B === 0) throw new RangeError(`decodeRows needs one cache per token, got ${B} tokens and ${caches.length} caches`);
  for (const c of caches) if (c.length >= c.capacity) throw new RangeError(`a row cache is full (${c.capacity} positions)`);
  const { nHead: H, nEmbd: C } = model.config;
  const D = C / H;
  const device = model.transformer.wte.weight.device;
  const t = model.transformer;
  const pos = ids(caches.map((c) => c.length), [B, 1], device);
  let x = t.drop.forward(t.wte.forward(ids(tokens, [B, 1], device)).add(t.wpe.forward(pos)));
  t.h.items.forEach((block, layer) => {
    // One scope per block, as GPT.forward: a block's intermediates are freed before the next block runs.
    const out = torch.scope(() => {
      const qkv = block.attn.c_attn.forward(block.ln_1.forward(x)); // [B, 1, 3C]
      const rows: torch.Tensor[] = [];
      for (let b = 0; b < B; b++) {
        const cache = caches[b]!;
        const kv = cache.layers[layer]!;
        const L = cache.length + 1;
        const row = qkv.narrow(0, b, 1);
        kv.k.narrow(1, cache.length, 1).copy_(row.narrow(2, C, C));
        kv.v.narrow(1, cache.length, 1).copy_(row.narrow(2, 2 * C, C));
        const q = row.narrow(2, 0, C);
        const k = kv.k.narrow(1, 0, L);
        const v = kv.v.narrow(1, 0, L);
        rows.push(attendOne(q, k, v, H, D));
      }
      const h = x.add(block.attn.c_proj.forward(B === 1 ? rows[0]! : torch.cat(rows, 0)));
      return h.add(block.mlp.forward(block.ln_2.forward(h)));
    });
    x.dispose();
    x = out;
  });
  for (const c of caches) c.length += 1;
  return model.lm_head.forward(t.ln_f.forward(x));
}

/** One query token against L keys of one row: q [1, 1, C], k and v [1, L, C] → [1, 1, C]. */
function attendOne(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, H: number, D: number): torch.Tensor {
  const L = k.shape[1]!;
  const C = H * D;
  // The native kernel (the one GPT.forward uses with a cache) for CPU float32/bf16; the composite path elsewhere.
  // With a single query at the last position, causal attention sees every key: no mask.
  if (q.device === 'cpu' && (q.dtype === 'float32' || q.dtype === 'bfloat16')) {
    return torch.causalAttention(q.view(1, 1, H, D), k.view(1, L, H, D), v.view(1, L, H, D)).view(1, 1, C);
  }
  const heads = (t: torch.Tensor, len: number): torch.Tensor => t.reshape(1, len, H, D).transpose(1, 2);
  return causalAttention(heads(q, 1), heads(k, L), heads(v, L), null, (w) => w).reshape(1, 1, C);
}
