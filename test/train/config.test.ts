import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../../src/train/config.js';
import { learningRate, scheduleWarnings } from '../../src/train/lr-schedule.js';
import { UserError } from '../../src/util/errors.js';
import { assertUserError, nanogptSync } from '../helpers/nanogpt-cli.js';

// The original's file lives in shared/ beside the repository when it is there; the repository ships the same
// configuration as configs/gpt2_train_cfg.yaml (checked equal below whenever both exist).
const shipped = fileURLToPath(new URL('../../../configs/gpt2_train_cfg.yaml', import.meta.url));
const original = fileURLToPath(new URL('../../../../shared/reference/gpt2_train_cfg.yaml', import.meta.url));
const reference = existsSync(original) ? original : shipped;

function tmpYaml(text: string): string {
  const f = path.join(mkdtempSync(path.join(os.tmpdir(), 'nanogpt-cfg-')), 'c.yaml');
  writeFileSync(f, text);
  return f;
}

test('the reference gpt2_train_cfg.yaml loads unchanged with its values', () => {
  const c = loadConfig({ file: reference });
  assert.equal(c.data_dir, './data/openwebtext');
  assert.equal(c.block_size, 1024);
  assert.equal(c.optimizer_config.learning_rate, 6e-4);
  assert.equal(c.optimizer_config.weight_decay, 0.1);
  assert.equal(c.optimizer_config.beta2, 0.95);
  assert.equal(c.trainer_config.mixed_precision, 'bf16');
  assert.equal(c.trainer_config.eval_only, false);
  assert.equal(c.trainer_config.batch_size, 32);
  assert.equal(c.trainer_config.gradient_accumulation_steps, 2);
  assert.equal(c.trainer_config.decay_lr, true);
  assert.equal(c.trainer_config.min_lr, 6e-5);
  assert.equal(c.trainer_config.model_path, 'ckpt.pt');
  // our own keys get defaults
  assert.equal(c.init_from, 'scratch');
  assert.equal(c.model.preset, 'gpt2');
});

test('configs/gpt2_train_cfg.yaml is the original configuration', () => {
  assert.deepEqual(loadConfig({ file: shipped }), loadConfig({ file: reference }));
  assert.equal(loadConfig({ file: shipped }).trainer_config.batch_size, 32);
});

test('overrides by dotted key, parsed as YAML scalars', () => {
  const c = loadConfig({ file: reference, overrides: new Map([['trainer_config.batch_size', '8'], ['model.preset', 'gpt2-tiny'], ['trainer_config.eval_only', 'True'], ['seed', '3']]) });
  assert.equal(c.trainer_config.batch_size, 8);
  assert.equal(c.model.preset, 'gpt2-tiny');
  assert.equal(c.trainer_config.eval_only, true);
  assert.equal(c.seed, 3);
});

test('an unknown key is an error listing the valid ones', () => {
  assert.throws(() => loadConfig({ file: tmpYaml('trainer_config:\n  batchsize: 8\n') }), (e: unknown) => {
    assert.ok(e instanceof UserError);
    assert.match(e.message, /unknown key 'trainer_config\.batchsize'/);
    assert.match(e.message, /batch_size/);
    return true;
  });
  assert.throws(() => loadConfig({ overrides: { learning_rate: '1' } }), /unknown key 'learning_rate'.*\n.*optimizer_config/s);
});

test("nanoGPT's flat keys and typos get the key they mean, spelled for where they were written", () => {
  const fixOf = (f: () => unknown): string => {
    try {
      f();
    } catch (e) {
      assert.ok(e instanceof UserError, String(e));
      return e.message;
    }
    assert.fail('no error');
  };
  assert.match(fixOf(() => loadConfig({ overrides: { batch_size: '8' } })), /did you mean --trainer_config\.batch_size=/);
  assert.match(fixOf(() => loadConfig({ overrides: { n_layer: '2' } })), /did you mean --model\.n_layer=/);
  assert.match(fixOf(() => loadConfig({ overrides: { learning_rate: '1e-3' } })), /--trainer_config\.max_lr=.*peak of the schedule/);
  assert.match(fixOf(() => loadConfig({ overrides: { dtype: 'bfloat16' } })), /--trainer_config\.mixed_precision=/);
  assert.match(fixOf(() => loadConfig({ overrides: { compile: 'true' } })), /compile has no counterpart here/);
  assert.match(fixOf(() => loadConfig({ overrides: { 'trainer_config.max_iter': '3' } })), /did you mean --trainer_config\.max_iters=/);
  assert.match(fixOf(() => loadConfig({ overrides: { 'trainer_config.beta1': '0.8' } })), /did you mean --optimizer_config\.beta1=/);
  // In a file the fix is the YAML path, not a flag.
  assert.match(fixOf(() => loadConfig({ file: tmpYaml('batch_size: 4\n') })), /trainer_config\.batch_size \(batch_size: indented under trainer_config:\)/);
  // Nothing close: the valid keys, as before.
  assert.match(fixOf(() => loadConfig({ overrides: { zzzzzz: '1' } })), /valid keys: data_dir/);
});

test('a wrong type names the key, the value and the expected type', () => {
  assert.throws(() => loadConfig({ file: tmpYaml('trainer_config:\n  batch_size: many\n') }), /trainer_config\.batch_size = "many" is not an integer/);
  assert.throws(() => loadConfig({ overrides: { 'trainer_config.mixed_precision': 'fp8' } }), /mixed_precision = "fp8" is not one of bf16, fp32/);
  assert.throws(() => loadConfig({ overrides: { 'trainer_config.batch_size': '2.5' } }), /batch_size = 2.5 is not an integer/);
  assert.throws(() => loadConfig({ file: tmpYaml('optimizer_config: 3\n') }), /optimizer_config must be a mapping/);
  assert.throws(() => loadConfig({ file: tmpYaml('a: [\n') }), /is not valid YAML/);
  assert.throws(() => loadConfig({ file: '/nonexistent/cfg.yaml' }), /cannot read config file \/nonexistent\/cfg\.yaml: ENOENT/);
  assert.throws(() => loadConfig({ overrides: { 'trainer_config.batch_size': '0' } }), /batch_size must be at least 1/);
  assert.throws(() => loadConfig({ overrides: { 'trainer_config.min_lr': '1' } }), /min_lr \(1\) is above max_lr/);
});

test('learning-rate schedule: linear warmup, cosine decay, floor', () => {
  const c = loadConfig({ overrides: { 'trainer_config.warmup_iters': '10', 'trainer_config.lr_decay_iters': '110', 'trainer_config.max_lr': '1', 'trainer_config.min_lr': '0.1' } }).trainer_config;
  assert.ok(Math.abs(learningRate(0, c, 0) - 1 / 11) < 1e-12);
  assert.ok(Math.abs(learningRate(9, c, 0) - 10 / 11) < 1e-12);
  assert.equal(learningRate(10, c, 0), 1);
  assert.ok(Math.abs(learningRate(60, c, 0) - 0.55) < 1e-12); // halfway: min + 0.5 (max - min)
  assert.ok(Math.abs(learningRate(110, c, 0) - 0.1) < 1e-12);
  assert.equal(learningRate(500, c, 0), 0.1);
  assert.equal(learningRate(5, { ...c, decay_lr: false }, 0.3), 0.3);
});

test('lr_decay_iters left unset follows max_iters; set in a file or a flag it is kept', () => {
  assert.equal(loadConfig({ overrides: { 'trainer_config.max_iters': '200' } }).trainer_config.lr_decay_iters, 200);
  assert.equal(loadConfig({ overrides: { 'trainer_config.max_iters': '200', 'trainer_config.lr_decay_iters': '50' } }).trainer_config.lr_decay_iters, 50);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'nanogpt-cfg-'));
  const file = path.join(dir, 'c.yaml');
  writeFileSync(file, 'trainer_config:\n  lr_decay_iters: 30\n');
  assert.equal(loadConfig({ file, overrides: { 'trainer_config.max_iters': '200' } }).trainer_config.lr_decay_iters, 30);
  writeFileSync(file, 'trainer_config:\n  max_iters: 70\n');
  assert.equal(loadConfig({ file }).trainer_config.lr_decay_iters, 70);
  // A short run whose default warmup covers it: not an error when lr_decay_iters was not set (a warning says so).
  const short = loadConfig({ overrides: { 'trainer_config.max_iters': '2' } }).trainer_config;
  assert.equal(short.lr_decay_iters, 2);
  assert.match(scheduleWarnings(short).join(), /whole run is warmup/);
});

test('schedule warnings: most of the run at min_lr, a cosine cut short, none when it fits', () => {
  const t = (o: Record<string, string>) => loadConfig({ overrides: o }).trainer_config;
  assert.deepEqual(scheduleWarnings(t({ 'trainer_config.max_iters': '200' })), []);
  assert.deepEqual(scheduleWarnings(t({ 'trainer_config.max_iters': '200', 'trainer_config.lr_decay_iters': '190' })), []);
  const early = scheduleWarnings(t({ 'trainer_config.max_iters': '200', 'trainer_config.lr_decay_iters': '10' }));
  assert.equal(early.length, 1);
  assert.match(early[0]!, /the last 190 steps \(95%\) run at min_lr/);
  const late = scheduleWarnings(t({ 'trainer_config.max_iters': '200', 'trainer_config.lr_decay_iters': '1000' }));
  assert.match(late[0]!, /beyond max_iters \(200\): the run ends before the cosine reaches min_lr/);
  assert.deepEqual(scheduleWarnings(t({ 'trainer_config.max_iters': '200', 'trainer_config.lr_decay_iters': '10', 'trainer_config.decay_lr': 'false' })), []);
});

test("train takes Hydra's key=value (and +key=value) overrides without dashes, through the same validation", () => {
  // Values that fail validation prove the override reached the config, without training anything.
  assertUserError(nanogptSync(['train', 'trainer_config.max_iters=abc']), /trainer_config\.max_iters.*integer/s);
  assertUserError(nanogptSync(['train', '++model.n_layer=-1']), /model\.n_layer/);
  assertUserError(nanogptSync(['train', 'batch_size=8']), /did you mean --trainer_config\.batch_size=/);
  assertUserError(nanogptSync(['train', 'stray']), /unexpected argument 'stray'.*key=value/s);
});
