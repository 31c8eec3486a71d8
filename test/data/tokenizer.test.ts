import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeOrdinary, Gpt2Tokenizer, GPT2_EOT, GPT2_VOCAB_SIZE } from '../../src/data/tokenizer.js';

test('known GPT-2 ids: "Hello world" → 15496, 995', () => {
  assert.deepEqual(encodeOrdinary('Hello world'), [15496, 995]);
  assert.equal(GPT2_EOT, 50256);
  assert.equal(GPT2_VOCAB_SIZE, 50257);
});

test('special-token text inside a document is ordinary text, never EOT', () => {
  const ids = encodeOrdinary('a<|endoftext|>b');
  assert.ok(!ids.includes(GPT2_EOT), `got ${ids}`);
  assert.ok(ids.length > 3);
});

test('encodeDocuments appends EOT after every document, counts include it', () => {
  const tok = new Gpt2Tokenizer();
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
