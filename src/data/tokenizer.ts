import { get_encoding, type Tiktoken } from 'tiktoken';

/** GPT-2's vocabulary: 50,000 merges + 256 byte tokens + <|endoftext|>. */
export const GPT2_VOCAB_SIZE = 50257;
/** <|endoftext|>: appended after every document, as the original prepare.py does. */
export const GPT2_EOT = 50256;
export const TOKENIZER_NAME = 'gpt2';

/** Tokens of a batch of documents, each followed by EOT, plus where each document ends. */
export interface EncodedBatch {
  /** All tokens of the batch, documents in order, each document's tokens followed by GPT2_EOT. */
  tokens: Uint16Array;
  /** tokens per document, EOT included (so they sum to tokens.length). */
  counts: Uint32Array;
}

/**
 * GPT-2 BPE (tiktoken's WASM build, which bundles the ranks). The encoder lives in WASM memory the GC cannot
 * see, so whoever opens one must call free(); `using` does it automatically.
 */
export class Gpt2Tokenizer implements Disposable {
  private enc: Tiktoken | undefined = get_encoding('gpt2');

  /**
   * Ordinary encoding: text that looks like a special token ("<|endoftext|>") is encoded as the plain characters
   * it is, so a document can never inject an end-of-text marker.
   */
  encodeOrdinary(text: string): Uint32Array {
    if (!this.enc) throw new Error('Gpt2Tokenizer used after free()');
    return this.enc.encode_ordinary(text);
  }

  /** Encodes documents into one uint16 buffer with EOT after each: the exact bytes that go into a .bin file. */
  encodeDocuments(texts: readonly string[]): EncodedBatch {
    const parts: Uint32Array[] = [];
    const counts = new Uint32Array(texts.length);
    let total = 0;
    for (let i = 0; i < texts.length; i++) {
      const ids = this.encodeOrdinary(texts[i]!);
      parts.push(ids);
      counts[i] = ids.length + 1;
      total += ids.length + 1;
    }
    const tokens = new Uint16Array(total);
    let at = 0;
    for (const ids of parts) {
      // Every id < 50257 < 65536, so the narrowing copy is lossless.
      tokens.set(ids, at);
      at += ids.length;
      tokens[at++] = GPT2_EOT;
    }
    return { tokens, counts };
  }

  free(): void {
    this.enc?.free();
    this.enc = undefined;
  }

  [Symbol.dispose](): void {
    this.free();
  }
}

/** One-shot convenience for small inputs and tests: ordinary-encodes `text` (no EOT) and frees the encoder. */
export function encodeOrdinary(text: string): number[] {
  const tok = new Gpt2Tokenizer();
  try {
    return Array.from(tok.encodeOrdinary(text));
  } finally {
    tok.free();
  }
}
