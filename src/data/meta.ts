import { GPT2_EOT, GPT2_VOCAB_SIZE, TOKENIZER_NAME } from './tokenizer.js';

/** Per-split facts recorded in meta.json. */
export interface SplitMeta {
  file: string;
  documents: number;
  tokens: number;
  bytes: number;
  sha256: string;
}

/**
 * meta.json: what the .bin files hold and how they were made. It deliberately holds no timestamp, host or worker
 * count, so the same inputs give a byte-identical meta.json too.
 */
export interface PrepareMeta {
  format: 'nanogpt-ts/tokens';
  version: 1;
  source: { id: string; describe: string };
  tokenizer: typeof TOKENIZER_NAME;
  vocab_size: number;
  eot_token: number;
  dtype: 'uint16';
  byte_order: 'little';
  split: { method: 'document-hash'; val_fraction: number; seed: number };
  documents: number;
  tokens: number;
  train: SplitMeta;
  val: SplitMeta;
}

export function buildMeta(args: {
  source: { id: string; describe: string };
  valFraction: number;
  seed: number;
  train: SplitMeta;
  val: SplitMeta;
}): PrepareMeta {
  return {
    format: 'nanogpt-ts/tokens',
    version: 1,
    source: { id: args.source.id, describe: args.source.describe },
    tokenizer: TOKENIZER_NAME,
    vocab_size: GPT2_VOCAB_SIZE,
    eot_token: GPT2_EOT,
    dtype: 'uint16',
    byte_order: 'little',
    split: { method: 'document-hash', val_fraction: args.valFraction, seed: args.seed },
    documents: args.train.documents + args.val.documents,
    tokens: args.train.tokens + args.val.tokens,
    train: args.train,
    val: args.val,
  };
}

export function serializeMeta(meta: PrepareMeta): string {
  return JSON.stringify(meta, null, 2) + '\n';
}
