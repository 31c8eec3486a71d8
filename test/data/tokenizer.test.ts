import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { gpt2VocabPieces, openGpt2Bpe } from '../../src/data/bpe-wasm.js';
import { hasUnicodeDrift, splitPieces } from '../../src/data/pretokenize.js';
import { sotuDataDir } from '../../src/data/sources/embedded.js';
import { encodeOrdinary, Gpt2Tokenizer, GPT2_EOT, GPT2_VOCAB_SIZE } from '../../src/data/tokenizer.js';
import { mulberry32 } from '../helpers/random.js';

/** What encodeDocuments must produce: tiktoken on each whole text, EOT after each. */
function reference(tok: Gpt2Tokenizer, texts: string[]): number[] {
  return texts.flatMap((t) => [...tok.encodeOrdinary(t), GPT2_EOT]);
}

test('known GPT-2 ids: "Hello world" → 15496, 995', async () => {
  assert.deepEqual(await encodeOrdinary('Hello world'), [15496, 995]);
  assert.equal(GPT2_EOT, 50256);
  assert.equal(GPT2_VOCAB_SIZE, 50257);
});

test('special-token text inside a document is ordinary text, never EOT', async () => {
  const ids = await encodeOrdinary('a<|endoftext|>b');
  assert.ok(!ids.includes(GPT2_EOT), `got ${ids}`);
  assert.ok(ids.length > 3);
});

test('encodeDocuments appends EOT after every document, counts include it', async () => {
  const tok = await Gpt2Tokenizer.open();
  try {
    const { tokens, counts } = tok.encodeDocuments(['Hello world', '', 'Hello']);
    assert.deepEqual(Array.from(counts), [3, 1, 2]);
    assert.deepEqual(Array.from(tokens), [15496, 995, GPT2_EOT, GPT2_EOT, 15496, GPT2_EOT]);
    assert.ok(tokens instanceof Uint16Array);
  } finally {
    tok.free();
  }
  assert.throws(() => tok.encodeOrdinary('x'), /after free/);
});

test('the vocabulary the memo starts with: right ranks, and tiktoken gives that one token for each such piece', async () => {
  const vocab = gpt2VocabPieces();
  const enc = await openGpt2Bpe();
  try {
    // Every token but the 344 that are fragments of multi-byte characters, and <|endoftext|> (a special token).
    assert.equal(vocab.size, 49912);
    const utf8 = new TextEncoder();
    let pieces = 0;
    for (const [text, rank] of vocab) {
      assert.deepEqual(enc.decode_single_token_bytes(rank), utf8.encode(text), `rank ${rank}`);
      // Only strings that are one whole piece can ever be looked up; for those the memo must agree with tiktoken.
      if (splitPieces(text).length !== 1) continue;
      pieces++;
      assert.deepEqual(Array.from(enc.encode_ordinary(text)), [rank], JSON.stringify(text));
    }
    assert.ok(pieces > 45000, `only ${pieces} vocabulary entries are single pieces`);
  } finally {
    enc.free();
  }
});

test('memoised encoding equals tiktoken on the whole embedded corpus', async () => {
  const dir = sotuDataDir();
  const names = (await fs.readdir(dir)).filter((n) => n.endsWith('.txt')).sort();
  const texts = await Promise.all(names.map((n) => fs.readFile(path.join(dir, n), 'utf8')));
  const tok = await Gpt2Tokenizer.open();
  try {
    for (let i = 0; i < texts.length; i += 8) {
      const batch = texts.slice(i, i + 8);
      const { tokens, counts } = tok.encodeDocuments(batch);
      assert.deepEqual(Array.from(tokens), reference(tok, batch), `documents ${names[i]}…${names[i + batch.length - 1]}`);
      assert.equal(counts.reduce((a, b) => a + b, 0), tokens.length);
    }
  } finally {
    tok.free();
  }
});

test('memoised encoding equals tiktoken on adversarial text (memo, fallback to tiktoken on long stretches and back)', async () => {
  const next = mulberry32(2357); // a failing case reproduces
  // Whitespace of every kind (JS and Rust disagree on U+0085 and U+FEFF), contractions in both cases, digits of
  // other scripts, combining marks, emoji (astral), a lone surrogate, CJK, special-token text.
  const alphabet = [
    'a', 'b', 'Z', 'é', 'ß', 'Ω', '中', '文', '1', '7', '٣', '½', ' ', '  ', '\n', '\n\n', '\t', '\r\n', '\u0085',
    '\ufeff', '\u00a0', '\u2003', '\u3000', "'", "'s", "'S", "'ll", "'re", "'ve", "'d", "'m", "'t", '.', ',', '!',
    '...', '-', '—', '"', '(', ')', '\u0301', '😀', '👍🏽', '\ud800', '<|endoftext|>', 'the', ' the', 'The', ' of', 'and',
  ];
  const word = (): string => alphabet[Math.floor(next() * alphabet.length)]!;
  const texts: string[] = [];
  for (let d = 0; d < 60; d++) {
    // Mostly-repeating text (memo hits) alternating with runs of junk (misses that switch to whole-text encoding).
    const junk = d % 3 === 2;
    let t = '';
    const n = 200 + Math.floor(next() * (junk ? 30000 : 3000));
    for (let i = 0; i < n; i++) t += junk ? String.fromCodePoint(0x4e00 + Math.floor(next() * 20000)) + word() : word();
    texts.push(t);
  }
  const tok = await Gpt2Tokenizer.open();
  try {
    for (let i = 0; i < texts.length; i += 4) {
      const batch = texts.slice(i, i + 4);
      assert.deepEqual(Array.from(tok.encodeDocuments(batch).tokens), reference(tok, batch), `documents ${i}…${i + 3}`);
    }
  } finally {
    tok.free();
  }
});

test('text with characters newer than tiktoken\'s Unicode tables is split with tiktoken\'s tables', async () => {
  // U+10940 (Garay) and U+A7CE are letters to V8 (Unicode 17) and "other" to tiktoken (Unicode 16).
  const drift = 'Garay? no: U+10940 \u{10940}\u{10941}abc and U+A7CE x\ua7cey here';
  assert.ok(hasUnicodeDrift(drift));
  assert.ok(!hasUnicodeDrift('plain English, Ελληνικά, 中文, ٣'));
  assert.deepEqual(splitPieces('x\ua7cey \u{10940}\u{10941}abc'), ['x', '\ua7ce', 'y', ' \u{10940}\u{10941}', 'abc']);
  const tok = await Gpt2Tokenizer.open();
  try {
    assert.deepEqual(Array.from(tok.encodeDocuments([drift]).tokens), reference(tok, [drift]));
  } finally {
    tok.free();
  }
});

test('the pre-tokenization split agrees with tiktoken\'s for every assigned code point', async () => {
  // Every piece our regex finds must be one of tiktoken's pieces, or the memo would give different tokens. Each
  // code point is put between letters, digits, spaces, newlines and a contraction, so its class (letter, number,
  // whitespace, other) decides the split; the tokens of the whole string must equal the tokens of its pieces.
  // Unassigned, private-use and surrogate code points cannot change class between Unicode versions: skipped.
  // Blocks holding characters newer than tiktoken's tables are checked twice: with them (split by the regex with
  // tiktoken's tables) and without (the fast regex, which every other block uses).
  const skip = /[\p{Cn}\p{Co}\p{Cs}]/u;
  const tok = await Gpt2Tokenizer.open();
  const memo = new Map<string, number[]>();
  const piecesTokens = (s: string): number[] =>
    splitPieces(s).flatMap((p) => {
      let ids = memo.get(p);
      if (!ids) memo.set(p, (ids = Array.from(tok.encodeOrdinary(p))));
      return ids;
    });
  const probe = (ch: string): string => `x${ch} ${ch}9${ch}\n${ch}'s${ch} ${ch}${ch}.`;
  const bad: string[] = [];
  const check = (lo: number, hi: number, withDrift: boolean): void => {
    let s = '';
    for (let cp = lo; cp < hi; cp++) {
      const ch = String.fromCodePoint(cp);
      if (!skip.test(ch) && (withDrift || !hasUnicodeDrift(ch))) s += probe(ch);
    }
    if (s === '') return;
    const whole = Array.from(tok.encodeOrdinary(s));
    const split = piecesTokens(s);
    if (whole.length === split.length && whole.every((v, i) => v === split[i])) return;
    if (hi - lo === 1) bad.push(`U+${lo.toString(16).toUpperCase().padStart(4, '0')}`);
    else {
      const mid = (lo + hi) >> 1;
      check(lo, mid, withDrift);
      check(mid, hi, withDrift);
    }
  };
  try {
    let driftBlocks = 0;
    for (let block = 0; block < 0x110000; block += 0x1000) {
      check(block, block + 0x1000, true);
      let drift = false;
      for (let cp = block; cp < block + 0x1000 && !drift; cp++) drift = hasUnicodeDrift(String.fromCodePoint(cp));
      if (drift) {
        driftBlocks++;
        check(block, block + 0x1000, false);
      }
    }
    assert.ok(driftBlocks > 5, `${driftBlocks} blocks with characters newer than tiktoken's tables`);
  } finally {
    tok.free();
  }
  assert.deepEqual(
    bad.slice(0, 50),
    [],
    `${bad.length} code points split differently from tiktoken (a Node/ICU Unicode upgrade?): add them to (or remove them from) UNICODE_DRIFT in src/data/pretokenize.ts`,
  );
});
