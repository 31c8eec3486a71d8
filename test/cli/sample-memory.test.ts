import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as torch from '../../src/torch/index.js';
import { GPT } from '../../src/gpt/model.js';
import { saveModel } from '../../src/train/checkpoint.js';
import { runNode } from '../helpers/children.js';

// `sample` once grew by ~1.3 MB per sample of 120 tokens (304 → 689 MB over 300 samples) while the live tensor
// count stayed constant: disposed handles left napi finalizers queued until the event loop turned, which a
// synchronous generation loop never lets it do. Long generation must run in flat memory.

const worker = path.join(path.dirname(fileURLToPath(import.meta.url)), 'sample-memory-worker.js');
let dir = '';
let ckpt = '';

before(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'nanogpt-sample-mem-'));
  ckpt = path.join(dir, 'tiny.pt');
  torch.manualSeed(0);
  // A 256-token vocabulary (GPT-2's byte tokens; the prompt 'A' is token 32) keeps each token cheap, so the test
  // makes many handles quickly; block 32 makes most steps slide the window.
  const model = new GPT({ nLayer: 1, nHead: 2, nEmbd: 16, blockSize: 32, vocabSize: 256, dropout: 0, bias: true });
  await saveModel(ckpt, model);
  model.dispose();
});

after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('sample: RSS and the live tensor count stay flat over many samples of many tokens', async () => {
  const samples = 48;
  const r = await runNode(
    [worker, '--ckpt_path', ckpt, '--prompt', 'A', '--stream', '--num_samples', String(samples), '--max_new_tokens', '100', '--top_k', '20', '--seed', '1', '--threads', '1'],
    { OMP_NUM_THREADS: '1' },
    120_000,
  );
  assert.equal(r.code, 0, r.stderr);
  const line = r.stderr.split('\n').find((l) => l.startsWith('MARKS '));
  assert.ok(line, r.stderr);
  const { marks } = JSON.parse(line.slice(6)) as { marks: { rss: number; tensors: number }[] };
  assert.equal(marks.length, samples);
  // The model's parameters and nothing else: every sample's tensors are released when it ends.
  assert.ok(marks.every((m) => m.tensors === marks[0]!.tensors), `live tensors per sample: ${marks.map((m) => m.tensors).join(' ')}`);
  // The end against the peak of the first half: allocator, JIT and V8's heap settle in steps of a few MiB early on
  // (one run went 300, 289, 295 … 304 MiB), a leak keeps climbing: before the fix ~0.75 MiB per sample, about
  // 18 MiB over the second half; after it the second half stays within ~1 MiB of the first half's peak.
  const half = marks.slice(0, samples / 2).map((m) => m.rss);
  const growthMiB = (marks.at(-1)!.rss - Math.max(...half)) / 2 ** 20;
  const mib = marks.filter((_, i) => i % 5 === 4).map((m) => (m.rss / 2 ** 20).toFixed(0));
  assert.ok(growthMiB < 8, `RSS grew by ${growthMiB.toFixed(1)} MiB from the first half's peak to sample ${samples} (every 5th sample: ${mib.join(' ')} MiB)`);
});
