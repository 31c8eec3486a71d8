// Snapshots whose train_state or rank_states lie: every field is checked before the run resumes, the message names
// the field and what was expected, the command exits 2, and the run's files are left as they were.
import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as torch from '../../src/torch/index.js';
import { parseRankStates, parseTrainState } from '../../src/train/snapshot-state.js';
import { UserError } from '../../src/util/errors.js';
import { runNode } from '../helpers/children.js';
import { freePort } from '../helpers/ports.js';
import { assertUserError, digestTree, nanogptSync, bin } from '../helpers/nanogpt-cli.js';
import { editJsonMetadata, readRaw } from '../helpers/safetensors-edit.js';
import { writePatternCorpus } from '../helpers/corpus.js';

let tmp = '';
let data = '';
let run = '';

function trainArgs(out: string, iters: number): string[] {
  return [
    'train', `--data_dir=${data}`, `--out_dir=${out}`, '--block_size=16', '--model.preset=gpt2-tiny', '--model.n_embd=32', '--model.vocab_size=64',
    '--trainer_config.batch_size=2', '--trainer_config.gradient_accumulation_steps=1', '--trainer_config.mixed_precision=fp32',
    `--trainer_config.max_iters=${iters}`, '--trainer_config.eval_interval=2', '--trainer_config.lr_decay_iters=4', '--trainer_config.warmup_iters=1',
    '--threads=1', '--distributed.timeout_s=30',
  ];
}

before(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'nanogpt-snapshot-validation-'));
  data = writePatternCorpus({});
  run = path.join(tmp, 'run');
  const r = nanogptSync(trainArgs(run, 2));
  assert.equal(r.code, 0, r.stderr);
});

after(() => {
  for (const d of [tmp, data]) if (d) rmSync(d, { recursive: true, force: true });
});

let cases = 0;
/** A copy of the run whose snapshot has one metadata value (JSON) replaced. */
function runWith(key: string, edit: (value: Record<string, unknown>) => unknown): string {
  const out = path.join(tmp, `case-${++cases}`);
  cpSync(run, out, { recursive: true });
  editJsonMetadata(path.join(run, 'snapshot.pt'), path.join(out, 'snapshot.pt'), key, edit);
  return out;
}

/** Resuming from `out` is refused with `pattern`, and nothing in `out` changes. */
function assertResumeRefused(out: string, pattern: RegExp): void {
  const before = digestTree(out);
  assertUserError(nanogptSync(trainArgs(out, 4)), pattern);
  assert.deepEqual(digestTree(out), before, 'the run directory is unchanged');
}

/** A metadata value (JSON) of the good run's snapshot. */
function snapshotJson(key: string): Record<string, unknown> {
  const metadata = readRaw(path.join(run, 'snapshot.pt')).header.__metadata__ as Record<string, string>;
  return JSON.parse(metadata[key]!) as Record<string, unknown>;
}

test('the unedited snapshot resumes (the cases below differ from it only where they say)', () => {
  const out = runWith('train_state', (s) => s);
  const r = nanogptSync(trainArgs(out, 3));
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /resuming from snapshot/);
});

test('train_state fields that lie are named through the CLI, and the run is left alone', () => {
  assertResumeRefused(runWith('train_state', (s) => ({ ...s, iter: -1 })), /train_state\.iter is -1; expected a whole number from 0 to 1,000,000,000,000 \(the next iteration to run\)/);
  assertResumeRefused(runWith('train_state', (s) => ({ ...s, iter: '2' })), /train_state\.iter is the string "2"; expected a whole number/);
  // The right length, but a Mersenne Twister position libtorch rejects: used to be an internal error.
  const rng = (s: Record<string, unknown>): unknown => ({ ...s, rng: Buffer.alloc(Buffer.from(s.rng as string, 'base64').byteLength, 0xff).toString('base64') });
  assertResumeRefused(runWith('train_state', rng), /train_state\.rng is not a generator state libtorch accepts/);
});

test('rank_states that lie are named through the CLI', () => {
  assertResumeRefused(runWith('rank_states', () => 'not json {'), /metadata 'rank_states' is not valid JSON/);
  assertResumeRefused(runWith('rank_states', (r) => ({ ...r, sampler: [] })), /rank_states\.sampler is an array \[\]; expected an array of 1 entry, one per rank \(train_state\.worldSize is 1\)/);
});

test('every train_state and rank_states field is checked (in process)', () => {
  const good = snapshotJson('train_state');
  const source = 'snap.pt';
  assert.equal(parseTrainState(good, source).iter, 2);
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ iter: 1e300 }, /train_state\.iter is 1e\+300/],
    [{ iter: 2.5 }, /train_state\.iter is 2\.5/],
    [{ iter: null }, /train_state\.iter is null/],
    [{ optimizerStep: -3 }, /train_state\.optimizerStep is -3; expected a whole number/],
    [{ rng: 'garbage!' }, /train_state\.rng is the string "garbage!"; expected base64 of \d+ bytes \(libtorch's CPU generator state\)/],
    [{ optimizerStep: 3 }, /train_state\.optimizerStep is 3, more than train_state\.iter \(2\)/],
    [{ bestValLoss: 'low' }, /train_state\.bestValLoss is the string "low"; expected a loss \(a number >= 0\) or null/],
    [{ bestValLoss: -1 }, /train_state\.bestValLoss is -1/],
    [{ tokens: -5 }, /train_state\.tokens is -5/],
    [{ worldSize: 0 }, /train_state\.worldSize is 0; expected a whole number from 1 to 1,000,000/],
    [{ sampler: { train: [1, 2, 3], val: [1, 2, 3, 4] } }, /train_state\.sampler\.train is an array \[1,2,3\]; expected 4 whole numbers from 0 to 4294967295/],
    [{ sampler: { train: [1, 2, 3, 2 ** 32], val: [1, 2, 3, 4] } }, /train_state\.sampler\.train is an array/],
    [{ sampler: 'x' }, /train_state\.sampler is the string "x"; expected a JSON object/],
    [{ rng: 12 }, /train_state\.rng is 12; expected base64/],
  ];
  for (const [change, pattern] of bad) {
    assert.throws(() => parseTrainState({ ...good, ...change }, source), (e: unknown) => e instanceof UserError && pattern.test(e.message) && e.message.startsWith('snap.pt: '), JSON.stringify(change));
  }
  assert.throws(() => parseTrainState([1], source), /train_state is an array \[1\]; expected a JSON object/);
  assert.equal(parseTrainState({ ...good, bestValLoss: null }, source).bestValLoss, Infinity, 'null is "no best loss yet" (JSON has no Infinity)');
  // Checking an RNG state leaves the generator where it was.
  torch.manualSeed(3);
  const before = Buffer.from(torch.getRngState()).toString('base64');
  parseTrainState(good, source);
  assert.equal(Buffer.from(torch.getRngState()).toString('base64'), before);
  const r = snapshotJson('rank_states');
  assert.throws(() => parseRankStates(r, source, 2), /rank_states\.sampler is an array of 1 entr|rank_states\.sampler is an array \[/);
  assert.throws(() => parseRankStates({ ...r, rng: 'x' }, source, 1), /rank_states\.rng is the string "x"; expected an array of 1 entry/);
  assert.throws(() => parseRankStates({ ...r, rng: ['AAAA'] }, source, 1), /rank_states\.rng\[0\] decodes to 3 bytes; expected base64 of/);
  assert.throws(() => parseRankStates({ ...r, sampler: [{ train: [0, 0, 0, 0], val: [1, 2, 3, 4] }] }, source, 1), /rank_states\.sampler\[0\]\.train is all zeros/);
  assert.equal(parseRankStates(r, source, 1).sampler.length, 1);
});

test('in a 2-rank run, a snapshot rank 0 refuses stops rank 1 too, at once and with the reason', async () => {
  const out = runWith('train_state', (s) => ({ ...s, iter: -7 }));
  const before = digestTree(out);
  const port = await freePort();
  const results = await Promise.all(
    [0, 1].map((r) =>
      runNode([bin, ...trainArgs(out, 4)], { RANK: String(r), LOCAL_RANK: String(r), WORLD_SIZE: '2', LOCAL_WORLD_SIZE: '2', MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port), OMP_NUM_THREADS: '1' }, 60_000),
    ),
  );
  assertUserError(results[0]!, /train_state\.iter is -7/);
  assertUserError(results[1]!, /rank 0 could not set up the model: \S+snapshot\.pt: train_state\.iter is -7/);
  assert.deepEqual(digestTree(out), before);
});
