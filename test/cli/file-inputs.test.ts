import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runNode, type ChildResult } from '../helpers/children.js';
import { writePatternCorpus } from '../helpers/corpus.js';

// Inputs read whole and run files written in place, through the CLI: special files and oversized inputs are
// refused with exit 2 (`--prompt_file /dev/zero` used to read until std::bad_alloc aborted the process at 16.8 GB),
// and a symbolic link planted at out_dir/metrics.jsonl no longer makes training truncate the file it points to.

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const bin = path.join(root, 'bin', 'nanogpt');
let dir = '';
let fifo = '';
let data = '';

before(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'nanogpt-inputs-'));
  fifo = path.join(dir, 'fifo');
  assert.equal(spawnSync('mkfifo', [fifo]).status, 0);
  data = writePatternCorpus();
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
  rmSync(data, { recursive: true, force: true });
});

const nanogpt = (args: string[]): Promise<ChildResult> => runNode([bin, ...args], { OMP_NUM_THREADS: '1' }, 60_000, dir);

function assertUserError(r: ChildResult, expected: string): void {
  assert.equal(r.code, 2, `exit code ${r.code} (signal ${r.signal}); stderr: ${r.stderr}`);
  assert.ok(r.stderr.includes(expected), r.stderr);
  assert.doesNotMatch(r.stderr, /internal error|\n\s+at /);
}

test('sample --prompt_file: /dev/zero, a FIFO and an oversized file are refused at once', async () => {
  assertUserError(await nanogpt(['sample', '--prompt_file', '/dev/zero']), 'error: --prompt_file /dev/zero is a character device, not a regular file');
  const r = await nanogpt(['sample', '--prompt_file', fifo]);
  assertUserError(r, `error: --prompt_file ${fifo} is a FIFO (named pipe), not a regular file`);
  assert.ok(r.ms < 30_000);
  const big = path.join(dir, 'prompt.txt');
  writeFileSync(big, '');
  truncateSync(big, 17 * 2 ** 20);
  assertUserError(await nanogpt(['sample', '--prompt_file', big]), `error: --prompt_file ${big} is 17.0 MiB, over the limit of 16.0 MiB`);
});

test('train: a config file too large, and a symbolic link at out_dir/metrics.jsonl, exit 2', async () => {
  const big = path.join(dir, 'big.yaml');
  writeFileSync(big, '');
  truncateSync(big, 5 * 2 ** 20);
  assertUserError(await nanogpt(['train', '--config', big]), `error: config file ${big} is 5.0 MiB, over the limit of 4.0 MiB`);

  const victim = path.join(dir, 'victim.txt');
  writeFileSync(victim, 'precious');
  const out = path.join(dir, 'run');
  mkdirSync(out);
  const link = path.join(out, 'metrics.jsonl');
  symlinkSync(victim, link);
  const r = await nanogpt([
    'train', `--data_dir=${data}`, `--out_dir=${out}`, '--block_size=16', '--model.preset=gpt2-tiny', '--model.n_embd=32', '--model.vocab_size=64',
    '--trainer_config.batch_size=2', '--trainer_config.max_iters=2', '--trainer_config.eval_interval=1', '--trainer_config.eval_iters=1',
    '--trainer_config.mixed_precision=fp32', '--threads=1',
  ]);
  assertUserError(r, `error: metrics file ${link} is a symbolic link; nanogpt does not write through links`);
  assert.ok(r.stderr.includes(`fix: remove the link (rm ${link}) or use another output folder`), r.stderr);
  assert.equal(readFileSync(victim, 'utf8'), 'precious');
  assert.ok(lstatSync(link).isSymbolicLink());
});

test('report: a FIFO as metrics.jsonl is refused, not waited on', async () => {
  const out = path.join(dir, 'fifo-run');
  mkdirSync(out);
  assert.equal(spawnSync('mkfifo', [path.join(out, 'metrics.jsonl')]).status, 0);
  assertUserError(await nanogpt(['report', out]), `error: metrics file ${path.join(out, 'metrics.jsonl')} is a FIFO (named pipe), not a regular file`);
});

test('a FIFO where a checkpoint or a token file should be is refused, not opened and waited on', async () => {
  assertUserError(await nanogpt(['sample', '--ckpt_path', fifo]), `error: ${fifo} is a FIFO (named pipe), not a checkpoint file`);
  const fifoData = path.join(dir, 'fifo-data');
  mkdirSync(fifoData);
  assert.equal(spawnSync('mkfifo', [path.join(fifoData, 'train.bin'), path.join(fifoData, 'val.bin')]).status, 0);
  const r = await nanogpt(['train', `--data_dir=${fifoData}`, `--out_dir=${path.join(dir, 'fifo-out')}`, '--model.preset=gpt2-tiny', '--block_size=16', '--threads=1']);
  assertUserError(r, `error: ${path.join(fifoData, 'train.bin')} is a FIFO (named pipe), not a token file`);
});
