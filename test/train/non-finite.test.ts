// NaN and infinity: weights that hold them are refused when loaded (sample, export, train --init_from, a snapshot's
// optimizer moments), and a run whose loss or gradient norm stops being finite stops before the optimizer step,
// saying where and what to try, without writing the diverged weights over the best model or the last snapshot.
import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as torch from '../../src/torch/index.js';
import { GPT } from '../../src/gpt/model.js';
import { GPT2_VOCAB_SIZE, type GPTConfig } from '../../src/gpt/config.js';
import { loadModel, restoreOptimizer, saveModel, saveSnapshot } from '../../src/train/checkpoint.js';
import { saveTensors } from '../../src/io/tensor-file.js';
import { UserError } from '../../src/util/errors.js';
import { SamplerRng } from '../../src/util/rng.js';
import { sampleRows } from '../../src/gpt/generate.js';
import { runNode } from '../helpers/children.js';
import { freePort } from '../helpers/ports.js';
import { assertUserError, digestTree, nanogptSync, bin } from '../helpers/nanogpt-cli.js';
import { writePatternCorpus } from '../helpers/corpus.js';

const tiny: GPTConfig = { nLayer: 2, nHead: 2, nEmbd: 16, blockSize: 16, vocabSize: GPT2_VOCAB_SIZE, dropout: 0, bias: true };
let tmp = '';
let data = '';
let nanCkpt = '';

before(async () => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'nanogpt-non-finite-'));
  data = writePatternCorpus({});
  nanCkpt = path.join(tmp, 'nan.pt');
  const model = new GPT(tiny);
  torch.noGrad(() => model.stateDict().get('transformer.h.1.mlp.c_fc.bias')!.fill_(NaN));
  await saveModel(nanCkpt, model);
  model.dispose();
});

after(() => {
  for (const d of [tmp, data]) if (d) rmSync(d, { recursive: true, force: true });
});

function trainArgs(out: string, iters: number, extra: string[] = []): string[] {
  return [
    'train', `--data_dir=${data}`, `--out_dir=${out}`, '--block_size=16', '--model.preset=gpt2-tiny', '--model.n_embd=32', '--model.vocab_size=64',
    '--trainer_config.batch_size=2', '--trainer_config.gradient_accumulation_steps=1', '--trainer_config.mixed_precision=fp32',
    `--trainer_config.max_iters=${iters}`, '--trainer_config.eval_interval=2', '--trainer_config.lr_decay_iters=8', '--trainer_config.warmup_iters=1',
    '--threads=1', '--distributed.timeout_s=30', ...extra,
  ];
}

async function refused(load: () => Promise<unknown>, pattern: RegExp): Promise<void> {
  await assert.rejects(load, (e: unknown) => {
    assert.ok(e instanceof UserError, `a UserError, not ${String(e)}`);
    assert.match(e.message, pattern);
    return true;
  });
}

test('nonFiniteCount: one sum in the usual case, an exact count otherwise, no false alarm on a sum that overflows', () => {
  torch.scope(() => {
    assert.equal(torch.nonFiniteCount(torch.tensor([1, NaN, Infinity, -Infinity, 2])), 3);
    assert.equal(torch.nonFiniteCount(torch.full([1000], 3e38)), 0, 'finite values whose float32 sum is infinite');
    assert.equal(torch.nonFiniteCount(torch.zeros([0])), 0);
    assert.equal(torch.nonFiniteCount(torch.tensor([1, NaN]).to('bfloat16')), 1);
    const p = torch.ones([3]).requiresGrad_(true);
    assert.equal(torch.nonFiniteCount(p), 0);
  });
});

test('finite weights whose logits overflow stop sampling with a message instead of a garbage token', () => {
  const rngs = [new SamplerRng(1)];
  torch.scope(() => {
    const logits = torch.tensor([[1, Infinity, 2]]);
    for (const temperature of [0, 0.8]) {
      assert.throws(() => sampleRows(logits, { temperature, topK: undefined, topP: undefined }, rngs), (e: unknown) => e instanceof UserError && /NaN or infinite logits/.test(e.message));
    }
    assert.deepEqual(sampleRows(torch.tensor([[1, 9, 2]]), { temperature: 0, topK: undefined, topP: undefined }, rngs), [1]);
  });
});

test('sample, export and train --init_from refuse NaN weights, naming the tensor; outputs stay as they were', () => {
  const pattern = /tensor transformer\.h\.1\.mlp\.c_fc\.bias holds 64 NaN or infinite values \(of 64\)/;
  // sample used to end in "probability tensor contains either inf, nan" (an internal error).
  assertUserError(nanogptSync(['sample', '--ckpt_path', nanCkpt, '--max_new_tokens', '2', '--num_samples', '1']), pattern);

  const out = path.join(tmp, 'export-out');
  mkdirSync(out, { recursive: true });
  writeFileSync(path.join(out, 'model.safetensors'), 'earlier export');
  const exportBefore = digestTree(out);
  assertUserError(nanogptSync(['export', '--ckpt_path', nanCkpt, '--out_dir', out]), pattern);
  assert.deepEqual(digestTree(out), exportBefore);

  const runDir = path.join(tmp, 'init-out');
  mkdirSync(runDir, { recursive: true });
  writeFileSync(path.join(runDir, 'ckpt.pt'), 'an earlier best model');
  const runBefore = digestTree(runDir);
  assertUserError(nanogptSync([...trainArgs(runDir, 2), `--init_from=${nanCkpt}`]), pattern);
  assert.deepEqual(digestTree(runDir), runBefore);
});

test('values that overflow float32 on loading, and NaN optimizer moments, are refused too', async () => {
  const model = new GPT({ ...tiny, vocabSize: 64 });
  try {
    // F64 in the file: finite there, infinite once copied into the float32 parameter.
    const f64 = path.join(tmp, 'f64.pt');
    await torch.scope(async () => {
      const entries = [...model.stateDict()].map(([n, t]): [string, torch.Tensor] => [n, n === 'transformer.ln_f.weight' ? t.to('float64').fill_(1e300) : t]);
      await saveTensors(f64, entries, { format: 'nanogpt-ts/model/1', model_config: JSON.stringify(model.config) });
    });
    await refused(() => loadModel(f64), /tensor transformer\.ln_f\.weight holds 16 NaN or infinite values/);

    const snap = path.join(tmp, 'moments.pt');
    const opt = new torch.AdamW(model.parameters(), { lr: 1e-3 });
    torch.noGrad(() => opt.expAvgSq[0]!.fill_(Infinity));
    const rng = Buffer.from(torch.getRngState()).toString('base64');
    const sampler = { train: [1, 2, 3, 4], val: [5, 6, 7, 8] };
    await saveSnapshot(snap, model, opt, { iter: 1, optimizerStep: 1, bestValLoss: 4, tokens: 32, sampler, rng, worldSize: 1 }, {});
    opt.dispose();
    const loaded = await loadModel(snap);
    const fresh = new torch.AdamW(loaded.model.parameters(), { lr: 1e-3 });
    try {
      await refused(() => restoreOptimizer(loaded.reader, loaded.model, fresh), /tensor optimizer\.exp_avg_sq\.\S+ holds \d+ NaN or infinite values/);
    } finally {
      fresh.dispose();
      await loaded.reader.close();
      loaded.model.dispose();
    }
  } finally {
    model.dispose();
  }
});

test('a run that diverges stops with the iteration and a hint, and keeps the last good snapshot and best model', () => {
  const run = path.join(tmp, 'diverge');
  const first = nanogptSync(trainArgs(run, 2));
  assert.equal(first.code, 0, first.stderr);
  const good = digestTree(run);
  const checkpoints = (d: Record<string, string>): string[] => Object.entries(d).filter(([n]) => n.endsWith('.pt')).map(([n, h]) => `${n} ${h}`);
  // A learning rate of 1e38 sends the weights to infinity within a step or two; evaluating every step means the
  // old trainer would have written a snapshot (of NaN weights) right after.
  const r = nanogptSync(trainArgs(run, 8, ['--trainer_config.max_lr=1e38', '--trainer_config.eval_interval=1']));
  assertUserError(r, /training diverged: at (iteration \d+ \(learning rate [\d.e+]+\) the loss is NaN|step \d+ the train loss is NaN)/);
  assert.match(r.stderr, /the snapshot \S+snapshot\.pt \(iteration 2\) and \S+ckpt\.pt are unchanged, and the same command resumes from that snapshot/);
  assert.match(r.stderr, /fix: lower the learning rate .*keep gradient clipping on/);
  assert.deepEqual(checkpoints(digestTree(run)), checkpoints(good));
});

test('in a 2-rank run every rank stops at the same point with the message, none hangs, nothing is saved', async () => {
  const out = path.join(tmp, 'ddp-diverge');
  const port = await freePort();
  const env = (r: number): Record<string, string> => ({ RANK: String(r), LOCAL_RANK: String(r), WORLD_SIZE: '2', LOCAL_WORLD_SIZE: '2', MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port), OMP_NUM_THREADS: '1' });
  const args = [bin, ...trainArgs(out, 6, ['--trainer_config.max_lr=1e38', '--trainer_config.eval_interval=1'])];
  const results = await Promise.all([0, 1].map((r) => runNode(args, env(r), 90_000)));
  const where = results.map((r) => /training diverged: (at (iteration|step) \d+)/.exec(r.stderr)?.[1]);
  for (const r of results) assertUserError(r, /training diverged: /);
  assert.equal(where[0], where[1], 'both ranks stop at the same point');
  // Only the step-0 best model (the starting weights, saved before any step) may be there: nothing diverged.
  assert.deepEqual(Object.keys(digestTree(out)).filter((n) => n.endsWith('.pt')), ['ckpt.pt'], 'no snapshot of diverged weights');
  assert.match(results[0]!.stderr, /saved best model \(val loss \d+\.\d+, the starting weights\)/);
  assert.equal((results[0]!.stderr.match(/saved best model/g) ?? []).length, 1, 'no best model saved after step 0');
});

test('a copy of a good run still resumes after the refusals above (nothing shared was changed)', () => {
  const src = path.join(tmp, 'diverge');
  const copy = path.join(tmp, 'diverge-copy');
  cpSync(src, copy, { recursive: true });
  const r = nanogptSync(trainArgs(copy, 3));
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /resuming from snapshot/);
});
