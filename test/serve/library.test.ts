// The package's library entry, imported by its package name as an application would (the README's example):
// loadModel + complete, streaming through onText, seeds, concurrent calls, option errors.
import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { complete, loadModel, type ServedModel } from 'nanogpt-ts';
import { tinyCheckpoint } from './fixtures.js';

let dir = '';
let model: ServedModel;

before(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'nanogpt-library-'));
  model = await loadModel(await tinyCheckpoint(dir), { threads: 1, log: () => {} });
});

after(async () => {
  await model?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("import { loadModel, complete } from 'nanogpt-ts': text, streamed pieces, seeds, concurrent calls", async () => {
  assert.equal(model.info.blockSize, 64);
  const pieces: string[] = [];
  const a = await complete(model, 'Hello there', { maxTokens: 20, temperature: 0.8, seed: 5, onText: (t) => pieces.push(t) });
  assert.equal(a.usage.completionTokens, a.choices[0]!.tokens.length);
  assert.ok(a.text.length > 0);
  assert.ok(pieces.length >= 2);
  assert.equal(pieces.join(''), a.text);
  const [b, c] = await Promise.all([
    complete(model, 'Hello there', { maxTokens: 20, temperature: 0.8, seed: 5 }),
    complete(model, 'Something else', { maxTokens: 30, temperature: 0.8, seed: 6, n: 3 }),
  ]);
  assert.equal(b.text, a.text, 'same seed, same text, with other work in the batch');
  assert.equal(c.choices.length, 3);
  await assert.rejects(complete(model, 'x', { maxTokens: -1 }), (err: unknown) => err instanceof RangeError && /'maxTokens' must be an integer >= 0/.test(err.message));
  await assert.rejects(complete(model, 'x', { topP: 2 }), (err: unknown) => err instanceof RangeError && /'topP'/.test(err.message));
  const abort = new AbortController();
  const pending = complete(model, 'x', { maxTokens: 60, signal: abort.signal, onText: () => abort.abort() });
  await assert.rejects(pending, /cancelled/);
});

test('closing the model while a completion runs rejects it instead of leaving it pending', async () => {
  const other = await loadModel(path.join(dir, 'tiny.pt'), { threads: 1, log: () => {} });
  const running = complete(other, 'x', { maxTokens: 10_000, onText: () => void other.close() });
  await assert.rejects(running, /the model was closed/);
  await other.close();
});
