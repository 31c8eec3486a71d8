import assert from 'node:assert/strict';
import { test } from 'node:test';
import { openGpt2Bpe } from '../../src/data/bpe-wasm.js';
import { TextCodec } from '../../src/data/text-codec.js';
import { GPT2_EOT } from '../../src/data/tokenizer.js';

test('prompt encoding equals tiktoken with <|endoftext|> as the end-of-text token', async () => {
  const codec = await TextCodec.open();
  const tiktoken = await openGpt2Bpe();
  try {
    const prompts = ['', 'Hello world', '<|endoftext|>', 'a<|endoftext|>b', '<|endoftext|><|endoftext|>x ', ' It is interesting ', 'héllo 世界 🙂 123 !!', 'x'.repeat(300) + ' tail'];
    for (const p of prompts) assert.deepEqual(codec.encode(p), Array.from(tiktoken.encode(p, ['<|endoftext|>'])), JSON.stringify(p.slice(0, 40)));
    assert.deepEqual(codec.encode('a<|endoftext|>b').filter((t) => t === GPT2_EOT).length, 1);
  } finally {
    tiktoken.free();
    codec.free();
  }
});

test('a prompt that is one 1M-letter word encodes in bounded time (tiktoken fails on it)', async () => {
  const codec = await TextCodec.open();
  try {
    const t0 = performance.now();
    const ids = codec.encode('q'.repeat(1_000_000));
    const ms = performance.now() - t0;
    assert.equal(codec.decode(ids), 'q'.repeat(1_000_000));
    assert.ok(ms < 20_000, `${ms.toFixed(0)} ms`);
  } finally {
    codec.free();
  }
});
