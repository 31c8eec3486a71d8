import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as torch from '../../src/torch/index.js';
import { GPT } from '../../src/gpt/model.js';
import { loadConfig } from '../../src/train/config.js';
import { train } from '../../src/train/trainer.js';
import { writePatternCorpus } from '../helpers/corpus.js';

const tiny = { nLayer: 2, nHead: 2, nEmbd: 32, blockSize: 16, vocabSize: 64, dropout: 0, bias: true };
const quiet = (): void => undefined;

function tinyConfig(dataDir: string, outDir: string, extra: Record<string, string> = {}) {
  return loadConfig({
    overrides: {
      data_dir: dataDir,
      out_dir: outDir,
      block_size: '16',
      'model.preset': 'gpt2-tiny',
      'model.n_embd': '32',
      'model.vocab_size': '64',
      'trainer_config.batch_size': '4',
      'trainer_config.gradient_accumulation_steps': '2',
      'trainer_config.mixed_precision': 'fp32',
      'trainer_config.max_iters': '10',
      'trainer_config.eval_interval': '5',
      'trainer_config.eval_iters': '2',
      'trainer_config.warmup_iters': '2',
      'trainer_config.lr_decay_iters': '10',
      'trainer_config.max_lr': '3e-3',
      'trainer_config.min_lr': '3e-4',
      threads: '1',
      ...extra,
    },
  });
}

test('loss at initialisation is about ln(vocab)', () => {
  torch.manualSeed(0);
  const model = new GPT({ ...tiny, vocabSize: 50257, nEmbd: 64 });
  const loss = torch.scope(() => model.forward(torch.randint(0, 50257, [4, 16]), torch.randint(0, 50257, [4, 16])).loss!.item());
  assert.ok(Math.abs(loss - Math.log(50257)) < 0.1, `loss ${loss}`);
  model.dispose();
});

test('the LM head shares storage with the token embedding', () => {
  const model = new GPT(tiny);
  assert.equal(model.lm_head.weight, model.transformer.wte.weight);
  const names = [...model.stateDict().keys()];
  assert.ok(names.includes('transformer.wte.weight') && !names.includes('lm_head.weight'));
  torch.noGrad(() => model.transformer.wte.weight.fill_(0.5));
  assert.equal(model.lm_head.weight.mean().item(), 0.5);
  // one gradient flows into the shared matrix from both uses
  torch.scope(() => model.forward(torch.randint(0, 64, [2, 8]), torch.randint(0, 64, [2, 8])).loss!.backward());
  assert.ok(model.transformer.wte.weight.grad !== null);
  model.dispose();
});

test('a tiny model overfits one batch (loss < 0.1)', () => {
  torch.manualSeed(1);
  const model = new GPT(tiny);
  const opt = new torch.AdamW(model.parameters(), { lr: 1e-2, weightDecay: 0 });
  const x = torch.keep(torch.randint(0, 64, [2, 16]));
  const y = torch.keep(torch.randint(0, 64, [2, 16]));
  let loss = Infinity;
  for (let i = 0; i < 150 && loss >= 0.1; i++) {
    loss = torch.scope(() => {
      const l = model.forward(x, y).loss!;
      l.backward();
      return l.item();
    });
    opt.stepWith();
    opt.zeroGrad();
  }
  assert.ok(loss < 0.1, `loss ${loss}`);
  opt.dispose();
  model.dispose();
});

test('k micro-batches of b give the same gradient as one batch of k·b (fp32)', () => {
  torch.manualSeed(2);
  const model = new GPT(tiny);
  const x = torch.randint(0, 64, [6, 16]);
  const y = torch.randint(0, 64, [6, 16]);
  torch.scope(() => model.forward(x, y).loss!.backward());
  const full = model.parameters().map((p) => torch.keep(p.grad!.clone()));
  model.parameters().forEach((p) => (p.grad = null));
  for (let k = 0; k < 3; k++) {
    torch.scope(() => model.forward(x.narrow(0, 2 * k, 2), y.narrow(0, 2 * k, 2)).loss!.div(3).backward());
  }
  model.parameters().forEach((p, i) => {
    const g = p.grad!;
    assert.ok(g.allclose(full[i]!, 1e-4, 1e-6), `parameter ${i} differs`);
  });
  model.dispose();
});

test('training on a small corpus lowers the validation loss and writes checkpoint, snapshot and metrics', async () => {
  const data = writePatternCorpus();
  const out = mkdtempSync(path.join(os.tmpdir(), 'nanogpt-run-'));
  try {
    const r = await train({ config: tinyConfig(data, out, { 'trainer_config.max_iters': '40', 'trainer_config.eval_interval': '20', 'trainer_config.lr_decay_iters': '40' }), log: quiet });
    const evals = readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { type: string; val_loss?: number });
    const vals = evals.filter((e) => e.type === 'eval').map((e) => e.val_loss!);
    assert.equal(vals.length, 3);
    assert.ok(vals[2]! < vals[0]! - 1, `val loss ${vals.join(' → ')}`);
    assert.equal(r.iter, 40);
    for (const f of ['ckpt.pt', 'snapshot.pt', 'metrics.jsonl']) assert.ok(readFileSync(path.join(out, f)).length > 0, f);
    r.model.dispose();
  } finally {
    rmSync(out, { recursive: true, force: true });
    rmSync(data, { recursive: true, force: true });
  }
});

test('2N uninterrupted steps equal N steps + resume + N steps, bit for bit (fp32)', async () => {
  const data = writePatternCorpus({ seed: 11 });
  const a = mkdtempSync(path.join(os.tmpdir(), 'nanogpt-a-'));
  const b = mkdtempSync(path.join(os.tmpdir(), 'nanogpt-b-'));
  try {
    const common = { 'trainer_config.eval_interval': '4', 'trainer_config.lr_decay_iters': '8', 'model.dropout': '0.1' };
    const full = await train({ config: tinyConfig(data, a, { ...common, 'trainer_config.max_iters': '8' }), log: quiet });
    const first = await train({ config: tinyConfig(data, b, { ...common, 'trainer_config.max_iters': '4' }), log: quiet });
    first.model.dispose();
    const second = await train({ config: tinyConfig(data, b, { ...common, 'trainer_config.max_iters': '8' }), log: quiet });
    assert.deepEqual([...first.trainLosses, ...second.trainLosses], full.trainLosses);
    const wa = full.model.stateDict();
    for (const [name, t] of second.model.stateDict()) assert.ok(t.equal(wa.get(name)!), `${name} differs`);
    assert.equal(second.iter, 8);
    full.model.dispose();
    second.model.dispose();
  } finally {
    for (const d of [a, b, data]) rmSync(d, { recursive: true, force: true });
  }
});

test('the same config and seed give the same losses', async () => {
  const data = writePatternCorpus({ seed: 5 });
  const dirs = [0, 1].map(() => mkdtempSync(path.join(os.tmpdir(), 'nanogpt-det-')));
  try {
    const runs = [];
    for (const d of dirs) runs.push(await train({ config: tinyConfig(data, d, { 'trainer_config.max_iters': '3' }), log: quiet }));
    assert.deepEqual(runs[0]!.trainLosses, runs[1]!.trainLosses);
    runs.forEach((r) => r.model.dispose());
  } finally {
    for (const d of [...dirs, data]) rmSync(d, { recursive: true, force: true });
  }
});
