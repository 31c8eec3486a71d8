// GPT-2 in one file: token + position embeddings, pre-LayerNorm blocks of causal self-attention and a tanh-GELU
// MLP, a final LayerNorm and an LM head tied to the token embedding. Parameter names are Hugging Face's.
import * as torch from '../torch/index.js';
import { Dropout, Embedding, LayerNorm, Linear, Module, ModuleList } from '../nn/index.js';
import { causalAttention } from './attention.js';
import type { GPTConfig } from './config.js';

/**
 * Keys and values of earlier positions for incremental decoding: per layer, buffers for block_size positions
 * ([B, block_size, C], allocated at the layer's first use and written in place), of which `length` are filled.
 */
export interface KVCache {
  layers: ({ k: torch.Tensor; v: torch.Tensor } | undefined)[];
  /** Number of positions already in the cache. */
  length: number;
}

/** The native fused kernels (attention, bias + GELU) run on the CPU for float32 and bfloat16 activations. */
function fusedKernelsApply(t: torch.Tensor): boolean {
  return t.device === 'cpu' && (t.dtype === 'float32' || t.dtype === 'bfloat16');
}

class CausalSelfAttention extends Module {
  readonly c_attn: Linear;
  readonly c_proj: Linear;
  readonly attnDropout: Dropout;
  readonly residDropout: Dropout;
  constructor(readonly cfg: GPTConfig) {
    super();
    this.c_attn = this.child('c_attn', new Linear(cfg.nEmbd, 3 * cfg.nEmbd, cfg.bias));
    this.c_proj = this.child('c_proj', new Linear(cfg.nEmbd, cfg.nEmbd, cfg.bias, 0.02 / Math.sqrt(2 * cfg.nLayer)));
    this.attnDropout = this.child('attn_dropout', new Dropout(cfg.dropout));
    this.residDropout = this.child('resid_dropout', new Dropout(cfg.dropout));
  }

  /**
   * x: [B, T, C] at positions start … start + T − 1. With `cache`, this layer's keys and values for those positions
   * are written into it and the queries attend to every cached position; without, to the T positions of x.
   */
  forward(x: torch.Tensor, cache: KVCache | undefined, layer: number): torch.Tensor {
    const [B, T, C] = x.shape as [number, number, number];
    const H = this.cfg.nHead;
    const D = C / H;
    const qkv = this.c_attn.forward(x);
    const q = qkv.narrow(2, 0, C);
    let k = qkv.narrow(2, C, C);
    let v = qkv.narrow(2, 2 * C, C);
    const start = cache?.length ?? 0;
    const Tk = start + T;
    if (cache) {
      const buffer = (): torch.Tensor => torch.keep(torch.empty([B, this.cfg.blockSize, C], { dtype: qkv.dtype, device: qkv.device }));
      const kv = (cache.layers[layer] ??= { k: buffer(), v: buffer() });
      kv.k.narrow(1, start, T).copy_(k);
      kv.v.narrow(1, start, T).copy_(v);
      k = kv.k.narrow(1, 0, Tk);
      v = kv.v.narrow(1, 0, Tk);
    }
    // Dropout on the attention weights exists only in the composite path (the fused kernel has none).
    let y: torch.Tensor;
    if (!fusedKernelsApply(qkv) || (this.training && this.cfg.dropout > 0)) y = this.composite(q, k, v, start);
    else if (cache) y = torch.causalAttention(q.view(B, T, H, D), k.view(B, Tk, H, D), v.view(B, Tk, H, D)).view(B, T, C);
    else y = torch.causalAttentionQKV(qkv, H);
    return this.residDropout.forward(this.c_proj.forward(y));
  }

  /** The composite path (other devices and dtypes, attention dropout in training): q [B, T, C], k, v [B, Tk, C]. */
  private composite(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, start: number): torch.Tensor {
    const [B, T, C] = q.shape as [number, number, number];
    const H = this.cfg.nHead;
    const heads = (t: torch.Tensor): torch.Tensor => t.reshape(B, t.shape[1]!, H, C / H).transpose(1, 2); // [B, H, len, D]
    const mask = T === 1 ? null : torch.ones([T, start + T], { dtype: 'bool', device: q.device }).triu(start + 1);
    return causalAttention(heads(q), heads(k), heads(v), mask, (w) => this.attnDropout.forward(w)).reshape(B, T, C);
  }
}

class MLP extends Module {
  readonly c_fc: Linear;
  readonly c_proj: Linear;
  readonly dropout: Dropout;
  constructor(cfg: GPTConfig) {
    super();
    this.c_fc = this.child('c_fc', new Linear(cfg.nEmbd, 4 * cfg.nEmbd, cfg.bias));
    this.c_proj = this.child('c_proj', new Linear(4 * cfg.nEmbd, cfg.nEmbd, cfg.bias, 0.02 / Math.sqrt(2 * cfg.nLayer)));
    this.dropout = this.child('dropout', new Dropout(cfg.dropout));
  }
  forward(x: torch.Tensor): torch.Tensor {
    // c_fc without its bias, then bias + GELU in one native pass (bf16 under autocast; see native/gelu.cc).
    const h = torch.linear(x, this.c_fc.weight);
    const a = fusedKernelsApply(h) ? torch.biasGelu(h, this.c_fc.bias) : torch.gelu(this.c_fc.bias ? h.add(this.c_fc.bias) : h, 'tanh');
    return this.dropout.forward(this.c_proj.forward(a));
  }
}

class Block extends Module {
  readonly ln_1: LayerNorm;
  readonly attn: CausalSelfAttention;
  readonly ln_2: LayerNorm;
  readonly mlp: MLP;
  constructor(cfg: GPTConfig) {
    super();
    this.ln_1 = this.child('ln_1', new LayerNorm(cfg.nEmbd, cfg.bias));
    this.attn = this.child('attn', new CausalSelfAttention(cfg));
    this.ln_2 = this.child('ln_2', new LayerNorm(cfg.nEmbd, cfg.bias));
    this.mlp = this.child('mlp', new MLP(cfg));
  }
  forward(x: torch.Tensor, cache: KVCache | undefined, layer: number): torch.Tensor {
    const h = x.add(this.attn.forward(this.ln_1.forward(x), cache, layer));
    return h.add(this.mlp.forward(this.ln_2.forward(h)));
  }
}

class Transformer extends Module {
  readonly wte: Embedding;
  readonly wpe: Embedding;
  readonly drop: Dropout;
  readonly h: ModuleList<Block>;
  readonly ln_f: LayerNorm;
  constructor(cfg: GPTConfig) {
    super();
    this.wte = this.child('wte', new Embedding(cfg.vocabSize, cfg.nEmbd));
    this.wpe = this.child('wpe', new Embedding(cfg.blockSize, cfg.nEmbd));
    this.drop = this.child('drop', new Dropout(cfg.dropout));
    this.h = this.child('h', new ModuleList(Array.from({ length: cfg.nLayer }, () => new Block(cfg))));
    this.ln_f = this.child('ln_f', new LayerNorm(cfg.nEmbd, cfg.bias));
  }
}

/** Without targets: the logits of the last position ([B, 1, vocab]), as nanoGPT. */
export interface LogitsResult {
  logits: torch.Tensor;
  loss: null;
}
/** With targets: the mean cross-entropy; the [B, T, vocab] logits are never materialised (see `allLogits`). */
export interface LossResult {
  logits: null;
  loss: torch.Tensor;
}

export class GPT extends Module {
  readonly transformer: Transformer;
  readonly lm_head: Linear;

  constructor(readonly config: GPTConfig) {
    super();
    this.transformer = this.child('transformer', new Transformer(config));
    this.lm_head = this.child('lm_head', new Linear(config.nEmbd, config.vocabSize, false));
    // Weight tying: the head's matrix is the token embedding (one storage, one gradient).
    this.lm_head.tieWeight(this.transformer.wte.weight);
  }

  /** Parameter count; by default without position embeddings, as GPT-2 papers and nanoGPT report it. */
  countParameters(nonEmbedding = true): number {
    const n = this.numParameters();
    return nonEmbedding ? n - this.transformer.wpe.weight.numel : n;
  }

  /**
   * idx: [B, T] int64 token ids. With `targets` ([B, T], -1 = ignore), returns the mean cross-entropy over every
   * position; without, the logits of the last position. With a `cache`, positions continue from cache.length and
   * the cache is extended.
   */
  forward(idx: torch.Tensor, targets: torch.Tensor, cache?: KVCache): LossResult;
  forward(idx: torch.Tensor, targets?: null, cache?: KVCache): LogitsResult;
  forward(idx: torch.Tensor, targets?: torch.Tensor | null, cache?: KVCache): LogitsResult | LossResult {
    const x = this.hidden(idx, cache);
    if (targets) {
      // The LM head and the cross-entropy in one native op, in row chunks: the [B·T, vocab] logits (412 MB in bf16
      // at GPT-2 124M, batch 4 × 1024) and their gradient never exist whole (native/linear.cc).
      return { logits: null, loss: torch.linearCrossEntropy(x, this.lm_head.weight, targets, { ignoreIndex: -1 }) };
    }
    const T = x.shape[1]!;
    return { logits: this.lm_head.forward(x.narrow(1, T - 1, 1)), loss: null };
  }

  /** The logits of every position, [B, T, vocab] (for checks and exports; training uses `forward` with targets). */
  allLogits(idx: torch.Tensor): torch.Tensor {
    return this.lm_head.forward(this.hidden(idx));
  }

  /** The final LayerNorm's output [B, T, C] for token ids [B, T]. */
  private hidden(idx: torch.Tensor, cache?: KVCache): torch.Tensor {
    const [, T] = idx.shape as [number, number];
    const start = cache?.length ?? 0;
    if (start + T > this.config.blockSize) {
      throw new RangeError(`sequence of ${start + T} tokens exceeds block_size ${this.config.blockSize}`);
    }
    const pos = torch.arange(start, start + T, 1, { device: idx.device });
    let x = this.transformer.drop.forward(this.transformer.wte.forward(idx).add(this.transformer.wpe.forward(pos)));
    this.transformer.h.items.forEach((block, i) => {
      // One scope per block, and the previous block's output released once the next has used it: intermediates
      // that backward does not need are freed as the forward goes, not all at its end (autograd keeps its own
      // references to what it saved). docs/benchmarks.md, "train", has the effect on peak RSS and step time.
      const out = torch.scope(() => block.forward(x, cache, i));
      x.dispose();
      x = out;
    });
    if (cache) cache.length = start + T;
    return this.transformer.ln_f.forward(x);
  }

  /** An empty KV cache for incremental decoding. */
  newCache(): KVCache {
    return { layers: [], length: 0 };
  }

  static disposeCache(cache: KVCache): void {
    for (const l of cache.layers) {
      l?.k.dispose();
      l?.v.dispose();
    }
    cache.layers = [];
    cache.length = 0;
  }
}
