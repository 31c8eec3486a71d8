import type { Tiktoken } from 'tiktoken/lite/init';
import { gpt2VocabPieces, openGpt2Bpe } from './bpe-wasm.js';
import { LongPieceBpe } from './long-piece-bpe.js';
import { pieceRegexFor } from './pretokenize.js';

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
 * Memo of BPE results per piece (besides the vocabulary, below). Natural text repeats its pieces (the embedded
 * corpus: 2.0M pieces, 32K distinct), so most pieces cost one Map lookup instead of a WASM call: 8.5 → ~20 MB/s
 * per thread on this machine (see docs/benchmarks.md, "tokenize"). Bounded so a worker's memory does not grow
 * with the corpus.
 */
const CACHE_MAX_ENTRIES = 1 << 17;
/**
 * Longer pieces (runs of punctuation, long numbers) rarely repeat; they go straight to BPE. The cap also bounds
 * the memo's memory: 131,072 keys of at most 48 characters, each a copy (see `ownCopy`).
 */
const CACHE_MAX_PIECE_CHARS = 48;
/**
 * Pieces longer than this many UTF-16 units go to LongPieceBpe instead of tiktoken, whose time per byte grows with
 * the piece's length from ~128 bytes on (runs of letters, measured here: ~0.19 µs/B at 128 B, 0.25 at 256 B, 0.4 at
 * 512 B, 1.3 at 1 KB, 2.8 at 4 KB, 11 at 16 KB, 44 at 64 KB; digits, punctuation, CJK and emoji alike or worse), and
 * which crashes on 1M-character runs. LongPieceBpe costs 0.1–0.6 µs/B at any length, depending on the characters.
 * 256 units is where tiktoken's cost has started to grow but is still below LongPieceBpe's for letters. A piece this
 * long is also longer than any GPT-2 token (128 bytes at most), so it is never in the vocabulary or the memo.
 */
export const LONG_PIECE_CHARS = 256;
/**
 * Text whose pieces keep missing the memo (base64, hex dumps, an unfamiliar script) is cheaper to hand to tiktoken
 * in stretches of many pieces: a miss costs one WASM call per piece (~4.5 µs measured; all-miss text ran at
 * 2.3 MB/s), tiktoken on long stretches ~0.6 µs per piece (8.5 MB/s). Misses are counted over windows of this many
 * pieces; a window with more than MAX_MISS_SHARE misses sends the next DIRECT_CHARS characters of pieces to
 * tiktoken that way (long pieces excepted), then the memo is tried again.
 */
const WINDOW_PIECES = 4096;
const MAX_MISS_SHARE = 0.3;
const DIRECT_CHARS = 256 * 1024;

/**
 * The memo starts out knowing every piece that is a token itself. That is exact: tiktoken looks a whole piece up in
 * the vocabulary before running BPE on it (the test checks it for every such piece), so these pieces never need a
 * WebAssembly call. Measured on a fresh worker's first pass over the embedded corpus: 18K of its 32K distinct
 * pieces (97 % of piece occurrences) are tokens, and the pass took ~650 instead of ~800 ms; building the map costs
 * ~70 ms per thread, once (the map is shared by every tokenizer in the thread).
 */
let threadVocab: Map<string, number> | undefined;

/**
 * A copy of `piece` that does not hold on to the text it was sliced from. V8 makes a slice of 13 or more characters
 * a view of its parent string, so a memo key sliced from a 1 MB document kept the whole document alive as long as
 * the key lived (measured: 200 such keys held 214 MB of heap). Concatenation flattens into a new string.
 */
function ownCopy(piece: string): string {
  return (' ' + piece).slice(1);
}

/** A growable uint16 token buffer. */
class TokenBuffer {
  data: Uint16Array;
  length = 0;

  constructor(capacity: number) {
    this.data = new Uint16Array(Math.max(16, capacity));
  }

  reserve(extra: number): void {
    if (this.length + extra <= this.data.length) return;
    const grown = new Uint16Array(Math.max(this.data.length * 2, this.length + extra));
    grown.set(this.data.subarray(0, this.length));
    this.data = grown;
  }

  pushIds(ids: Uint32Array): void {
    this.reserve(ids.length);
    // Every id < 50257 < 65536, so the narrowing copy is lossless.
    this.data.set(ids, this.length);
    this.length += ids.length;
  }

  push(id: number): void {
    this.reserve(1);
    this.data[this.length++] = id;
  }
}

/**
 * GPT-2 BPE (tiktoken's WASM build with the GPT-2 ranks it ships). The encoder lives in WASM memory the GC cannot
 * see, so whoever opens one must call free(); `using` does it automatically.
 */
export class Gpt2Tokenizer implements Disposable {
  private enc: Tiktoken | undefined;
  /** piece → its token (a number: most pieces are one token) or tokens. */
  private readonly memo = new Map<string, number | Uint32Array>();
  /** Pieces that are themselves GPT-2 tokens (97 % of the embedded corpus's pieces); shared, never changed. */
  private readonly vocab: Map<string, number>;
  private windowPieces = 0;
  private windowMisses = 0;
  /** Characters of pieces still to send to tiktoken in stretches after a window of misses. */
  private directChars = 0;

  private constructor(enc: Tiktoken, vocab: Map<string, number>) {
    this.enc = enc;
    this.vocab = vocab;
  }

  /** Opens an encoder; `module` is a compiled lite module to share (see bpe-wasm.ts), else one is compiled. */
  static async open(module?: WebAssembly.Module): Promise<Gpt2Tokenizer> {
    const enc = await openGpt2Bpe(module);
    threadVocab ??= gpt2VocabPieces();
    return new Gpt2Tokenizer(enc, threadVocab);
  }

  private get e(): Tiktoken {
    if (!this.enc) throw new Error('Gpt2Tokenizer used after free()');
    return this.enc;
  }

  /**
   * Ordinary encoding: text that looks like a special token ("<|endoftext|>") is encoded as the plain characters
   * it is, so a document can never inject an end-of-text marker. This is tiktoken itself, the reference the tests
   * hold encodeDocuments to; it is quadratic in the length of a piece and fails on ~1M-character ones, which
   * encodeDocuments handles (see LONG_PIECE_CHARS).
   */
  encodeOrdinary(text: string): Uint32Array {
    return this.e.encode_ordinary(text);
  }

  /**
   * Encodes documents into one uint16 buffer with EOT after each: the exact bytes that go into a .bin file.
   * The tokens are those of encodeOrdinary (tests compare them on the whole embedded corpus, on every code point
   * and on long runs of every class of character); the memo and LongPieceBpe only change how fast they come.
   */
  encodeDocuments(texts: readonly string[]): EncodedBatch {
    const counts = new Uint32Array(texts.length);
    let chars = 0;
    for (const t of texts) chars += t.length;
    // ~4.7 characters per token in English; the buffer grows if a batch needs more.
    const out = new TokenBuffer(Math.ceil(chars / 3) + texts.length);
    for (let i = 0; i < texts.length; i++) {
      const before = out.length;
      this.encodeInto(texts[i]!, out);
      out.push(GPT2_EOT);
      counts[i] = out.length - before;
    }
    // A view, not a copy: the worker transfers the whole buffer (capacity ~1.5x the tokens, for one batch).
    return { tokens: out.data.subarray(0, out.length), counts };
  }

  private encodeInto(text: string, out: TokenBuffer): void {
    const re = pieceRegexFor(text);
    re.lastIndex = 0;
    // In direct mode, where the stretch of pieces not yet handed to tiktoken starts.
    let stretch = 0;
    for (let start = 0; start < text.length; start = re.lastIndex) {
      if (!re.test(text)) throw new Error(`internal error: no GPT-2 piece at offset ${start} of a ${text.length}-character text`);
      const end = re.lastIndex;
      const long = end - start > LONG_PIECE_CHARS;
      if (this.directChars > 0) {
        // Consecutive pieces joined split into those same pieces (see GPT2_PIECE), so a stretch of them is encoded
        // by one tiktoken call; a long piece in it ends the stretch and goes to LongPieceBpe.
        if (long) {
          this.encodeStretch(text, stretch, start, out);
          out.pushIds(this.longPieces.encode(text.slice(start, end)));
          stretch = end;
        }
        this.directChars = Math.max(0, this.directChars - (end - start));
        if (this.directChars === 0) this.encodeStretch(text, stretch, end, out);
        continue;
      }
      const piece = text.slice(start, end);
      let ids = long ? undefined : (this.vocab.get(piece) ?? this.memo.get(piece));
      if (ids === undefined) {
        this.windowMisses++;
        const encoded = long ? this.longPieces.encode(piece) : this.e.encode_ordinary(piece);
        ids = encoded.length === 1 ? encoded[0]! : encoded;
        if (piece.length <= CACHE_MAX_PIECE_CHARS) {
          if (this.memo.size >= CACHE_MAX_ENTRIES) this.memo.clear();
          this.memo.set(ownCopy(piece), ids);
        }
      }
      if (typeof ids === 'number') out.push(ids);
      else out.pushIds(ids);
      if (++this.windowPieces === WINDOW_PIECES) {
        const missing = this.windowMisses > MAX_MISS_SHARE * WINDOW_PIECES;
        this.windowPieces = 0;
        this.windowMisses = 0;
        if (missing) {
          this.directChars = DIRECT_CHARS;
          stretch = end;
        }
      }
    }
    if (this.directChars > 0) this.encodeStretch(text, stretch, text.length, out);
  }

  /** Tokens of text[from, to), a stretch of whole pieces none of which is long, by one tiktoken call. */
  private encodeStretch(text: string, from: number, to: number, out: TokenBuffer): void {
    if (to > from) out.pushIds(this.e.encode_ordinary(text.slice(from, to)));
  }

  private get longPieces(): LongPieceBpe {
    return LongPieceBpe.forThread();
  }

  free(): void {
    this.enc?.free();
    this.enc = undefined;
    this.memo.clear();
  }

  [Symbol.dispose](): void {
    this.free();
  }
}

/** One-shot convenience for small inputs and tests: ordinary-encodes `text` (no EOT) and frees the encoder. */
export async function encodeOrdinary(text: string): Promise<number[]> {
  const tok = await Gpt2Tokenizer.open();
  try {
    return Array.from(tok.encodeOrdinary(text));
  } finally {
    tok.free();
  }
}
