import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as torch from '../../src/torch/index.js';
import { saveTensors, TensorReader } from '../../src/io/tensor-file.js';
import { resetS3Client } from '../../src/io/object-store.js';
import { startS3Server } from '../helpers/s3-server.js';
import { loadConfig } from '../../src/train/config.js';
import { train } from '../../src/train/trainer.js';
import { writePatternCorpus } from '../helpers/corpus.js';

function sampleTensors(): [string, torch.Tensor][] {
  return torch.DTYPES.map((d) => [`t.${d}`, torch.arange(6).view(2, 3).to(d)] as [string, torch.Tensor]).concat([
    ['scalar', torch.tensor(3.5).reshape([])],
    ['empty', torch.zeros([0, 4])],
    ['bf16.random', torch.randn([5, 7]).to('bfloat16')],
  ]);
}

async function roundTrip(dest: string): Promise<void> {
  await torch.scope(async () => {
    const tensors = sampleTensors();
    await saveTensors(dest, tensors, { note: 'hello' });
    const r = await TensorReader.open(dest);
    try {
      assert.equal(r.metadata.note, 'hello');
      assert.deepEqual(r.names, tensors.map(([n]) => n));
      for (const [name, t] of tensors) {
        const back = await r.get(name);
        assert.equal(back.dtype, t.dtype, name);
        assert.deepEqual(back.shape, t.shape, name);
        assert.ok(back.equal(t), name);
      }
    } finally {
      await r.close();
    }
  });
}

test('tensors of every dtype round-trip through a local safetensors file', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'nanogpt-tf-'));
  try {
    await roundTrip(path.join(dir, 'x.safetensors'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('s3:// checkpoints: tensors round-trip, and training snapshots to S3 and resumes from it', async () => {
  const s3 = await startS3Server(['ckpts']);
  const saved = { ...process.env };
  Object.assign(process.env, s3.env);
  resetS3Client();
  const data = writePatternCorpus({ seed: 3 });
  const out = mkdtempSync(path.join(os.tmpdir(), 'nanogpt-s3run-'));
  try {
    await roundTrip('s3://ckpts/unit/x.safetensors');
    const cfg = (iters: number) =>
      loadConfig({
        overrides: {
          data_dir: data, out_dir: out, block_size: '16', 'model.preset': 'gpt2-tiny', 'model.n_embd': '32', 'model.vocab_size': '64',
          'trainer_config.batch_size': '2', 'trainer_config.gradient_accumulation_steps': '1', 'trainer_config.mixed_precision': 'fp32',
          'trainer_config.max_iters': String(iters), 'trainer_config.eval_interval': '2', 'trainer_config.lr_decay_iters': '4',
          'trainer_config.model_path': 's3://ckpts/run/ckpt.safetensors', 'trainer_config.snapshot_path': 's3://ckpts/run/snapshot.safetensors', threads: '1',
        },
      });
    const first = await train({ config: cfg(2), log: () => undefined });
    first.model.dispose();
    const lines: string[] = [];
    const second = await train({ config: cfg(4), log: (l) => lines.push(l) });
    assert.ok(lines.some((l) => /resuming from snapshot s3:\/\/ckpts\/run\/snapshot\.safetensors/.test(l)), lines.join('\n'));
    assert.equal(second.iter, 4);
    assert.equal(second.trainLosses.length, 2);
    second.model.dispose();
  } finally {
    process.env = saved;
    resetS3Client();
    rmSync(out, { recursive: true, force: true });
    rmSync(data, { recursive: true, force: true });
    await s3.close();
  }
});
