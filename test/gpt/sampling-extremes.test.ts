// Sampling parameters at the edge of float32: a top-p or temperature that underflows must still choose the most
// likely token, never remove every token (all -Infinity, then NaN probabilities) or draw an arbitrary one.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as torch from '../../src/torch/index.js';
import { filterTopP, sampleNext } from '../../src/gpt/generate.js';
import { SamplerRng } from '../../src/util/rng.js';

const logits = [1, 3, 2, 0.5]; // the most likely token is 1

test('filterTopP with p below float32 range (1e-300, 5e-324) keeps the most likely token', () => {
  for (const p of [1e-300, 5e-324, 1e-45]) {
    const kept = torch.scope(() => filterTopP(torch.tensor([logits]), p).toArray() as number[][]);
    assert.deepEqual(kept[0], [-Infinity, 3, -Infinity, -Infinity], `p = ${p}`);
  }
});

test('a temperature below float32 range (1e-300) samples the most likely token, with or without top-k/top-p', () => {
  for (const opts of [{ temperature: 1e-300 }, { temperature: 1e-300, topP: 0.5 }, { temperature: 5e-324, topK: 3 }, { temperature: 1e-40 }]) {
    for (let seed = 0; seed < 5; seed++) {
      const id = torch.scope(() => sampleNext(torch.tensor(logits), opts, new SamplerRng(seed)));
      assert.equal(id, 1, JSON.stringify(opts));
    }
  }
});

test('top_p 1e-300 with an ordinary temperature samples the most likely token', () => {
  for (let seed = 0; seed < 5; seed++) {
    assert.equal(torch.scope(() => sampleNext(torch.tensor(logits), { temperature: 1, topP: 1e-300 }, new SamplerRng(seed))), 1);
  }
});
