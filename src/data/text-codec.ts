// Text ↔ GPT-2 tokens for sampling. The data pipeline's Gpt2Tokenizer only needs ordinary encoding; sampling also
// needs decoding (whole texts and token by token for streaming) and, like the original sample.py, lets a prompt
// contain the literal <|endoftext|> marker to mean the end-of-text token.
import type { Tiktoken } from 'tiktoken/lite/init';
import { openGpt2Bpe } from './bpe-wasm.js';
import { GPT2_EOT, GPT2_VOCAB_SIZE, Gpt2Tokenizer } from './tokenizer.js';

const EOT_TEXT = '<|endoftext|>';

/** Incremental UTF-8 decoding: a token may end in the middle of a multi-byte character; the rest comes later. */
export interface TokenStream {
  /** Text completed by this token (possibly empty). */
  push(id: number): string;
  /** Whatever is still buffered (an incomplete character becomes U+FFFD). */
  end(): string;
}

export class TextCodec implements Disposable {
  private enc: Tiktoken | undefined;
  /** Encoding goes through the data pipeline's tokenizer: same ids, and bounded time on pathological text. */
  private tokenizer: Gpt2Tokenizer | undefined;

  private constructor(enc: Tiktoken, tokenizer: Gpt2Tokenizer) {
    this.enc = enc;
    this.tokenizer = tokenizer;
  }

  static async open(): Promise<TextCodec> {
    return new TextCodec(await openGpt2Bpe(), await Gpt2Tokenizer.open());
  }

  private get e(): Tiktoken {
    if (!this.enc) throw new Error('TextCodec used after free()');
    return this.enc;
  }

  /** Encodes a prompt; "<|endoftext|>" in it becomes the end-of-text token. */
  encode(text: string): number[] {
    if (!this.tokenizer) throw new Error('TextCodec used after free()');
    // tiktoken's encode(text, [EOT_TEXT]) is the ordinary encoding of the text between markers, with the
    // end-of-text token for each marker; encodeDocuments appends that token after every part, so joining the
    // parts is the same ids without the last one. (tiktoken's own encode is quadratic in a piece's length and
    // fails on ~1M-character runs; encodeDocuments is not.)
    const { tokens } = this.tokenizer.encodeDocuments(text.split(EOT_TEXT));
    return Array.from(tokens.subarray(0, tokens.length - 1));
  }

  /** Bytes of one token. Ids past GPT-2's vocabulary (a padded vocabulary, e.g. 50304) decode to nothing. */
  private bytes(id: number): Uint8Array {
    if (!Number.isInteger(id) || id < 0 || id >= GPT2_VOCAB_SIZE) return new Uint8Array(0);
    return this.e.decode_single_token_bytes(id);
  }

  /** Decodes tokens to text; invalid UTF-8 (a character cut by max_new_tokens) becomes U+FFFD. */
  decode(ids: readonly number[]): string {
    const valid = ids.filter((id) => Number.isInteger(id) && id >= 0 && id < GPT2_VOCAB_SIZE);
    return new TextDecoder().decode(this.e.decode(Uint32Array.from(valid)));
  }

  stream(): TokenStream {
    const dec = new TextDecoder();
    return {
      push: (id) => dec.decode(this.bytes(id), { stream: true }),
      end: () => dec.decode(),
    };
  }

  free(): void {
    this.tokenizer?.free();
    this.tokenizer = undefined;
    this.enc?.free();
    this.enc = undefined;
  }

  [Symbol.dispose](): void {
    this.free();
  }
}

export { GPT2_EOT };
