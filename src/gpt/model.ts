// GPT-2 in one file: token + position embeddings, pre-LayerNorm blocks of causal self-attention and a tanh-GELU
// MLP, a final LayerNorm and an LM head tied to the token embedding. Parameter names are Hugging Face's.
import * as torch from '../torch/index.js';
import { Dropout, Embedding, LayerNorm, Linear, Module, ModuleList } from '../nn/index.js';
import { causalAttention } from './attention.js';
import type { GPTConfig } from './config.js';

/** Keys and values of earlier positions, one entry per layer, for incremental decoding. */
export interface KVCache {
  layers: { k: torch.Tensor; v: torch.Tensor }[];
  /** Number of positions already in the cache. */
  length: number;
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

  /** x: [B, T, C]. `mask` (true = blocked) is [T, Tk]; `past` holds earlier keys/values and is updated in place. */
  forward(x: torch.Tensor, mask: torch.Tensor | null, past?: { k: torch.Tensor; v: torch.Tensor } | null): { y: torch.Tensor; k: torch.Tensor; v: torch.Tensor } {
    const [B, T, C] = x.shape as [number, number, number];
    const H = this.cfg.nHead;
    const D = C / H;
    const heads = (t: torch.Tensor): torch.Tensor => t.view(B, T, H, D).transpose(1, 2); // [B, H, T, D]
    const [q, k0, v0] = this.c_attn.forward(x).split(C, 2) as [torch.Tensor, torch.Tensor, torch.Tensor];
    let k = heads(k0);
    let v = heads(v0);
    if (past) {
      k = torch.cat([past.k, k], 2);
      v = torch.cat([past.v, v], 2);
    }
    const y = causalAttention(heads(q), k, v, mask, (w) => this.attnDropout.forward(w)).view(B, T, C);
    return { y: this.residDropout.forward(this.c_proj.forward(y)), k, v };
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
    let h = this.c_fc.forward(x);
    // Under bf16 autocast c_fc yields bfloat16, and libtorch 1.13's bfloat16 GELU (forward and backward) is not
    // vectorised: at [4, 1024, 3072] it took 0.107 s per layer against 0.045 s through float32, casts included
    // (python3-torch, same kernels). c_proj casts the result back to bfloat16 as autocast always does.
    if (h.dtype === 'bfloat16') h = h.float();
    return this.dropout.forward(this.c_proj.forward(torch.gelu(h, 'tanh')));
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
  forward(x: torch.Tensor, mask: torch.Tensor | null, past?: { k: torch.Tensor; v: torch.Tensor } | null): { x: torch.Tensor; k: torch.Tensor; v: torch.Tensor } {
    const a = this.attn.forward(this.ln_1.forward(x), mask, past);
    const h = x.add(a.y);
    return { x: h.add(this.mlp.forward(this.ln_2.forward(h))), k: a.k, v: a.v };
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

export interface ForwardResult {
  /** [B, T, vocab] with targets; [B, 1, vocab] (last position only) without, as nanoGPT. */
  logits: torch.Tensor;
  loss: torch.Tensor | null;
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
   * idx: [B, T] int64 token ids. With `targets` ([B, T], -1 = ignore), returns logits for every position and the
   * mean cross-entropy. With a `cache`, positions continue from cache.length and the cache is extended.
   */
  forward(idx: torch.Tensor, targets?: torch.Tensor | null, cache?: KVCache): ForwardResult {
    const [, T] = idx.shape as [number, number];
    const start = cache?.length ?? 0;
    if (start + T > this.config.blockSize) {
      throw new RangeError(`sequence of ${start + T} tokens exceeds block_size ${this.config.blockSize}`);
    }
    const pos = torch.arange(start, start + T, 1, { device: idx.device });
    let x = this.transformer.drop.forward(this.transformer.wte.forward(idx).add(this.transformer.wpe.forward(pos)));
    // Blocked positions: key j > query i (in absolute positions). Not needed for a single new token.
    const Tk = start + T;
    const mask = T === 1 ? null : torch.ones([T, Tk], { dtype: 'bool', device: idx.device }).triu(start + 1);
    this.transformer.h.items.forEach((block, i) => {
      // One scope per block, and the previous block's output released once the next has used it: intermediates
      // that backward does not need are freed as the forward goes, not all at its end (autograd keeps its own
      // references to what it saved). docs/benchmarks.md, "train", has the effect on peak RSS and step time.
      const out = torch.scope(() => {
        const o = block.forward(x, mask, cache?.layers[i]);
        return cache ? o : { x: o.x };
      });
      x.dispose();
      x = out.x;
      if (cache && 'k' in out) {
        const old = cache.layers[i];
        cache.layers[i] = { k: torch.keep(out.k), v: torch.keep(out.v) };
        old?.k.dispose();
        old?.v.dispose();
      }
    });
    if (cache) cache.length = Tk;
    x = this.transformer.ln_f.forward(x);
    if (targets) {
      const logits = this.lm_head.forward(x);
      const V = this.config.vocabSize;
      // Computed in float32 from the (bf16 under autocast) logits without keeping float32 log-probabilities for
      // backward: 824 MB less held at GPT-2 124M, batch 4 × 1024 (torch.meanCrossEntropy).
      const loss = torch.meanCrossEntropy(logits.view(-1, V), targets.reshape(-1), { ignoreIndex: -1 });
      return { logits, loss };
    }
    return { logits: this.lm_head.forward(x.narrow(1, T - 1, 1)), loss: null };
  }

  /** An empty KV cache for incremental decoding. */
  newCache(): KVCache {
    return { layers: [], length: 0 };
  }

  static disposeCache(cache: KVCache): void {
    for (const l of cache.layers) {
      l.k.dispose();
      l.v.dispose();
    }
    cache.layers = [];
    cache.length = 0;
  }
}
