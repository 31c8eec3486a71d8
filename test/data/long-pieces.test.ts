// Pathological text: pieces far longer than natural words (a minified file, a line of 1M dashes, a huge number).
// tiktoken's BPE is quadratic in a piece's length and crashes at ~1M characters; LongPieceBpe must give its tokens
// in O(n log n), and the tokenizer must route long pieces there on every path (memo, direct, Unicode drift).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { openGpt2Bpe } from '../../src/data/bpe-wasm.js';
import { LongPieceBpe } from '../../src/data/long-piece-bpe.js';
import { hasUnicodeDrift, splitPieces } from '../../src/data/pretokenize.js';
import { Gpt2Tokenizer, GPT2_EOT, LONG_PIECE_CHARS } from '../../src/data/tokenizer.js';
import { mulberry32 } from '../helpers/random.js';

type Rng = () => number;
const pick = <T>(rnd: Rng, xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
/**
 * `n` draws from `alphabet` (strings, so 4-byte characters count as one). Past 4,096 draws the first 4,096 repeat:
 * random enough for a 1M-character run, and ~100x cheaper to make.
 */
const drawn = (alphabet: readonly string[]) => (rnd: Rng, n: number): string => {
  let s = '';
  for (let i = 0; i < Math.min(n, 4096); i++) s += pick(rnd, alphabet);
  return n > 4096 ? s.repeat(Math.ceil(n / 4096)) : s;
};
/** A random pattern of 1–5 draws from `alphabet`, repeated to n draws ("abab…", "x.-x.-…"). */
const repeating = (alphabet: readonly string[]) => (rnd: Rng, n: number): string => {
  const unit = drawn(alphabet)(rnd, 1 + Math.floor(rnd() * 5));
  return unit.repeat(Math.ceil(n / unit.length)).slice(0, n);
};
const chars = (s: string): string[] => Array.from(s);

const LOWER = chars('abcdefghijklmnopqrstuvwxyz');
const LATIN = chars('éèàüößçøåñÉ');
const CJK = chars('中文字的一是不了人我在有他这为之大来以个');
const CJK_ANY = Array.from({ length: 20_000 }, (_, i) => String.fromCodePoint(0x4e00 + i));
const CYRILLIC = chars('абвгдежзийклмнопрстуфхцчшщыэюя');
const MATH_LETTERS = chars('𝒜𝒞𝒟𝔘𝔙𝕏𝕐'); // letters outside the BMP: 4 bytes each
const DIGITS = chars('0123456789');
const OTHER_DIGITS = chars('٠١٢٣٤٥٦٧٨٩');
const WHITE = chars(' \t\n\r\u000b\u000c\u00a0\u3000\u2003\u0085');
const PUNCT = chars('.,;:!?-=*#()[]{}<>/\\|"`~@$%^&_+');
const EMOJI = chars('😀👍🏽🎉🔥💯❤️\u200d');

/** Classes of characters whose runs are one piece each (a leading space joins letters, digits and punctuation). */
const CLASSES: Record<string, (rnd: Rng, n: number) => string> = {
  'one ASCII letter': (_, n) => 'a'.repeat(n),
  'random ASCII letters': drawn(LOWER),
  'repeating letters (ab×N …)': repeating(LOWER),
  'space + letters': (rnd, n) => ' ' + drawn(LOWER)(rnd, n - 1),
  'é repeated': (_, n) => 'é'.repeat(n),
  'accented Latin': drawn([...LOWER, ...LATIN]),
  'CJK': drawn(CJK),
  'Cyrillic': drawn(CYRILLIC),
  '4-byte letters': drawn(MATH_LETTERS),
  'one digit': (_, n) => '7'.repeat(n),
  'random digits': drawn(DIGITS),
  'repeating digits': repeating(DIGITS),
  'Arabic-Indic digits': drawn(OTHER_DIGITS),
  'spaces': (_, n) => ' '.repeat(n),
  'tabs, newlines, other white space': drawn(WHITE),
  'one punctuation mark': (_, n) => '.'.repeat(n),
  'random punctuation': drawn(PUNCT),
  'repeating punctuation': repeating(PUNCT),
  'emoji (4-byte UTF-8, ZWJ)': drawn(EMOJI),
  'lone surrogates': (_, n) => '\ud800'.repeat(n),
};

test('LongPieceBpe gives tiktoken\'s tokens for single pieces of every class and length', async () => {
  const rnd = mulberry32(1901); // a failing case reproduces
  const bpe = LongPieceBpe.forThread();
  const enc = await openGpt2Bpe();
  try {
    let cases = 0;
    for (const [name, make] of Object.entries(CLASSES)) {
      // Lengths 1 … 1,200 characters (up to ~5 KB of UTF-8), log-uniform: many short, some past LONG_PIECE_CHARS.
      for (let k = 0; k < 16; k++) {
        const n = Math.max(1, Math.round(Math.exp(rnd() * Math.log(1200))));
        const piece = make(rnd, n);
        assert.equal(splitPieces(piece).length, 1, `${name}: the test's piece is not one piece`);
        const expected = Array.from(enc.encode_ordinary(piece));
        assert.deepEqual(Array.from(bpe.encode(piece)), expected, `${name}, ${n} characters: ${JSON.stringify(piece.slice(0, 40))}…`);
        cases++;
      }
    }
    assert.ok(cases >= 300);
  } finally {
    enc.free();
  }
});

/** Natural-looking text with runs of `make` (each just past LONG_PIECE_CHARS or up to ~1,500) in it. */
function textWithRuns(rnd: Rng, make: (rnd: Rng, n: number) => string, junk: boolean): string {
  const words = ['the', ' of', ' and', ' 42', ',', '.', ' ', '\n', "'s", ' été', ' 中文'];
  let t = '';
  for (let r = 0; r < 3; r++) {
    for (let i = 0; i < 30; i++) t += junk ? String.fromCodePoint(0x4e00 + Math.floor(rnd() * 20000)) : pick(rnd, words);
    t += pick(rnd, ['', ' ', '\n', 'x']) + make(rnd, LONG_PIECE_CHARS + 1 + Math.floor(rnd() * (r === 0 ? 8 : 1200)));
  }
  return t;
}

test('encodeDocuments equals tiktoken on texts with long runs of every class, on each of its paths', async () => {
  const rnd = mulberry32(77);
  // One tokenizer for text it memoises piece by piece, one for text after a window of memo misses, which it hands
  // to tiktoken in stretches (direct mode, which then lasts 256K characters).
  const plain = await Gpt2Tokenizer.open();
  const direct = await Gpt2Tokenizer.open();
  const seen = { memo: 0, direct: 0 };
  let active: Gpt2Tokenizer = plain;
  const state = (tok: Gpt2Tokenizer) => tok as unknown as { directChars: number; windowPieces: number; windowMisses: number };
  const original = LongPieceBpe.prototype.encode;
  LongPieceBpe.prototype.encode = function (this: LongPieceBpe, piece: string) {
    if (piece.length > LONG_PIECE_CHARS) seen[state(active).directChars > 0 ? 'direct' : 'memo']++;
    return original.call(this, piece);
  };
  const expected = { memo: 0, direct: 0 };
  const check = (tok: Gpt2Tokenizer, texts: string[], what: string): void => {
    active = tok;
    for (const t of texts) expected[tok === plain ? 'memo' : 'direct'] += splitPieces(t).filter((p) => p.length > LONG_PIECE_CHARS).length;
    const reference = texts.flatMap((t) => [...tok.encodeOrdinary(t), GPT2_EOT]);
    assert.deepEqual(Array.from(tok.encodeDocuments(texts).tokens), reference, what);
  };
  try {
    for (const [name, make] of Object.entries(CLASSES)) {
      // Plain text, and text with a letter from Unicode 17 (split with tiktoken's older tables).
      const drift = `\u{10940}x${textWithRuns(rnd, make, false)}`;
      assert.ok(hasUnicodeDrift(drift));
      check(plain, [textWithRuns(rnd, make, false), drift], `${name} (memo)`);
      // 5,000 pieces, half of them new to the memo (words of three random CJK characters, and ¤), then runs. Each class starts from memo mode, so that the
      // window of misses turns direct mode on and its 256K characters last to the end of the text.
      Object.assign(state(direct), { directChars: 0, windowPieces: 0, windowMisses: 0 });
      let missing = '';
      for (let i = 0; i < 2_500; i++) missing += drawn(CJK_ANY)(rnd, 3) + '¤';
      check(direct, [missing + textWithRuns(rnd, make, true)], `${name} (direct)`);
    }
  } finally {
    LongPieceBpe.prototype.encode = original;
    plain.free();
    direct.free();
  }
  // Every long piece went to LongPieceBpe, on the path the test meant.
  assert.deepEqual(seen, expected);
  assert.ok(seen.direct >= 2 * Object.keys(CLASSES).length, `long pieces in direct mode: ${seen.direct}`);
});

test('1M-character runs of every class: the split stays linear, the tokens decode back to the run', async () => {
  const rnd = mulberry32(4242);
  const tok = await Gpt2Tokenizer.open();
  const enc = await openGpt2Bpe();
  const utf8 = new TextDecoder();
  try {
    for (const [name, make] of Object.entries(CLASSES)) {
      const run = make(rnd, 1 << 20);
      // A regex that backtracked over the run would take minutes; linear matching takes milliseconds.
      let t0 = performance.now();
      const pieces = splitPieces(run + 'x');
      const splitMs = performance.now() - t0;
      assert.ok(pieces.length <= 3, `${name}: ${pieces.length} pieces`);
      assert.ok(splitMs < 5000, `${name}: splitting took ${splitMs.toFixed(0)} ms`);
      // Encoding whole runs of every class would take seconds here; 64K characters show the path is taken and
      // exact (prepare's test times 1M-character files).
      const part = run.slice(0, 1 << 16).replace(/[\ud800-\udbff]$/, '');
      t0 = performance.now();
      const { tokens } = tok.encodeDocuments([part]);
      const encodeMs = performance.now() - t0;
      assert.ok(encodeMs < 10_000, `${name}: encoding 64K characters took ${encodeMs.toFixed(0)} ms`);
      assert.equal(tokens[tokens.length - 1], GPT2_EOT);
      const decoded = utf8.decode(enc.decode(Uint32Array.from(tokens.subarray(0, -1))));
      assert.ok(decoded === part.replace(/\ud800/g, '\ufffd'), `${name}: the tokens do not decode to the text`);
    }
  } finally {
    enc.free();
    tok.free();
  }
});

test('memo keys do not keep the documents they were cut from alive', async () => {
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as () => void;
  const rnd = mulberry32(9);
  const tok = await Gpt2Tokenizer.open();
  try {
    const heap = (): number => {
      gc();
      gc();
      return process.memoryUsage().heapUsed;
    };
    const before = heap();
    const docs = 24;
    for (let d = 0; d < docs; d++) {
      // A 256 KB document: a new 20-letter word (a memo miss whose key V8 would slice out of the document) and
      // pieces of the vocabulary.
      const doc = drawn(LOWER)(rnd, 20) + ' ab'.repeat(1 << 16) + '.';
      tok.encodeDocuments([doc]);
    }
    const grown = heap() - before;
    assert.ok(grown < (docs * (3 << 16)) / 3, `heap grew by ${(grown / 1e6).toFixed(1)} MB after ${docs} documents of 0.2 MB`);
  } finally {
    tok.free();
  }
});
