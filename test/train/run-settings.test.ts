// The trainer does what the user meant: resume keeps the model's settings or says why not (exit 2 naming each),
// lists the settings that changed; --fresh moves the old run aside; init_from=resume needs a snapshot; eval_only
// leaves the run as it was; a run always ends with a usable model.
import { after, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writePatternCorpus } from '../helpers/corpus.js';
import { assertUserError, digestTree, nanogpt, startNanogpt, tinyTrainArgs } from '../helpers/nanogpt-cli.js';
import { checkResume, describeChanges } from '../../src/train/resume-check.js';
import { loadConfig } from '../../src/train/config.js';

const root = mkdtempSync(path.join(os.tmpdir(), 'nanogpt-resume-'));
const data = writePatternCorpus({ trainTokens: 4000, valTokens: 1000 });
after(() => {
  rmSync(root, { recursive: true, force: true });
  rmSync(data, { recursive: true, force: true });
});

async function trained(name: string): Promise<string> {
  const out = path.join(root, name);
  const r = await nanogpt(tinyTrainArgs(data, out));
  assert.equal(r.code, 0, r.stderr);
  assert.ok(existsSync(path.join(out, 'snapshot.pt')));
  return out;
}

test('a resumed run may not change the model shape or block_size: exit 2 naming each key, old and new, and the fix', async () => {
  const out = await trained('shape');
  const before = digestTree(out);
  const r = await nanogpt(tinyTrainArgs(data, out, ['--model.n_embd=64', '--block_size=8']));
  assertUserError(r, /model\.n_embd: 32 in the snapshot, 64 now/);
  assert.match(r.stderr, /block_size: 16 in the snapshot, 8 now/);
  assert.match(r.stderr, /--fresh/);
  assert.match(r.stderr, /--model\.n_embd=32 --block_size=16|--block_size=16 --model\.n_embd=32/);
  assert.deepEqual(digestTree(out), before, 'the refused run left the directory as it was');
});

test('settings that may change are listed when the run resumes', async () => {
  const out = await trained('changes');
  const r = await nanogpt(tinyTrainArgs(data, out, ['--trainer_config.max_iters=3', '--trainer_config.lr_decay_iters=3']));
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /resuming from snapshot/);
  assert.match(r.stderr, /resuming with changed settings: trainer_config\.max_iters 2 → 3, trainer_config\.lr_decay_iters 2 → 3/);
  // Where it resumed, and every step line with its place in the run (the last one says done).
  assert.match(r.stderr, /resuming from snapshot \S+ at iteration 2\/3 \(66%, [\d.]+k? tokens seen\)/);
  assert.match(r.stderr, /^iter 3\/3 \(100%, done\): loss /m);
  // The same command again: nothing changed, no such line.
  const again = await nanogpt(tinyTrainArgs(data, out, ['--trainer_config.max_iters=3', '--trainer_config.lr_decay_iters=3']));
  assert.equal(again.code, 0, again.stderr);
  assert.doesNotMatch(again.stderr, /changed settings/);
});

test('--fresh moves the previous run aside (never deletes it) and starts a new model', async () => {
  const out = await trained('fresh');
  const old = digestTree(out);
  const r = await nanogpt(tinyTrainArgs(data, out, ['--fresh', '--model.n_embd=64']));
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /--fresh: moved the previous run's snapshot\.pt, ckpt\.pt, metrics\.jsonl, report\.html, loss\.png, tensorboard to /);
  assert.match(r.stderr, /64 dims/);
  assert.doesNotMatch(r.stderr, /resuming/);
  const aside = readdirSync(out).filter((f) => f.startsWith('previous-'));
  assert.equal(aside.length, 1);
  const moved = digestTree(path.join(out, aside[0]!));
  for (const f of ['snapshot.pt', 'ckpt.pt', 'metrics.jsonl']) assert.equal(moved[f], old[f], `${f} kept byte for byte`);
  // --fresh in an empty directory just starts.
  const empty = await nanogpt(tinyTrainArgs(data, path.join(root, 'fresh-empty'), ['--fresh']));
  assert.equal(empty.code, 0, empty.stderr);
  assert.match(empty.stderr, /--fresh: no previous run here/);
});

test('init_from=resume resumes, or exits 2 naming the missing snapshot; with --fresh it is a contradiction', async () => {
  const missing = path.join(root, 'nothing');
  assertUserError(await nanogpt(tinyTrainArgs(data, missing, ['--init_from=resume'])), new RegExp(`init_from is resume, but there is no snapshot at ${missing}/snapshot\\.pt`));
  assert.ok(!existsSync(path.join(missing, 'snapshot.pt')));
  const out = await trained('resume');
  const r = await nanogpt(tinyTrainArgs(data, out, ['--init_from=resume', '--trainer_config.max_iters=3', '--trainer_config.lr_decay_iters=3']));
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /resuming from snapshot/);
  assert.doesNotMatch(r.stderr, /init_from scratch → resume/);
  assertUserError(await nanogpt(tinyTrainArgs(data, out, ['--init_from=resume', '--fresh'])), /contradict/);
});

test('checkResume: from a pretrained start model.* never applied; out_dir and threads are not settings of the run', () => {
  const base = loadConfig({ overrides: { init_from: 'gpt2', out_dir: 'a', threads: '1' } });
  const now = loadConfig({ overrides: { init_from: 'gpt2', out_dir: 'b', threads: '2', 'model.n_embd': '64', 'trainer_config.max_iters': '20' } });
  const changes = checkResume(JSON.parse(JSON.stringify(base)), now, 'x/snapshot.pt');
  assert.equal(describeChanges(changes), 'resuming with changed settings: trainer_config.max_iters 10 → 20, trainer_config.lr_decay_iters 10 → 20, model.n_embd 0 → 64');
  assert.deepEqual(checkResume(undefined, now, 'x'), [], 'a snapshot without a recorded config resumes as before');
  assert.throws(() => checkResume(JSON.parse(JSON.stringify(base)), loadConfig({ overrides: { init_from: 'scratch' } }), 'x/snapshot.pt'), /init_from: gpt2 in the snapshot, scratch now/);
});

test('eval_only evaluates the snapshot and writes nothing: no step, no snapshot, no metrics line, no report', async () => {
  const out = await trained('eval-only');
  const before = digestTree(out);
  const r = await nanogpt(tinyTrainArgs(data, out, ['--trainer_config.eval_only=true']));
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /resuming from snapshot/);
  assert.match(r.stderr, /step 2: train loss \d+\.\d+, val loss \d+\.\d+/);
  assert.match(r.stderr, /eval_only: evaluated the snapshot at iteration 2 .*nothing was written/);
  assert.doesNotMatch(r.stderr, /^iter \d+\/\d+ /m, 'no optimizer step');
  assert.doesNotMatch(r.stderr, /saved|Training completed/);
  assert.deepEqual(digestTree(out), before);
  // Without a snapshot: the initial model, and still nothing in out_dir but what was there.
  const empty = path.join(root, 'eval-only-empty');
  const e = await nanogpt(tinyTrainArgs(data, empty, ['--trainer_config.eval_only=true']));
  assert.equal(e.code, 0, e.stderr);
  assert.match(e.stderr, /step 0: train loss .*\n[^]*eval_only: evaluated the initial model/);
  assert.deepEqual(Object.keys(digestTree(empty)), []);
});

test('a run always leaves a usable model: the step-0 evaluation counts as the first best', async () => {
  const out = path.join(root, 'no-improvement');
  // Learning rate 0: the weights never move, so validation cannot truly improve on step 0.
  const r = await nanogpt(tinyTrainArgs(data, out, ['--trainer_config.max_lr=0', '--trainer_config.min_lr=0', '--trainer_config.eval_interval=2']));
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /saved best model \(val loss \d+\.\d+, the starting weights\)/);
  assert.ok(existsSync(path.join(out, 'ckpt.pt')));
  const saves = r.stderr.match(/saved best model/g)!.length;
  if (saves === 1) assert.match(r.stderr, /validation loss never improved on step 0's \d+\.\d+: .*ckpt\.pt holds the starting weights/);
});

test('a second Ctrl-C quits at once and says which snapshot the same command resumes from', async () => {
  const out = await trained('double-ctrl-c');
  // Long evaluations (every step, 400 batches per split): both signals land inside one, 300 ms apart (two signals
  // sent back to back would merge into one in the kernel).
  const run = startNanogpt(tinyTrainArgs(data, out, ['--trainer_config.max_iters=100000', '--trainer_config.lr_decay_iters=100000', '--trainer_config.eval_iters=400']));
  const deadline = Date.now() + 60_000;
  while (!/^iter \d+\//m.test(run.output()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  run.child.kill('SIGINT');
  await new Promise((r) => setTimeout(r, 300));
  run.child.kill('SIGINT');
  const code = await run.exited;
  assert.equal(code, 130, run.output());
  assert.match(run.output(), new RegExp(`SIGINT again: quitting now without a new snapshot; the same command resumes from the last snapshot, ${out}/snapshot\\.pt \\(written (less than a minute|\\d+ minutes?) ago\\)`));
});
