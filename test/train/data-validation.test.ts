// Bad token files reach the user as exit 2 with the file, offset and id named — never as an internal error from
// the embedding ("index out of range in self"), and never as a hang (a FIFO named train.bin).
import { after, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BatchLoader, TokenFile } from '../../src/train/data.js';
import { isUserError } from '../../src/util/errors.js';
import { assertUserError, nanogpt, tinyTrainArgs } from '../helpers/nanogpt-cli.js';

const root = mkdtempSync(path.join(os.tmpdir(), 'nanogpt-data-validation-'));
after(() => rmSync(root, { recursive: true, force: true }));

let dirs = 0;
/** A data_dir whose train.bin / val.bin are `train` / `val`: token arrays, raw bytes, or left for the caller (null). */
function dataDir(train: Uint16Array | Buffer | null, val: Uint16Array | Buffer | null = tokens(400)): string {
  const dir = path.join(root, `d${dirs++}`);
  mkdirSync(dir);
  if (train) writeFileSync(path.join(dir, 'train.bin'), train);
  if (val) writeFileSync(path.join(dir, 'val.bin'), val);
  return dir;
}

function tokens(n: number, bad?: { at: number; id: number }): Uint16Array {
  const t = new Uint16Array(n).map((_, i) => (i * 7) % 64);
  if (bad) t[bad.at] = bad.id;
  return t;
}

const out = (): string => path.join(root, `out${dirs++}`);

test('an id outside the vocabulary (65535) exits 2 naming the file, token index, byte offset, id and vocab_size', async () => {
  // Far from the start and rare: the start-up scan finds it before any batch could draw it.
  const dir = dataDir(tokens(20_000, { at: 12_345, id: 65535 }));
  // A cache write killed earlier left its temp file (tempPathFor of the hidden sidecar; its writer is gone).
  const deadPid = Number(execFileSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }));
  writeFileSync(path.join(dir, `..train.bin.tokens.json.${deadPid}.0badf00d.tmp`), '{');
  const r = await nanogpt(tinyTrainArgs(dir, out()));
  assertUserError(r, /train\.bin: token id 65535 at token index 12345 \(byte offset 24690\) is outside the model's vocabulary \(vocab_size 64, ids 0\.\.63\)/);
  assert.match(r.stderr, /fix: .*nanogpt prepare/);
  // The scan's result is cached beside the file, keyed by its size and mtime; the cached verdict still names the offset.
  assert.ok(readdirSync(dir).includes('.train.bin.tokens.json'));
  assert.deepEqual(readdirSync(dir).filter((f) => f.endsWith('.tmp')), []);
  const again = await nanogpt(tinyTrainArgs(dir, out()));
  assertUserError(again, /token id 65535 at token index 12345 \(byte offset 24690\)/);
  // Fixed in place with the same size: the changed mtime invalidates the cache and the run trains.
  writeFileSync(path.join(dir, 'train.bin'), tokens(20_000));
  const fixed = await nanogpt(tinyTrainArgs(dir, out()));
  assert.equal(fixed.code, 0, fixed.stderr);
});

test('an id just past a small vocabulary (64 with vocab_size 64) in val.bin is caught too', async () => {
  const r = await nanogpt(tinyTrainArgs(dataDir(tokens(400), tokens(400, { at: 3, id: 64 })), out()));
  assertUserError(r, /val\.bin: token id 64 at token index 3 \(byte offset 6\) is outside the model's vocabulary \(vocab_size 64/);
});

test('an odd byte length, a file shorter than a window, and an empty file exit 2 with what is wrong', async () => {
  const odd = await nanogpt(tinyTrainArgs(dataDir(Buffer.alloc(801)), out()));
  assertUserError(odd, /train\.bin has an odd size \(801 bytes\), so it is not a uint16 token file/);
  const short = await nanogpt(tinyTrainArgs(dataDir(tokens(400), tokens(10)), out()));
  assertUserError(short, /val\.bin holds 10 tokens, fewer than block_size \+ 2 = 18/);
  const empty = await nanogpt(tinyTrainArgs(dataDir(Buffer.alloc(0)), out()));
  assertUserError(empty, /train\.bin holds 0 tokens/);
});

test('train.bin as a directory, a FIFO, a /dev/zero symlink or a character device: exit 2 at once, no hang', async () => {
  const asDir = dataDir(null);
  mkdirSync(path.join(asDir, 'train.bin'));
  const fifo = dataDir(null);
  execFileSync('mkfifo', [path.join(fifo, 'train.bin')]);
  const zero = dataDir(null);
  symlinkSync('/dev/zero', path.join(zero, 'train.bin'));
  const devNull = dataDir(tokens(400), null);
  symlinkSync('/dev/null', path.join(devNull, 'val.bin'));
  const cases: [string, RegExp][] = [
    [asDir, /train\.bin is a directory, not a token file/],
    [fifo, /train\.bin is a FIFO \(named pipe\), not a token file/],
    [zero, /train\.bin is a character device, not a token file/],
    [devNull, /val\.bin is a character device, not a token file/],
  ];
  const results = await Promise.all(cases.map(([dir]) => nanogpt(tinyTrainArgs(dir, out()), { timeoutMs: 60_000 })));
  results.forEach((r, i) => {
    assert.notEqual(r.signal, 'SIGKILL', `${cases[i]![0]}: killed at the timeout (hung)`);
    assertUserError(r, cases[i]![1]);
    assert.match(r.stderr, /fix: point data_dir at a directory holding regular train\.bin and val\.bin/);
  });
});

test('a train.bin truncated while training is a UserError naming the file, not an internal error', () => {
  const dir = dataDir(tokens(400));
  const loader = new BatchLoader(dir, 16, 4, 1, 'cpu', 64);
  try {
    loader.next('train').x.dispose();
    truncateSync(path.join(dir, 'train.bin'), 20);
    assert.throws(
      () => {
        for (let i = 0; i < 50; i++) loader.next('train');
      },
      (err: Error) => isUserError(err) && /train\.bin ended at byte \d+ \(token \d+\), but held 400 tokens when training started: it was truncated or rewritten/.test(err.message),
    );
  } finally {
    loader.close();
  }
});

test('each batch is checked too, so a file changed after the start-up scan cannot reach the embedding', () => {
  const file = path.join(dataDir(tokens(100, { at: 50, id: 1000 })), 'train.bin');
  const f = new TokenFile(file, 64); // no scan: only the reads check
  try {
    f.read(0, new Uint16Array(17)); // tokens 0..16 are fine
    assert.throws(
      () => f.read(40, new Uint16Array(17)),
      (err: Error) => isUserError(err) && /train\.bin: token id 1000 at token index 50 \(byte offset 100\) is outside/.test(err.message),
    );
  } finally {
    f.close();
  }
});

test('a cache that lies (hand-edited to a bad max) is rescanned and corrected, not trusted into an error', async () => {
  const dir = dataDir(tokens(400));
  const file = path.join(dir, 'train.bin');
  const sidecar = path.join(dir, '.train.bin.tokens.json');
  const f = new TokenFile(file, 64);
  try {
    await f.checkIds();
    const record = JSON.parse(readFileSync(sidecar, 'utf8'));
    assert.equal(record.maxToken, 63);
    writeFileSync(sidecar, JSON.stringify({ ...record, maxToken: 65535 }));
    await f.checkIds();
    assert.equal(JSON.parse(readFileSync(sidecar, 'utf8')).maxToken, 63);
  } finally {
    f.close();
  }
});

test('scanning 100 MB for out-of-vocabulary ids takes well under a few seconds', async () => {
  // The figure behind the start-up scan: ~0.2 s per 100 MB from the page cache on the 2-core test VM.
  const dir = dataDir(null, null);
  const file = path.join(dir, 'train.bin');
  writeFileSync(file, new Uint16Array(50_000_000).fill(50_000));
  const f = new TokenFile(file, 50_257);
  try {
    const t0 = performance.now();
    const { maxToken, badIndex } = await f.scan(50_257);
    const ms = performance.now() - t0;
    assert.equal(maxToken, 50_000);
    assert.equal(badIndex, -1);
    process.stderr.write(`# scanned 100 MB in ${ms.toFixed(0)} ms\n`);
    assert.ok(ms < 5_000, `scan took ${ms} ms`);
  } finally {
    f.close();
    rmSync(file);
  }
});
