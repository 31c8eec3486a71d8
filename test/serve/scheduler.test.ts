// The batching engine without threads or HTTP: sequences stepped together must produce the tokens each would get
// decoded alone by gpt/generate.ts (the tested reference), whenever they join or leave, and free their caches.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as torch from '../../src/torch/index.js';
import { generate } from '../../src/gpt/generate.js';
import { BatchScheduler, type SequenceParams } from '../../src/serve/scheduler.js';
import { tinyModel } from './fixtures.js';

const prompt = (n: number, base: number): number[] => Array.from({ length: n }, (_, i) => (base + i * 7919) % 50000);

test('sequences joining at different steps and leaving early get the tokens generate() gives each alone', () => {
  const model = tinyModel(1);
  try {
    const seqs: SequenceParams[] = [
      { promptTokens: prompt(5, 11), maxTokens: 12, temperature: 0, seed: 0, sampleIndex: 0 },
      { promptTokens: prompt(9, 222), maxTokens: 5, temperature: 0.9, seed: 42, sampleIndex: 0 },
      { promptTokens: prompt(3, 3333), maxTokens: 9, temperature: 1.0, topP: 0.8, seed: 7, sampleIndex: 2 },
      { promptTokens: prompt(60, 44), maxTokens: 10, temperature: 0.7, seed: 3, sampleIndex: 1 }, // slides past block 64
      { promptTokens: prompt(3, 555), maxTokens: 7, temperature: 0.9, seed: 8, sampleIndex: 0 }, // prefilled with 2
    ];
    const expected = seqs.map((s) => generate(model, s.promptTokens, { maxNewTokens: s.maxTokens, temperature: s.temperature, topP: s.topP, seed: s.seed, firstSample: s.sampleIndex, stopAtEot: true }));
    const before = torch.memory().tensors;
    const sched = new BatchScheduler(model, { maxBatch: 4, bf16: false });
    const got = new Map<number, number[]>(seqs.map((_, i) => [i, []]));
    const finished = new Map<number, string>();
    let peak = 0;
    sched.submit(0, seqs[0]!);
    for (let step = 0; step < 200 && (sched.hasWork() || step < 4); step++) {
      // Late arrivals: 1 joins at step 2; 2 and 4 (equal prompt lengths: one batched prefill) at step 3, and 3 waits
      // for a free slot (maxBatch 4).
      if (step === 2) sched.submit(1, seqs[1]!);
      if (step === 3) {
        sched.submit(2, seqs[2]!);
        sched.submit(4, seqs[4]!);
        sched.submit(3, seqs[3]!);
      }
      const r = sched.step();
      if (step === 3) {
        assert.equal(r.prefills, 2, 'two sequences joined in one step');
        assert.equal(sched.waitingCount, 1, 'the third waits for a slot');
      }
      peak = Math.max(peak, r.decodeRows);
      for (const [id, t] of r.tokens) got.get(id)!.push(t);
      for (const f of r.finished) finished.set(f.id, f.reason);
    }
    assert.equal(sched.hasWork(), false);
    assert.ok(peak >= 2, `rows were decoded together (peak batch ${peak})`);
    seqs.forEach((_, i) => assert.deepEqual(got.get(i), expected[i], `sequence ${i}`));
    for (const [i, reason] of finished) assert.ok(reason === 'length' || reason === 'stop', `sequence ${i}: ${reason}`);
    assert.equal(torch.memory().tensors, before, 'every row cache was freed');
  } finally {
    model.dispose();
  }
});

test('cancel frees a running sequence at once and the others carry on unchanged', () => {
  const model = tinyModel(2);
  try {
    const a: SequenceParams = { promptTokens: prompt(4, 5), maxTokens: 30, temperature: 0.8, seed: 9, sampleIndex: 0 };
    const b: SequenceParams = { promptTokens: prompt(6, 77), maxTokens: 8, temperature: 0.8, seed: 10, sampleIndex: 0 };
    const expectedB = generate(model, b.promptTokens, { maxNewTokens: b.maxTokens, temperature: 0.8, seed: 10, stopAtEot: true });
    const before = torch.memory().tensors;
    const sched = new BatchScheduler(model, { maxBatch: 4, bf16: false });
    sched.submit(1, a);
    sched.submit(2, b);
    const gotB: number[] = [];
    const collect = (r: { tokens: [number, number][] }): void => {
      for (const [id, t] of r.tokens) if (id === 2) gotB.push(t);
    };
    collect(sched.step());
    collect(sched.step());
    assert.equal(sched.activeCount, 2);
    const cached = torch.memory().tensors;
    assert.equal(sched.cancel(1), true);
    assert.equal(sched.activeCount, 1);
    assert.equal(torch.memory().tensors, cached - 2 * model.config.nLayer, "the cancelled row's cache is released immediately");
    for (let i = 0; i < 50 && sched.hasWork(); i++) collect(sched.step());
    assert.deepEqual(gotB, expectedB);
    assert.equal(torch.memory().tensors, before);
  } finally {
    model.dispose();
  }
});
