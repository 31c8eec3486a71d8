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
  // 96 samples: over 48, one late settling step of the allocator (295 → 314 MiB once on Debian 13, where 150-sample
  // runs level off at 272 and 301 MiB) could pass for a climb.
  const samples = 96;
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
  // The trend, not single steps: allocator, JIT and V8's heap settle in steps of a few MiB at moments of their
  // choosing (runs went 300, 289, 295 … 304 MiB, and 295 … 301, 307 on Debian 13), while a leak climbs steadily —
  // before the fix ~0.75 MiB per sample. The least-squares slope of RSS over the samples after the first quarter
  // separates the two: ~0.25 MiB/sample at most for the steps seen, 0.75 for the leak.
  const from = Math.floor(samples / 4);
  const xs = marks.slice(from).map((_, i) => i);
  const ys = marks.slice(from).map((m) => m.rss / 2 ** 20);
  const mx = xs.reduce((a, b) => a + b, 0) / xs.length;
  const my = ys.reduce((a, b) => a + b, 0) / ys.length;
  const slope = xs.reduce((a, x, i) => a + (x - mx) * (ys[i]! - my), 0) / xs.reduce((a, x) => a + (x - mx) ** 2, 0);
  const mib = marks.filter((_, i) => i % 5 === 4).map((m) => (m.rss / 2 ** 20).toFixed(0));
  assert.ok(slope < 0.45, `RSS climbs ${slope.toFixed(2)} MiB per sample after sample ${from} (every 5th sample: ${mib.join(' ')} MiB)`);
});
