// GPT-2 shapes: the four OpenAI presets, two small ones for tests and demos, and custom shapes.
import * as os from 'node:os';
import { UserError } from '../util/errors.js';
import { describeValue } from '../util/format.js';

export interface GPTConfig {
  nLayer: number;
  nHead: number;
  nEmbd: number;
  blockSize: number;
  vocabSize: number;
  dropout: number;
  /** Biases in Linear and LayerNorm layers (GPT-2 has them). */
  bias: boolean;
}

export const GPT2_VOCAB_SIZE = 50257;
export const EOT_TOKEN = 50256;

type Shape = Pick<GPTConfig, 'nLayer' | 'nHead' | 'nEmbd'>;

export const PRESETS: Record<string, Shape> = {
  gpt2: { nLayer: 12, nHead: 12, nEmbd: 768 }, // 124M
  'gpt2-medium': { nLayer: 24, nHead: 16, nEmbd: 1024 }, // 350M
  'gpt2-large': { nLayer: 36, nHead: 20, nEmbd: 1280 }, // 774M
  'gpt2-xl': { nLayer: 48, nHead: 25, nEmbd: 1600 }, // 1558M
  // Small shapes that train in minutes on two cores.
  'gpt2-mini': { nLayer: 4, nHead: 4, nEmbd: 128 },
  'gpt2-tiny': { nLayer: 2, nHead: 2, nEmbd: 64 },
};

export const PRETRAINED = ['gpt2', 'gpt2-medium', 'gpt2-large', 'gpt2-xl'] as const;

// ---- validation ----------------------------------------------------------------------------------------------
//
// One check for every place a model shape comes from: the training config (model.* and block_size), a checkpoint's
// model_config metadata, a Hugging Face config.json and the tensor shapes of a Hugging Face file. It runs before
// anything is allocated, so a config that lies (n_layer -1, 2.5, "12", a vocabulary of a billion) is refused with
// its field named instead of reaching libtorch, the allocator or the OOM killer.

/** Per-field upper bounds: far above any GPT-2 (xl: 48 layers, 25 heads, 1600 dims, 1024 positions, 50257 tokens). */
export const MODEL_LIMITS = Object.freeze({ nLayer: 1024, nHead: 1024, nEmbd: 65_536, blockSize: 1_048_576, vocabSize: 16_777_216 });

/** Parameters a model may have: 10 billion, 6.4 times GPT-2 XL (40 GB of float32 weights). */
export const MAX_PARAMETERS = 10_000_000_000;

type IntegerField = keyof typeof MODEL_LIMITS;
const INTEGER_FIELDS = Object.keys(MODEL_LIMITS) as IntegerField[];

/** What each GPTConfig field is called where the values come from (a YAML key, a metadata field, a JSON key). */
export type ModelConfigNames = Record<keyof GPTConfig, string>;

/** The training config's spelling (model.n_layer, block_size, ...). */
export const TRAIN_CONFIG_NAMES: ModelConfigNames = {
  nLayer: 'model.n_layer',
  nHead: 'model.n_head',
  nEmbd: 'model.n_embd',
  blockSize: 'block_size',
  vocabSize: 'model.vocab_size',
  dropout: 'model.dropout',
  bias: 'model.bias',
};

export interface ModelConfigOrigin {
  /** Where the values come from, said first in every message (a file, "the training config"). */
  source: string;
  names: ModelConfigNames;
  /** How to fix a bad value, for this origin. */
  fix: string;
  /** Memory the float32 weights must fit in; default: this machine's (os.totalmem()). */
  memoryBytes?: number;
}

/** Parameters of a GPT of this shape (tied LM head; position embeddings included), computed without building it. */
export function parameterCount(c: Pick<GPTConfig, IntegerField | 'bias'>): number {
  const C = c.nEmbd;
  // Per block: c_attn 3C², attn c_proj C², c_fc 4C², mlp c_proj 4C²; two LayerNorm gains; with biases 11C more.
  const perLayer = 12 * C * C + 2 * C + (c.bias ? 11 * C : 0);
  return (c.vocabSize + c.blockSize) * C + c.nLayer * perLayer + C + (c.bias ? C : 0);
}

/**
 * Validates a model shape from any origin and returns it as a clean GPTConfig (only its own fields). Every problem
 * is a UserError naming the field as the origin spells it, the value, and what was expected.
 */
export function checkModelConfig(candidate: { readonly [K in keyof GPTConfig]?: unknown }, origin: ModelConfigOrigin): GPTConfig {
  const bad = (field: keyof GPTConfig, expected: string): never => {
    throw new UserError(`${origin.source}: ${origin.names[field]} is ${describeValue(candidate[field])}; expected ${expected}`, origin.fix);
  };
  for (const field of INTEGER_FIELDS) {
    const v = candidate[field];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > MODEL_LIMITS[field]) {
      bad(field, `a whole number from 1 to ${MODEL_LIMITS[field].toLocaleString('en-US')}`);
    }
  }
  const d = candidate.dropout;
  if (typeof d !== 'number' || !(d >= 0 && d < 1)) bad('dropout', 'a number in [0, 1)');
  if (typeof candidate.bias !== 'boolean') bad('bias', 'true or false');
  const c: GPTConfig = {
    nLayer: candidate.nLayer as number,
    nHead: candidate.nHead as number,
    nEmbd: candidate.nEmbd as number,
    blockSize: candidate.blockSize as number,
    vocabSize: candidate.vocabSize as number,
    dropout: d as number,
    bias: candidate.bias as boolean,
  };
  if (c.nEmbd % c.nHead !== 0) {
    throw new UserError(`${origin.source}: ${origin.names.nEmbd} (${c.nEmbd}) is not divisible by ${origin.names.nHead} (${c.nHead}); each head gets n_embd / n_head dimensions`, origin.fix);
  }
  const params = parameterCount(c);
  const shape = `${c.nLayer} layers, ${c.nEmbd} dims, vocabulary ${c.vocabSize}, ${c.blockSize} positions`;
  if (params > MAX_PARAMETERS) {
    throw new UserError(
      `${origin.source}: the model shape (${shape}) has ${formatParams(params)} parameters, more than the limit of ${formatParams(MAX_PARAMETERS)}`,
      origin.fix,
    );
  }
  const memory = origin.memoryBytes ?? os.totalmem();
  if (params * 4 > memory) {
    throw new UserError(
      `${origin.source}: the model shape (${shape}) has ${formatParams(params)} parameters, ${gigabytes(params * 4)} of float32 weights, more than this machine's ${gigabytes(memory)} of memory`,
      origin.fix,
    );
  }
  return c;
}

function formatParams(n: number): string {
  return n >= 1e9 ? `${(n / 1e9).toFixed(1)} billion` : `${(n / 1e6).toFixed(1)} million`;
}

function gigabytes(bytes: number): string {
  return `${(bytes / 1e9).toFixed(1)} GB`;
}

/** Transformer FLOPs per token for forward+backward (PaLM appendix B, as nanoGPT's estimate_mfu). */
export function flopsPerToken(c: GPTConfig, nParams: number, seqLen: number): number {
  return 6 * nParams + 12 * c.nLayer * c.nEmbd * seqLen;
}
