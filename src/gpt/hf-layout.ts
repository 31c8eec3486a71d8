// Hugging Face GPT-2 checkpoints: name mapping and the Conv1D layout. HF stores attention and MLP weights as
// Conv1D with shape [in, out] (x W), ours are Linear [out, in] (x Wᵀ), so those four matrices are transposed.
// HF files may name tensors with or without the "transformer." prefix and carry non-parameter buffers
// (attn.bias / attn.masked_bias, the causal mask), which are skipped.
import * as torch from '../torch/index.js';
import type { GPTConfig, ModelConfigNames } from './config.js';
import { UserError } from '../util/errors.js';

const CONV1D = /\.(attn\.c_attn|attn\.c_proj|mlp\.c_fc|mlp\.c_proj)\.weight$/;
const BUFFERS = /\.attn\.(bias|masked_bias)$/;

/** Our parameter name for an HF tensor name, or null if the tensor is a buffer or the tied head. */
export function fromHfName(name: string): string | null {
  if (BUFFERS.test(name)) return null;
  if (name === 'lm_head.weight') return null; // tied to transformer.wte.weight
  return name.startsWith('transformer.') ? name : `transformer.${name}`;
}

export function needsTranspose(ourName: string): boolean {
  return CONV1D.test(ourName);
}

/** Converts one tensor between the HF Conv1D layout and ours (the same operation both ways). */
export function convertLayout(ourName: string, t: torch.Tensor): torch.Tensor {
  return needsTranspose(ourName) ? t.transpose(0, 1).contiguous() : t;
}

/** Does this set of names look like an HF GPT-2 checkpoint? */
export function isHfGpt2(names: readonly string[]): boolean {
  return names.some((n) => n === 'wte.weight' || n === 'transformer.wte.weight') && names.some((n) => /(^|\.)h\.0\.attn\.c_attn\.weight$/.test(n));
}

/** What each inferred field is called in messages: where in the file it was read. */
export const HF_SHAPE_NAMES: ModelConfigNames = {
  nLayer: 'the number of layers (h.N.attn.c_attn.weight tensors)',
  nHead: "n_head (GPT-2's head size of 64; no config.json beside the file)",
  nEmbd: 'n_embd (the columns of wte.weight)',
  blockSize: 'n_positions (the rows of wpe.weight)',
  vocabSize: 'vocab_size (the rows of wte.weight)',
  dropout: 'dropout',
  bias: 'bias',
};

/**
 * Reads the model shape off the tensor shapes (+ n_head from a config.json when one is known). The values are
 * candidates, as the file states them: checkModelConfig validates them (n_head from config.json may be anything).
 */
export function inferConfig(shapes: ReadonlyMap<string, number[]>, source: string, hfConfig?: { n_head?: unknown }): { [K in keyof GPTConfig]: unknown } {
  const get = (n: string): number[] | undefined => shapes.get(n) ?? shapes.get(`transformer.${n}`);
  const wte = get('wte.weight');
  const wpe = get('wpe.weight');
  for (const [name, shape] of [['wte.weight', wte], ['wpe.weight', wpe]] as const) {
    if (shape === undefined || shape.length !== 2) {
      throw new UserError(
        `${source}: not a usable GPT-2 checkpoint: ${name} is ${shape === undefined ? 'missing' : `of shape [${shape.join(', ')}], not a matrix`}`,
        'the file does not hold a usable GPT-2 model; re-download it',
      );
    }
  }
  let nLayer = 0;
  while (get(`h.${nLayer}.attn.c_attn.weight`)) nLayer++;
  const nEmbd = wte![1]!;
  // GPT-2's head size is 64 in every released size; a config.json beside the weights overrides that.
  const nHead = hfConfig?.n_head ?? Math.max(1, Math.round(nEmbd / 64));
  return { nLayer, nHead, nEmbd, blockSize: wpe![0]!, vocabSize: wte![0]!, dropout: 0, bias: get('h.0.attn.c_attn.bias') !== undefined };
}

/** HF `config.json` for an exported model (GPT2LMHeadModel). */
export function hfConfigJson(c: GPTConfig): Record<string, unknown> {
  return {
    architectures: ['GPT2LMHeadModel'],
    model_type: 'gpt2',
    vocab_size: c.vocabSize,
    n_positions: c.blockSize,
    n_ctx: c.blockSize,
    n_embd: c.nEmbd,
    n_layer: c.nLayer,
    n_head: c.nHead,
    n_inner: null,
    activation_function: 'gelu_new',
    resid_pdrop: c.dropout,
    embd_pdrop: c.dropout,
    attn_pdrop: c.dropout,
    layer_norm_epsilon: 1e-5,
    initializer_range: 0.02,
    bos_token_id: 50256,
    eos_token_id: 50256,
    tie_word_embeddings: true,
    torch_dtype: 'float32',
  };
}
