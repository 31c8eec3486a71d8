import assert from 'node:assert/strict';
import { test } from 'node:test';
import { splitDraw, StreamingSplitter, type SplitName } from '../../src/data/split.js';
import { UserError } from '../../src/util/errors.js';

function run(n: number, frac: number, seed: number): SplitName[] {
  const out: SplitName[] = [];
  const s = new StreamingSplitter<number>(frac, seed, (split, i) => (out[i] = split));
  for (let i = 0; i < n; i++) s.push(i);
  s.finish('test corpus');
  return out;
}

test('split is deterministic and depends on the seed', () => {
  assert.deepEqual(run(5000, 0.01, 2357), run(5000, 0.01, 2357));
  assert.notDeepEqual(run(5000, 0.01, 2357), run(5000, 0.01, 1));
  assert.equal(splitDraw(2357, 10), splitDraw(2357, 10));
});

test('val fraction is respected on large corpora', () => {
  const n = 100_000;
  const val = run(n, 0.05, 2357).filter((s) => s === 'val').length;
  assert.ok(Math.abs(val - n * 0.05) < 5 * Math.sqrt(n * 0.05), `val=${val}`);
});

test('val and train are never empty for >= 2 documents', () => {
  for (let n = 2; n < 40; n++) {
    for (const frac of [0.0005, 0.99]) {
      const out = run(n, frac, 2357);
      assert.ok(out.includes('val'), `n=${n} frac=${frac}`);
      assert.ok(out.includes('train'), `n=${n} frac=${frac}`);
    }
  }
});

test('0 or 1 documents is a UserError', () => {
  assert.throws(() => run(0, 0.1, 1), (e: unknown) => e instanceof UserError && /no documents/.test(e.message));
  assert.throws(() => run(1, 0.1, 1), (e: unknown) => e instanceof UserError && /only 1 document/.test(e.message));
  assert.throws(() => new StreamingSplitter(0, 1, () => undefined), UserError);
});
