import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { tokenBaselines } from '../../src/data/baselines.js';

function bin(dir: string, name: string, tokens: number[]): string {
  const f = path.join(dir, name);
  writeFileSync(f, Buffer.from(Uint16Array.from(tokens).buffer));
  return f;
}

test('uniform is ln(vocab); unigram is the val cross-entropy of add-one-smoothed train frequencies', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'nanogpt-baselines-'));
  try {
    // train: token 0 ×3, token 1 ×1 over a vocabulary of 4 → p = (3+1)/8, (1+1)/8, 1/8, 1/8.
    const b = tokenBaselines(bin(dir, 't.bin', [0, 0, 0, 1]), bin(dir, 'v.bin', [0, 1, 2, 7]), 4);
    assert.equal(b.uniform, Math.log(4));
    // Token 7 is outside the vocabulary: it scores as an unseen token.
    const expected = -(Math.log(4 / 8) + Math.log(2 / 8) + Math.log(1 / 8) + Math.log(1 / 8)) / 4;
    assert.ok(Math.abs(b.unigram - expected) < 1e-12, `${b.unigram} vs ${expected}`);
    assert.deepEqual([b.trainTokens, b.valTokens, b.vocab], [4, 4, 4]);
    // Frequencies that match val beat uniform.
    assert.ok(tokenBaselines(bin(dir, 't2.bin', [0, 0, 0, 0, 0, 0, 1]), bin(dir, 'v2.bin', [0, 0, 0]), 50257).unigram < Math.log(50257));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
