// GPT-2 shapes: the four OpenAI presets, two small ones for tests and demos, and custom shapes.
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

export function validateConfig(c: GPTConfig): string[] {
  const errors: string[] = [];
  for (const k of ['nLayer', 'nHead', 'nEmbd', 'blockSize', 'vocabSize'] as const) {
    if (!Number.isInteger(c[k]) || c[k] < 1) errors.push(`${k} must be a positive integer, got ${c[k]}`);
  }
  if (c.nEmbd % c.nHead !== 0) errors.push(`n_embd (${c.nEmbd}) must be divisible by n_head (${c.nHead})`);
  if (!(c.dropout >= 0 && c.dropout < 1)) errors.push(`dropout must be in [0, 1), got ${c.dropout}`);
  return errors;
}

/** Transformer FLOPs per token for forward+backward (PaLM appendix B, as nanoGPT's estimate_mfu). */
export function flopsPerToken(c: GPTConfig, nParams: number, seqLen: number): number {
  return 6 * nParams + 12 * c.nLayer * c.nEmbd * seqLen;
}
