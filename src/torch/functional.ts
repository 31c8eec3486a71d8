// Free functions over tensors: multi-tensor ops and the neural-network functions a GPT needs.
import { native } from './native.js';
import { dtypeCode, type DType } from './dtype.js';
import { Tensor, wrap, wrapList, type Scalar } from './tensor.js';
import { noGrad } from './grad-mode.js';

const handles = (ts: readonly Tensor[]): unknown[] => ts.map((t) => t.handle);

export function cat(tensors: readonly Tensor[], dim = 0): Tensor {
  return wrap(native.cat(handles(tensors), dim));
}
export function stack(tensors: readonly Tensor[], dim = 0): Tensor {
  return wrap(native.stack(handles(tensors), dim));
}
export function where(cond: Tensor, a: Tensor | Scalar, b: Tensor | Scalar): Tensor {
  return wrap(native.where(cond.handle, a instanceof Tensor ? a.handle : a, b instanceof Tensor ? b.handle : b));
}
export function matmul(a: Tensor, b: Tensor): Tensor {
  return a.matmul(b);
}
export function bmm(a: Tensor, b: Tensor): Tensor {
  return a.bmm(b);
}
/** y = x Wᵀ + b, with W of shape [out, in] (PyTorch's layout). */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  return wrap(native.linear(x.handle, weight.handle, bias?.handle));
}
export function embedding(weight: Tensor, indices: Tensor): Tensor {
  return wrap(native.embedding(weight.handle, indices.handle));
}
export function layerNorm(x: Tensor, normalizedShape: readonly number[], weight?: Tensor | null, bias?: Tensor | null, eps = 1e-5): Tensor {
  return wrap(native.layerNorm(x.handle, [...normalizedShape], weight?.handle, bias?.handle, eps));
}
/** GELU; `approximate: 'tanh'` is GPT-2's variant. */
export function gelu(x: Tensor, approximate: 'none' | 'tanh' = 'none'): Tensor {
  return wrap(native.gelu(x.handle, approximate === 'tanh'));
}
export function softmax(x: Tensor, dim: number, dtype?: DType): Tensor {
  return wrap(native.softmax(x.handle, dim, dtype && dtypeCode(dtype)));
}
export function logSoftmax(x: Tensor, dim: number, dtype?: DType): Tensor {
  return wrap(native.logSoftmax(x.handle, dim, dtype && dtypeCode(dtype)));
}
export function dropout(x: Tensor, p: number, training: boolean): Tensor {
  if (!(p >= 0 && p < 1)) throw new RangeError(`dropout probability must be in [0, 1), got ${p}`);
  return wrap(native.dropout(x.handle, p, training));
}

export interface CrossEntropyOptions {
  ignoreIndex?: number;
  reduction?: 'mean' | 'sum' | 'none';
  labelSmoothing?: number;
}
const REDUCTIONS = { none: 0, mean: 1, sum: 2 } as const;
/** Cross-entropy of logits [N, C] against class indices [N] (int64), as torch.nn.functional.cross_entropy. */
export function crossEntropy(logits: Tensor, target: Tensor, opts: CrossEntropyOptions = {}): Tensor {
  const reduction = REDUCTIONS[opts.reduction ?? 'mean'];
  if (reduction === undefined) throw new TypeError(`reduction must be mean, sum or none, got ${String(opts.reduction)}`);
  return wrap(native.crossEntropy(logits.handle, target.handle, opts.ignoreIndex ?? -100, reduction, opts.labelSmoothing ?? 0));
}
/**
 * Mean cross-entropy of logits [N, V] (any floating dtype, computed in float32) against int64 targets [N], skipping
 * `ignoreIndex`. Same value and gradient as crossEntropy(logits.float(), target), but backward keeps only the
 * logits (not float32 log-probabilities) and the gradient comes back in the logits' dtype: for bf16 logits half
 * the memory held between forward and backward.
 */
export function meanCrossEntropy(logits: Tensor, target: Tensor, opts: { ignoreIndex?: number } = {}): Tensor {
  return wrap(native.meanCrossEntropy(logits.handle, target.handle, opts.ignoreIndex ?? -100));
}
export function topk(x: Tensor, k: number, dim = -1, largest = true): { values: Tensor; indices: Tensor } {
  const [values, indices] = wrapList(native.topk(x.handle, k, dim, largest));
  return { values: values!, indices: indices! };
}
export function sort(x: Tensor, dim = -1, descending = false): { values: Tensor; indices: Tensor } {
  const [values, indices] = wrapList(native.sort(x.handle, dim, descending));
  return { values: values!, indices: indices! };
}
/** Draws `numSamples` indices per row from the (unnormalised, non-negative) probabilities in `probs`. */
export function multinomial(probs: Tensor, numSamples: number, replacement = false): Tensor {
  return wrap(native.multinomial(probs.handle, numSamples, replacement));
}

/**
 * Causal self-attention over a fused projection: qkv [B, T, 3C] (queries, keys, values side by side, `heads`
 * heads each) → [B, T, C] with heads merged. One native kernel, forward and backward (flash-style tiles, online
 * softmax, no T × T matrix); float32 or bfloat16, CPU. Query i sees keys 0..i. No dropout on the weights.
 */
export function causalAttentionQKV(qkv: Tensor, heads: number): Tensor {
  return wrap(native.causalAttentionQKV(qkv.handle, heads));
}
/**
 * Causal attention of q [B, Tq, H, D] over k, v [B, Tk, H, D] (Tk ≥ Tq; the queries are the last Tq positions, as
 * when decoding against a KV cache) → [B, Tq, H, D]. Inference only: inputs must not require gradients.
 */
export function causalAttention(q: Tensor, k: Tensor, v: Tensor): Tensor {
  return wrap(native.causalAttention(q.handle, k.handle, v.handle));
}
/** The GEMM the fused kernels use: 'onednn' (oneDNN found in the loaded libtorch) or 'aten' (the fallback). */
export function fusedGemmBackend(): string {
  return native.gemmBackend() as string;
}
/**
 * GPT-2's MLP activation with the preceding bias folded in: gelu_tanh(x + bias), x float32 or bfloat16 (computed
 * in float32, returned in x's dtype), bias [F] over x's last dimension (null: none). One native pass forward and
 * one backward, which also sums the bias gradient.
 */
export function biasGelu(x: Tensor, bias: Tensor | null): Tensor {
  return wrap(native.biasGelu(x.handle, bias?.handle));
}
/**
 * Mean cross-entropy of the logits x Wᵀ (x [..., C], W [V, C], no bias: a language model's output layer) against
 * int64 targets (one per row of x; `ignoreIndex` rows skipped), without materialising the logits: one native op in
 * row chunks, bf16 GEMMs under autocast with float32 softmax statistics. Same value and gradients as
 * crossEntropy(linear(x, W).float(), targets).
 */
export function linearCrossEntropy(x: Tensor, weight: Tensor, targets: Tensor, opts: { ignoreIndex?: number } = {}): Tensor {
  return wrap(native.linearCrossEntropy(x.handle, weight.handle, targets.handle, opts.ignoreIndex ?? -100));
}
/** Frees the bf16 weight copies kept for bf16 autocast (made once per weight version; see native/linear.cc). */
export function clearCastCache(): void {
  native.clearCastCache();
}
/**
 * How many elements of a floating-point tensor are NaN or ±infinity. One sum decides the usual case (any NaN or
 * infinity makes the sum non-finite, so a finite sum means none); only a non-finite sum, which finite values can
 * also reach by overflowing, pays for the exact count.
 */
export function nonFiniteCount(t: Tensor): number {
  return noGrad(() => {
    const sum = t.sum();
    const total = sum.item();
    sum.dispose();
    if (Number.isFinite(total)) return 0;
    // x - x is 0 for a finite x and NaN otherwise; NaN is the one value not equal to itself.
    const diff = t.sub(t);
    const flags = diff.ne(diff);
    const count = flags.sum();
    const n = count.item();
    for (const x of [diff, flags, count]) x.dispose();
    return n;
  });
}
