import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as torch from '../../src/torch/index.js';
import { GPT } from '../../src/gpt/model.js';
import { EOT_TOKEN, type GPTConfig } from '../../src/gpt/config.js';
import { filterTopK, filterTopP, generate, generateBatch, sampleNext, sampleRows } from '../../src/gpt/generate.js';
import { SamplerRng } from '../../src/util/rng.js';

const base: GPTConfig = { nLayer: 2, nHead: 2, nEmbd: 32, blockSize: 32, vocabSize: 64, dropout: 0, bias: true };

/**
 * A random model whose logits are far from uniform: GPT-2's init (std 0.02) gives nearly flat logits, where
 * greedy decoding would be decided by rounding noise and tend to repeat one token. Larger weights give a model
 * with confident, varied choices, so cache vs no-cache comparisons test the computation, not ties.
 */
function randomModel(cfg: Partial<GPTConfig> = {}, seed = 0): GPT {
  torch.manualSeed(seed);
  const model = new GPT({ ...base, ...cfg });
  torch.noGrad(() => {
    for (const p of model.parameters()) if (p.ndim >= 2) p.normal_(0, 0.3);
  });
  return model;
}

const row = (values: number[]): torch.Tensor => torch.tensor([values]);
const keptIndices = (t: torch.Tensor): number[] =>
  ((t.toArray() as number[][])[0]!).flatMap((v, i) => (v === -Infinity ? [] : [i]));

test('greedy decoding with the KV cache equals greedy decoding without it, token for token', () => {
  const model = randomModel();
  const prompt = [1, 2, 3, 4, 5];
  const cached = generate(model, prompt, { maxNewTokens: 20, temperature: 0, useCache: true });
  const uncached = generate(model, prompt, { maxNewTokens: 20, temperature: 0, useCache: false });
  assert.equal(cached.length, 20);
  assert.deepEqual(cached, uncached);
  assert.ok(new Set(cached).size > 3, `expected varied tokens, got ${cached.join(' ')}`);
  model.dispose();
});

test('the cache slides correctly across block_size (block 8, 20 new tokens)', () => {
  const model = randomModel({ blockSize: 8 }, 1);
  for (const prompt of [[7], [1, 2, 3, 4, 5, 6]]) {
    const cached = generate(model, prompt, { maxNewTokens: 20, temperature: 0 });
    const uncached = generate(model, prompt, { maxNewTokens: 20, temperature: 0, useCache: false });
    assert.equal(cached.length, 20);
    assert.deepEqual(cached, uncached, `prompt ${prompt.join(',')}`);
  }
  model.dispose();
});

test('a prompt longer than block_size works: the model sees its last block_size tokens', () => {
  const model = randomModel({ blockSize: 8 }, 2);
  const long = Array.from({ length: 30 }, (_, i) => (i * 7) % 64);
  const fromLong = generate(model, long, { maxNewTokens: 10, temperature: 0 });
  const fromTail = generate(model, long.slice(-8), { maxNewTokens: 10, temperature: 0 });
  assert.deepEqual(fromLong, fromTail);
  assert.deepEqual(fromLong, generate(model, long, { maxNewTokens: 10, temperature: 0, useCache: false }));
  model.dispose();
});

test('sampled decoding with and without the cache draws the same tokens from the same seed', () => {
  const model = randomModel({ blockSize: 8 }, 3);
  const opts = { maxNewTokens: 15, temperature: 1, topK: 20, seed: 5 };
  assert.deepEqual(generate(model, [1, 2], opts), generate(model, [1, 2], { ...opts, useCache: false }));
  model.dispose();
});

test('the same seed gives the same tokens; another seed (very likely) different ones', () => {
  const model = randomModel();
  const opts = { maxNewTokens: 20, temperature: 1.0, topK: 50 };
  const a = generate(model, [3, 1, 4], { ...opts, seed: 1337 });
  const b = generate(model, [3, 1, 4], { ...opts, seed: 1337 });
  const c = generate(model, [3, 1, 4], { ...opts, seed: 42 });
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
  model.dispose();
});

test('an empty prompt starts from the end-of-text token', () => {
  const model = randomModel({ vocabSize: EOT_TOKEN + 1, nEmbd: 16, nHead: 2, nLayer: 1 }, 4);
  const fromEmpty = generate(model, [], { maxNewTokens: 5, temperature: 0 });
  const fromEot = generate(model, [EOT_TOKEN], { maxNewTokens: 5, temperature: 0 });
  assert.deepEqual(fromEmpty, fromEot);
  model.dispose();
});

test('onToken reports each token as it is chosen, in order', () => {
  const model = randomModel({}, 5);
  const seen: number[] = [];
  const out = generate(model, [10, 11], { maxNewTokens: 8, temperature: 0.9, seed: 3, onToken: (id) => seen.push(id) });
  assert.equal(out.length, 8);
  assert.deepEqual(seen, out);
  model.dispose();
});

test('stopAtEot stops at the first EOT', () => {
  // A model that always predicts EOT: ln_f outputs the unit vector e0 for every position, and only EOT's row
  // of the (tied) embedding has a large first component.
  const model = randomModel({ vocabSize: EOT_TOKEN + 1, nEmbd: 8, nHead: 1, nLayer: 1 }, 6);
  torch.noGrad(() => {
    const w = model.transformer.wte.weight;
    model.transformer.ln_f.weight.fill_(0);
    model.transformer.ln_f.bias!.fill_(0);
    torch.scope(() => model.transformer.ln_f.bias!.narrow(0, 0, 1).fill_(1));
    torch.scope(() => w.narrow(0, EOT_TOKEN, 1).narrow(1, 0, 1).fill_(100));
  });
  const seen: number[] = [];
  const out = generate(model, [1, 2, 3], { maxNewTokens: 5, temperature: 0, onToken: (id) => seen.push(id) });
  assert.deepEqual(out, [EOT_TOKEN, EOT_TOKEN, EOT_TOKEN, EOT_TOKEN, EOT_TOKEN]);
  const stopped = generate(model, [1, 2, 3], { maxNewTokens: 5, temperature: 0.8, stopAtEot: true, seed: 1, onToken: (id) => seen.push(id) });
  assert.deepEqual(stopped, []);
  assert.equal(seen.length, 5);
  model.dispose();
});

test('top-k keeps exactly the k largest logits', () => {
  torch.scope(() => {
    const logits = row([0.1, 2.0, -1.0, 3.5, 0.7, 2.5, -0.2, 1.0]);
    assert.deepEqual(keptIndices(filterTopK(logits, 3)), [1, 3, 5]);
    assert.deepEqual(keptIndices(filterTopK(logits, 1)), [3]);
    assert.deepEqual(keptIndices(filterTopK(logits, 8)), [0, 1, 2, 3, 4, 5, 6, 7]);
    assert.deepEqual(keptIndices(filterTopK(logits, 100)), [0, 1, 2, 3, 4, 5, 6, 7]);
    // Kept values are unchanged.
    const kept = (filterTopK(logits, 2).toArray() as number[][])[0]!;
    assert.equal(kept[3], 3.5);
    assert.ok(Math.abs(kept[5]! - 2.5) < 1e-6);
    // Ties at the boundary: still exactly k.
    const tied = row([1, 5, 5, 5, 0]);
    assert.equal(keptIndices(filterTopK(tied, 2)).length, 2);
    // Per row of a batch.
    const batch = torch.tensor([[1, 2, 3, 4], [4, 3, 2, 1]]);
    const f = filterTopK(batch, 2).toArray() as number[][];
    assert.deepEqual(f.map((r) => r.map((v) => v !== -Infinity)), [[false, false, true, true], [true, true, false, false]]);
  });
  assert.throws(() => filterTopK(torch.tensor([[1, 2]]), 0), RangeError);
});

test('top-p keeps the smallest set of likeliest tokens whose probability reaches p', () => {
  torch.scope(() => {
    // Probabilities (shuffled): token 2: 0.5, token 0: 0.25, token 3: 0.15, token 1: 0.1.
    const probs = [0.25, 0.1, 0.5, 0.15];
    const logits = row(probs.map(Math.log));
    // Sorted: 0.5, 0.25, 0.15, 0.1 → running sums 0.5, 0.75, 0.9, 1.0.
    assert.deepEqual(keptIndices(filterTopP(logits, 0.3)), [2]); // 0.5 ≥ 0.3
    assert.deepEqual(keptIndices(filterTopP(logits, 0.5)), [2]); // 0.5 reaches 0.5 exactly
    assert.deepEqual(keptIndices(filterTopP(logits, 0.6)), [0, 2]); // 0.75 ≥ 0.6
    assert.deepEqual(keptIndices(filterTopP(logits, 0.8)), [0, 2, 3]); // 0.75 < 0.8 ≤ 0.9
    assert.deepEqual(keptIndices(filterTopP(logits, 0.95)), [0, 1, 2, 3]);
    assert.deepEqual(keptIndices(filterTopP(logits, 1)), [0, 1, 2, 3]);
    // Temperature-like scaling changes probabilities, hence the set: logits × 2 → probs ∝ p².
    // p² = 0.0625, 0.01, 0.25, 0.0225 (sum 0.345) → 0.725, 0.181, 0.065, 0.029: p = 0.8 keeps tokens 2 and 0.
    assert.deepEqual(keptIndices(filterTopP(logits.mul(2), 0.8)), [0, 2]);
    // Per row of a batch.
    const batch = torch.tensor([probs.map(Math.log), [...probs].reverse().map(Math.log)]);
    const f = filterTopP(batch, 0.6).toArray() as number[][];
    assert.deepEqual(f.map((r) => r.map((v) => v !== -Infinity)), [[true, false, true, false], [false, true, false, true]]);
  });
  assert.throws(() => filterTopP(torch.tensor([[1, 2]]), 0), RangeError);
  assert.throws(() => filterTopP(torch.tensor([[1, 2]]), 1.5), RangeError);
});

test('sampling only ever draws tokens the filters keep', () => {
  torch.manualSeed(0);
  torch.scope(() => {
    const logits = row([0.1, 2.0, -1.0, 3.5, 0.7, 2.5, -0.2, 1.0]);
    const drawn = new Set<number>();
    for (let i = 0; i < 200; i++) drawn.add(sampleNext(logits, { temperature: 2, topK: 3 }));
    assert.deepEqual([...drawn].sort(), [1, 3, 5]);
    assert.equal(sampleNext(logits, { temperature: 0, topK: 3 }), 3);
  });
});

/** The draw as a float64 walk over the filtered softmax, one uniform per row: what sampleRows must pick. */
function referencePick(logits: number[], opts: { temperature: number; topK?: number; topP?: number }, u: number): number {
  const max = Math.max(...logits);
  // Candidates in descending order when a filter needs it, else in vocabulary order (as sampleRows walks them).
  let c = logits.map((l, i) => ({ i, p: Math.exp((l - max) / opts.temperature) }));
  if (opts.topK !== undefined || opts.topP !== undefined) c.sort((a, b) => b.p - a.p || a.i - b.i);
  if (opts.topK !== undefined) c = c.slice(0, opts.topK);
  const z = c.reduce((s, x) => s + x.p, 0);
  c = c.map((x) => ({ i: x.i, p: x.p / z }));
  if (opts.topP !== undefined) {
    let above = 0;
    let keep = 0;
    while (keep < c.length && above < opts.topP) above += c[keep++]!.p;
    c = c.slice(0, keep);
  }
  let left = u * c.reduce((s, x) => s + x.p, 0);
  for (const x of c) if ((left -= x.p) < 0) return x.i;
  return c.at(-1)!.i;
}

test('the native draw picks what a float64 inverse-CDF walk over the filtered softmax picks, row by row, same generators', () => {
  // Vocabulary 3000: a peaked distribution (top-p's first 1024 candidates hold p) and a flat one (they do not, so
  // the full sort runs); rows of both kinds in one batch.
  torch.manualSeed(5);
  const V = 3000;
  const peaked = Array.from({ length: V }, (_, i) => (i % 97 === 0 ? 6 : 0) + Math.sin(i) * 2);
  const flat = Array.from({ length: V }, (_, i) => Math.cos(i * 7) * 0.05);
  const batches = [[peaked, [...peaked].reverse()], [flat, [...flat].reverse()], [peaked, flat, [...peaked].reverse(), [...flat].reverse()]];
  const cases = [{ temperature: 1 }, { temperature: 0.7, topP: 0.9 }, { temperature: 1.3, topP: 0.5 }, { temperature: 1, topK: 50 }, { temperature: 0.9, topK: 400, topP: 0.8 }];
  for (const rows of batches) torch.scope(() => {
    const logits = torch.tensor(rows);
    for (const opts of cases) {
      for (let seed = 0; seed < 40; seed++) {
        const rngs = rows.map((_, b) => new SamplerRng(seed * 10 + b));
        const twins = rows.map((_, b) => new SamplerRng(seed * 10 + b));
        const picks = sampleRows(logits, opts, rngs);
        const want = rows.map((r, b) => referencePick(r, opts, twins[b]!.uniform()));
        assert.deepEqual(picks, want, `${JSON.stringify(opts)}, seed ${seed}`);
      }
    }
  });
});

test('draws follow the filtered distribution (4 tokens, 20 000 draws, within 4 standard errors)', () => {
  torch.scope(() => {
    const probs = [0.25, 0.1, 0.5, 0.15];
    const logits = row(probs.map(Math.log));
    for (const [opts, want] of [
      [{ temperature: 1 }, probs],
      [{ temperature: 1, topP: 0.8 }, [0.25 / 0.9, 0, 0.5 / 0.9, 0.15 / 0.9]],
    ] as const) {
      const rng = new SamplerRng(11);
      const counts = [0, 0, 0, 0];
      const n = 20_000;
      for (let i = 0; i < n; i++) counts[sampleRows(logits, opts, [rng])[0]!]! += 1;
      counts.forEach((c, k) => {
        const p = want[k]!;
        const se = Math.sqrt((p * (1 - p)) / n);
        assert.ok(Math.abs(c / n - p) <= 4 * se + 1e-12, `${JSON.stringify(opts)}: token ${k} drawn ${c / n}, want ${p}`);
      });
    }
  });
});

test('bad options are rejected', () => {
  const model = randomModel({ nLayer: 1 });
  assert.throws(() => generate(model, [1], { maxNewTokens: 1, temperature: -1 }), RangeError);
  assert.throws(() => generate(model, [1], { maxNewTokens: 1, temperature: 1, topK: 0 }), RangeError);
  assert.throws(() => generate(model, [1], { maxNewTokens: 1, temperature: 1, topP: 0 }), RangeError);
  assert.throws(() => generate(model, [64], { maxNewTokens: 1, temperature: 1 }), /vocabulary/);
  assert.throws(() => generate(model, [], { maxNewTokens: 1, temperature: 1 }), /end-of-text/);
  model.dispose();
});

test('generation restores the training mode and keeps native memory flat', () => {
  const model = randomModel({ blockSize: 8 });
  model.train();
  generate(model, [1, 2, 3], { maxNewTokens: 12, temperature: 0.8, seed: 1 });
  assert.equal(model.training, true);
  const before = torch.memory();
  generate(model, [1, 2, 3], { maxNewTokens: 30, temperature: 0.8, topP: 0.9, seed: 1 });
  generate(model, [1, 2, 3], { maxNewTokens: 30, temperature: 0, useCache: false });
  const after = torch.memory();
  assert.equal(after.tensors, before.tensors);
  assert.equal(after.bytes, before.bytes);
  model.dispose();
});

test('samples decoded together equal the same samples decoded alone (sampled and greedy, with and without cache)', () => {
  const model = randomModel({ blockSize: 12 }, 5);
  const prompt = [3, 1, 4];
  for (const temperature of [0.8, 0]) {
    for (const useCache of [true, false]) {
      const opts = { maxNewTokens: 15, temperature, topK: 40, seed: 21, useCache };
      const together = generateBatch(model, prompt, 3, opts);
      assert.equal(together.length, 3);
      for (let i = 0; i < 3; i++) {
        assert.deepEqual(generateBatch(model, prompt, 1, { ...opts, firstSample: i })[0], together[i], `sample ${i}, T ${temperature}, cache ${useCache}`);
      }
      if (temperature > 0) assert.notDeepEqual(together[0], together[1], 'different samples draw differently');
    }
  }
  model.dispose();
});

test('in a batch, stopAtEot ends each sample at its own end-of-text', () => {
  const model = randomModel({ vocabSize: 50257, nEmbd: 16 }, 6);
  // Push the end-of-text logit up so that samples stop early, at different steps.
  torch.noGrad(() => model.transformer.wte.weight.narrow(0, EOT_TOKEN, 1).mul_(6));
  const runs = generateBatch(model, [11, 12], 4, { maxNewTokens: 30, temperature: 1, seed: 3, stopAtEot: true });
  for (const r of runs) assert.ok(!r.includes(EOT_TOKEN));
  const alone = runs.map((_, i) => generateBatch(model, [11, 12], 1, { maxNewTokens: 30, temperature: 1, seed: 3, stopAtEot: true, firstSample: i })[0]);
  assert.deepEqual(runs, alone);
  model.dispose();
});

test('bf16 generation runs under autocast with a bf16 KV cache and gives valid tokens', () => {
  const model = randomModel({}, 7);
  const tokens = generateBatch(model, [1, 2, 3], 2, { maxNewTokens: 10, temperature: 0.7, seed: 1, bf16: true });
  for (const t of tokens) {
    assert.equal(t.length, 10);
    assert.ok(t.every((id) => Number.isInteger(id) && id >= 0 && id < base.vocabSize));
  }
  model.dispose();
});
