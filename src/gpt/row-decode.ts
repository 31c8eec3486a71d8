// Decoding for a server: sequences at different positions stepped together, one forward pass per step.
//
// generateBatch (generate.ts) keeps one KV cache for the whole batch with a single `length`: every row shares one
// position, so a row can neither join late nor leave early without copying everyone's cache. Here each sequence
// owns its cache (a KVCache of batch 1, the model's own layout), and a step runs the position-independent work —
// embeddings, LayerNorms, the QKV/output projections, the MLP and the LM head, nearly all of a step's FLOPs — on
// all rows as one [B, 1, C] batch, and only attention row by row (each row reads its own cache up to its own
// length; for one query token that is O(length · C), small next to the projections' O(C²)). A sequence can
// therefore join or leave between any two steps at the cost of its prefill, which the same function runs (prompts
// of equal length together).
import * as torch from '../torch/index.js';
import { causalAttention } from './attention.js';
import type { GPT, KVCache } from './model.js';

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
 * Runs T new tokens of each of B sequences through the model (rows[b] continues row b from position
 * caches[b].length; every row has the same T), writing each row's keys and values into its own cache, and returns
 * the next-token logits of each row's last position, [B, 1, V]. T = 1 is a decoding step; T = a prompt's length is
 * its prefill (prompts of equal length prefill together). Every cache needs room for T more positions. Call
 * inside noGrad, eval mode and the caller's scope (and autocast for bf16).
 */
export function forwardRows(model: GPT, rows: readonly (readonly number[])[], caches: readonly RowCache[]): torch.Tensor {
  const B = rows.length;
  if (caches.length !== B || B === 0) throw new RangeError(`forwardRows needs one cache per row, got ${B} rows and ${caches.length} caches`);
  const T = rows[0]!.length;
  if (T === 0 || rows.some((r) => r.length !== T)) throw new RangeError('forwardRows needs rows of one non-zero length');
  for (const c of caches) if (c.length + T > c.capacity) throw new RangeError(`${c.length + T} positions exceed a row cache of ${c.capacity}`);
  const { nHead: H, nEmbd: C } = model.config;
  const D = C / H;
  const device = model.transformer.wte.weight.device;
  const t = model.transformer;
  const pos = ids(caches.flatMap((c) => Array.from({ length: T }, (_, i) => c.length + i)), [B, T], device);
  let x = t.drop.forward(t.wte.forward(ids(rows.flat(), [B, T], device)).add(t.wpe.forward(pos)));
  t.h.items.forEach((block, layer) => {
    // One scope per block, as GPT.forward: a block's intermediates are freed before the next block runs.
    const out = torch.scope(() => {
      const qkv = block.attn.c_attn.forward(block.ln_1.forward(x)); // [B, T, 3C]
      const ys: torch.Tensor[] = [];
      for (let b = 0; b < B; b++) {
        const cache = caches[b]!;
        const kv = cache.layers[layer]!;
        const L = cache.length + T;
        const row = B === 1 ? qkv : qkv.narrow(0, b, 1);
        kv.k.narrow(1, cache.length, T).copy_(row.narrow(2, C, C));
        kv.v.narrow(1, cache.length, T).copy_(row.narrow(2, 2 * C, C));
        ys.push(attendRow(row.narrow(2, 0, C), kv.k.narrow(1, 0, L), kv.v.narrow(1, 0, L), H, D));
      }
      const h = x.add(block.attn.c_proj.forward(B === 1 ? ys[0]! : torch.cat(ys, 0)));
      return h.add(block.mlp.forward(block.ln_2.forward(h)));
    });
    x.dispose();
    x = out;
  });
  for (const c of caches) c.length += T;
  return model.lm_head.forward(t.ln_f.forward(T === 1 ? x : x.narrow(1, T - 1, 1)));
}

/** One decoding step: tokens[b] is row b's newest token. See forwardRows. */
export function decodeRows(model: GPT, tokens: readonly number[], caches: readonly RowCache[]): torch.Tensor {
  return forwardRows(model, tokens.map((tok) => [tok]), caches);
}

/**
 * T query positions of one row, the last T of its L cached ones: q [1, T, C], k and v [1, L, C] → [1, T, C]. Query i
 * sees keys 0 … L − T + i (causal with the cached prefix before it).
 */
function attendRow(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, H: number, D: number): torch.Tensor {
  const T = q.shape[1]!;
  const L = k.shape[1]!;
  const C = H * D;
  // The native kernel (the one GPT.forward uses with a cache) for CPU float32/bf16; the composite path elsewhere.
  if (q.device === 'cpu' && (q.dtype === 'float32' || q.dtype === 'bfloat16')) {
    return torch.causalAttention(q.view(1, T, H, D), k.view(1, L, H, D), v.view(1, L, H, D)).view(1, T, C);
  }
  const heads = (t: torch.Tensor, len: number): torch.Tensor => t.reshape(1, len, H, D).transpose(1, 2);
  const mask = T === 1 ? null : torch.ones([T, L], { dtype: 'bool', device: q.device }).triu(L - T + 1);
  return causalAttention(heads(q, T), heads(k, L), heads(v, L), mask, (w) => w).reshape(1, T, C);
}
