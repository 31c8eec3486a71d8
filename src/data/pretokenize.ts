/**
 * GPT-2's pre-tokenization split (text → the pieces BPE runs on), done with V8's regex engine so that BPE results
 * can be memoised per piece (see Gpt2Tokenizer.encodeDocuments). The pieces must be exactly the ones tiktoken's
 * own split produces, or the tokens would differ; test/data/tokenizer.test.ts checks that for every code point.
 *
 * GPT-2's pattern is `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`. Two details
 * decide whether V8 agrees with tiktoken (Rust's regex crate):
 * - `\s` means Unicode White_Space in Rust but a different list in JavaScript (JS adds U+FEFF and lacks U+0085),
 *   so the whitespace class is spelled out as White_Space.
 * - `\p{L}` / `\p{N}` follow each engine's Unicode tables. Node's ICU knows Unicode 17, tiktoken's tables stop at
 *   16: the letters and digits Unicode 17 added are "other" to tiktoken. Text containing one of them
 *   (`hasUnicodeDrift`) is split by GPT2_PIECE_AT_UNICODE16, which takes them out of the letter and number classes
 *   (set subtraction, the `v` flag) so they fall into "other", as in tiktoken. Only such text uses it: the
 *   subtraction makes V8's matching ~1.6x slower (97 → 154 ms for 3M characters of the embedded corpus here).
 *
 * Linear time on any input: each alternative is a single greedy run of one class, and the only backtracking is
 * `\s+(?!\S)` giving back one character at the end of a run of white space (the test times 1M-character runs).
 */

/** Unicode White_Space, which is what `\s` means to tiktoken. */
const WS = '\\t-\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';

/**
 * Code points that V8 (Unicode 17) classifies as letters or numbers and tiktoken (Unicode 16) does not: found by
 * comparing both splits over every code point (the test does it again, so a Node upgrade that moves the tables
 * fails loudly instead of producing different tokens).
 */
const UNICODE_DRIFT =
  '\\u088f\\u0c5c\\u0cdc\\ua7ce\\ua7cf\\ua7d2\\ua7d4\\ua7f1' +
  '\\u{10940}-\\u{10959}\\u{10ec5}-\\u{10ec7}\\u{11db0}-\\u{11ddb}\\u{11de0}-\\u{11de9}\\u{16ea0}-\\u{16eb8}' +
  '\\u{16ebb}-\\u{16ed3}\\u{16ff2}-\\u{16ff6}\\u{187f8}-\\u{187ff}\\u{18d09}-\\u{18d1e}\\u{18d80}-\\u{18df2}' +
  '\\u{1e6c0}-\\u{1e6de}\\u{1e6e0}-\\u{1e6e2}\\u{1e6e4}-\\u{1e6e5}\\u{1e6e7}-\\u{1e6ed}\\u{1e6f0}-\\u{1e6f4}' +
  '\\u{1e6fe}-\\u{1e6ff}\\u{2b73a}-\\u{2b73f}\\u{2cea2}-\\u{2cead}\\u{323b0}-\\u{33479}';

/** GPT-2's pattern with the given letter and number classes. */
function gpt2Pattern(letter: string, number: string): string {
  return `'(?:[sdmt]|ll|ve|re)| ?${letter}+| ?${number}+| ?[^${WS}${letter}${number}]+|[${WS}]+(?![^${WS}])|[${WS}]+`;
}

/**
 * One piece per match; the regex has no lookbehind, so splitting a suffix that starts at a piece boundary gives
 * the same pieces as splitting the whole text (what lets an encoder hand the rest of a text to tiktoken). So does a
 * prefix that ends at a piece boundary: each of its pieces is the same run of one class (the run ended where the
 * piece ended), and `\s+(?!\S)` only gains by the text ending there. Together: consecutive pieces joined are a
 * text tiktoken splits into those same pieces, so an encoder may hand tiktoken any such stretch.
 */
export const GPT2_PIECE = new RegExp(gpt2Pattern('\\p{L}', '\\p{N}'), 'gu');

/**
 * GPT2_PIECE anchored where lastIndex points (sticky). Every character starts some piece (a letter, a number,
 * white space or anything else), so pieces tile the text and each one starts where the previous ended: an encoder
 * can step with test() and slice, without the match array exec() allocates per piece.
 */
export const GPT2_PIECE_AT = new RegExp(GPT2_PIECE.source, 'uy');

/** GPT2_PIECE_AT with tiktoken's (Unicode 16) letters and numbers, for text where `hasUnicodeDrift` is true. */
export const GPT2_PIECE_AT_UNICODE16 = new RegExp(
  gpt2Pattern(`[\\p{L}--[${UNICODE_DRIFT}]]`, `[\\p{N}--[${UNICODE_DRIFT}]]`),
  'vy',
);

const HAS_DRIFT = new RegExp(`[${UNICODE_DRIFT}]`, 'u');

/** True when `text` holds a character the two engines' Unicode tables disagree on (rare: Unicode 17 scripts). */
export function hasUnicodeDrift(text: string): boolean {
  return HAS_DRIFT.test(text);
}

/** The regex that splits `text` as tiktoken does. */
export function pieceRegexFor(text: string): RegExp {
  return hasUnicodeDrift(text) ? GPT2_PIECE_AT_UNICODE16 : GPT2_PIECE_AT;
}

/** The pieces of `text`, in order (they concatenate back to `text`). For tests and tools; encoders step pieceRegexFor. */
export function splitPieces(text: string): string[] {
  // A fresh copy: the shared regexes' lastIndex is moved by encoders.
  const re = new RegExp(pieceRegexFor(text));
  const pieces: string[] = [];
  for (let start = 0; start < text.length; start = re.lastIndex) {
    if (!re.test(text)) throw new Error(`internal error: no GPT-2 piece at offset ${start}`);
    pieces.push(text.slice(start, re.lastIndex));
  }
  return pieces;
}
