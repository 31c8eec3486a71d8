// Model shapes that lie: a checkpoint's model_config, a Hugging Face config.json, the training config. Each is
// refused by the one shared check (src/gpt/config.ts checkModelConfig) before anything is allocated, with exit 2 and
// the field named; tensors whose dtype or shape does not fit are refused before any is read.
import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as torch from '../../src/torch/index.js';
import { GPT } from '../../src/gpt/model.js';
import { checkModelConfig, GPT2_VOCAB_SIZE, MAX_PARAMETERS, parameterCount, TRAIN_CONFIG_NAMES, type GPTConfig } from '../../src/gpt/config.js';
import { convertLayout, hfConfigJson } from '../../src/gpt/hf-layout.js';
import { loadModel, saveModel } from '../../src/train/checkpoint.js';
import { loadConfig } from '../../src/train/config.js';
import { scratchConfig } from '../../src/train/model-init.js';
import { saveTensors } from '../../src/io/tensor-file.js';
import { UserError } from '../../src/util/errors.js';
import { assertUserError, digestTree, nanogptSync } from '../helpers/nanogpt-cli.js';
import { editJsonMetadata, editSafetensors } from '../helpers/safetensors-edit.js';
import { writePatternCorpus } from '../helpers/corpus.js';

const tiny: GPTConfig = { nLayer: 2, nHead: 2, nEmbd: 16, blockSize: 8, vocabSize: GPT2_VOCAB_SIZE, dropout: 0, bias: true };
let dir = '';
let ckpt = '';
let hfDir = '';

before(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'nanogpt-config-validation-'));
  ckpt = path.join(dir, 'ckpt.pt');
  torch.manualSeed(0);
  const model = new GPT(tiny);
  await saveModel(ckpt, model);
  hfDir = path.join(dir, 'hf');
  mkdirSync(hfDir);
  await torch.scope(async () => {
    const entries: [string, torch.Tensor][] = [...model.stateDict()].map(([name, t]) => [name.replace(/^transformer\./, ''), convertLayout(name, t)]);
    await saveTensors(path.join(hfDir, 'model.safetensors'), entries, { format: 'pt' });
  });
  model.dispose();
});

after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** A copy of the good checkpoint whose model_config has `change` applied. */
function lyingConfig(name: string, change: Record<string, unknown> | ((c: Record<string, unknown>) => unknown)): string {
  const file = path.join(dir, `${name}.pt`);
  editJsonMetadata(ckpt, file, 'model_config', typeof change === 'function' ? change : (c) => ({ ...c, ...change }));
  return file;
}

/** The same refusal without a child process (most cases go this way, to keep the file fast; each kind has a CLI case). */
async function refused(file: string, pattern: RegExp): Promise<void> {
  await assert.rejects(loadModel(file), (e: unknown) => {
    assert.ok(e instanceof UserError, `a UserError, not ${String(e)}`);
    assert.match(e.message, pattern);
    return true;
  });
}

function sample(file: string): ReturnType<typeof nanogptSync> {
  return nanogptSync(['sample', '--ckpt_path', file, '--max_new_tokens', '2', '--num_samples', '1', '--prompt', 'a'], { cwd: dir });
}

test('the good checkpoint loads (the cases below differ from it only where they say)', () => {
  const r = sample(ckpt);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /loaded .*ckpt\.pt \(model\): 2 layers, 2 heads, 16 dims/);
});

test('model_config fields that are not whole numbers in range are named, with the value and the range', async () => {
  const cases: [string, unknown, RegExp][] = [
    ['neg', -1, /model_config\.nLayer is -1; expected a whole number from 1 to 1,024/],
    ['frac', 2.5, /model_config\.nLayer is 2\.5; expected a whole number from 1 to 1,024/],
    ['string', '2', /model_config\.nLayer is the string "2"; expected a whole number/],
    ['null', null, /model_config\.nLayer is null; expected a whole number/],
    ['array', [2], /model_config\.nLayer is an array \[2\]; expected a whole number/],
  ];
  // Through the CLI: -1 used to load as "-1 layers", a string used to end in an internal error.
  assertUserError(sample(lyingConfig('nlayer-cli-neg', { nLayer: -1 })), cases[0]![2]);
  assertUserError(sample(lyingConfig('nlayer-cli-string', { nLayer: '2' })), cases[2]![2]);
  for (const [name, value, pattern] of cases) await refused(lyingConfig(`nlayer-${name}`, { nLayer: value }), pattern);
  await refused(lyingConfig('no-bias', (c) => ({ ...c, bias: undefined })), /model_config\.bias is missing; expected true or false/);
  await refused(lyingConfig('dropout', { dropout: 1 }), /model_config\.dropout is 1; expected a number in \[0, 1\)/);
  await refused(lyingConfig('not-object', () => [1, 2]), /model_config is an array \[1,2\]; expected a JSON object/);
});

test('n_head that does not divide n_embd, and absurd sizes, are refused before allocating', async () => {
  await refused(lyingConfig('heads', { nHead: 3 }), /model_config\.nEmbd \(16\) is not divisible by model_config\.nHead \(3\)/);
  await refused(lyingConfig('vocab', { vocabSize: 1e9 }), /model_config\.vocabSize is 1000000000; expected a whole number from 1 to 16,777,216/);
  // Every field within its bound, the whole far beyond: 1000 layers of 4096 dims is 201 billion parameters.
  const r = sample(lyingConfig('huge', { nLayer: 1000, nEmbd: 4096, nHead: 32 }));
  assertUserError(r, /has 201\.6 billion parameters, more than the limit of 10\.0 billion/);
  await refused(lyingConfig('block', { blockSize: 1_048_576, nEmbd: 16_000, nHead: 16 }), /1048576 positions\) has 23\.7 billion parameters/);
});

test('tensors of a dtype or shape other than the config says, or that the config does not have, are named', async () => {
  const u16 = path.join(dir, 'u16.pt');
  editSafetensors(ckpt, u16, (h) => Object.assign(h['transformer.ln_f.bias'] as object, { dtype: 'U16', shape: [32] }));
  assertUserError(sample(u16), /tensor transformer\.ln_f\.bias has dtype U16; weights must be one of F32, BF16, F16, F64/);
  const i32 = path.join(dir, 'i32.pt');
  editSafetensors(ckpt, i32, (h) => Object.assign(h['transformer.ln_f.bias'] as object, { dtype: 'I32' }));
  await refused(i32, /tensor transformer\.ln_f\.bias has dtype I32; weights must be one of/);
  const shape = path.join(dir, 'shape.pt');
  editSafetensors(ckpt, shape, (h) => Object.assign(h['transformer.ln_f.bias'] as object, { shape: [4, 4] }));
  await refused(shape, /tensor transformer\.ln_f\.bias has shape \[4, 4\]; the model described by the file needs \[16\]/);
  // A config with one layer fewer than the file holds no longer loads a truncated model in silence.
  await refused(lyingConfig('fewer', { nLayer: 1 }), /holds tensor transformer\.h\.1\.\S+, which a model of its model_config \(1 layer, 16 dims\) does not have/);
});

test('export and train --init_from refuse a lying checkpoint and leave existing outputs alone', () => {
  const bad = lyingConfig('export-neg', { nLayer: -1 });
  const out = path.join(dir, 'export-out');
  mkdirSync(out, { recursive: true });
  writeFileSync(path.join(out, 'model.safetensors'), 'earlier export');
  writeFileSync(path.join(out, 'config.json'), '{"earlier": true}');
  const before = digestTree(out);
  assertUserError(nanogptSync(['export', '--ckpt_path', bad, '--out_dir', out]), /model_config\.nLayer is -1/);
  assert.deepEqual(digestTree(out), before);

  const data = writePatternCorpus({});
  const runDir = path.join(dir, 'train-out');
  mkdirSync(runDir, { recursive: true });
  writeFileSync(path.join(runDir, 'ckpt.pt'), 'an earlier best model');
  writeFileSync(path.join(runDir, 'metrics.jsonl'), '{"type":"start"}\n');
  const runBefore = digestTree(runDir);
  try {
    const r = nanogptSync(['train', `--data_dir=${data}`, `--out_dir=${runDir}`, `--init_from=${lyingConfig('init-heads', { nHead: 5 })}`, '--block_size=8', '--threads=1']);
    assertUserError(r, /model_config\.nEmbd \(16\) is not divisible by model_config\.nHead \(5\)/);
    assert.deepEqual(digestTree(runDir), runBefore);
  } finally {
    rmSync(data, { recursive: true, force: true });
  }
});

test('a Hugging Face config.json that lies about n_head, or is not JSON, is named', async () => {
  const cfg = path.join(hfDir, 'config.json');
  const file = path.join(hfDir, 'model.safetensors');
  writeFileSync(cfg, JSON.stringify(hfConfigJson(tiny)));
  const honest = await loadModel(file);
  await honest.reader.close();
  honest.model.dispose();
  writeFileSync(cfg, JSON.stringify({ ...hfConfigJson(tiny), n_head: 'x' }));
  assertUserError(sample(file), /n_head in \S*config\.json is the string "x"; expected a whole number from 1 to 1,024/);
  writeFileSync(cfg, JSON.stringify({ ...hfConfigJson(tiny), n_head: 3 }));
  await refused(file, /n_embd \(the columns of wte\.weight\) \(16\) is not divisible by n_head in \S*config\.json \(3\)/);
  writeFileSync(cfg, '{"n_head": 2,');
  await refused(file, /config\.json is not valid JSON/);
  rmSync(cfg);
});

test('the training config goes through the same check: negative and absurd model.* values are named', () => {
  const data = writePatternCorpus({});
  const out = path.join(dir, 'scratch-out');
  try {
    const base = ['train', `--data_dir=${data}`, `--out_dir=${out}`, '--block_size=8', '--threads=1', '--model.preset=gpt2-tiny'];
    assertUserError(nanogptSync([...base, '--model.n_layer=-1']), /the training config: model\.n_layer is -1; expected a whole number from 1 to 1,024/);
    const c = loadConfig({ overrides: { 'model.preset': 'gpt2-tiny', block_size: '8' } });
    const scratch = (model: Partial<typeof c.model>) => () => scratchConfig({ ...c, model: { ...c.model, ...model } });
    assert.throws(scratch({ n_head: 3 }), /model\.n_embd \(64\) is not divisible by model\.n_head \(3\)/);
    assert.throws(scratch({ n_layer: -2 }), /model\.n_layer is -2/);
    assert.throws(scratch({ vocab_size: 16_000_000, n_embd: 1024, n_head: 16 }), /billion parameters, more than the limit of 10\.0 billion/);
    assert.deepEqual(scratch({})(), { nLayer: 2, nHead: 2, nEmbd: 64, blockSize: 8, vocabSize: GPT2_VOCAB_SIZE, dropout: 0, bias: true });
  } finally {
    rmSync(data, { recursive: true, force: true });
  }
});

test('parameterCount matches a built model; the memory limit names the machine', () => {
  for (const bias of [true, false]) {
    const cfg = { ...tiny, bias, nLayer: 3 };
    const m = new GPT(cfg);
    assert.equal(parameterCount(cfg), m.countParameters(false));
    m.dispose();
  }
  const origin = { source: 'test', names: TRAIN_CONFIG_NAMES, fix: 'fix it', memoryBytes: 1e6 };
  assert.throws(() => checkModelConfig({ ...tiny, nEmbd: 256, nHead: 4 }, origin), (e: unknown) => e instanceof UserError && /GB of float32 weights, more than this machine's 0\.0 GB of memory/.test(e.message));
  assert.deepEqual(checkModelConfig({ ...tiny, extra: 1 } as GPTConfig, { ...origin, memoryBytes: 1e9 }), tiny);
  assert.ok(parameterCount({ nLayer: 48, nHead: 25, nEmbd: 1600, blockSize: 1024, vocabSize: 50257, bias: true }) < MAX_PARAMETERS / 6);
});
