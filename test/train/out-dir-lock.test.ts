// One writer per output directory: a second `train` (or `prepare`) in a directory in use exits 2 naming the
// holder; a lock left by a killed run is taken over; temp files a killed run left are removed, and only ours.
import { after, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writePatternCorpus } from '../helpers/corpus.js';
import { assertUserError, nanogpt, startNanogpt, tinyTrainArgs, waitForFile, waitForFirstLine } from '../helpers/nanogpt-cli.js';

/** The lock's name is part of what users see (messages tell them to remove it), so it is spelled out here. */
const LOCK_FILE = '.nanogpt.lock';
const root = mkdtempSync(path.join(os.tmpdir(), 'nanogpt-lock-'));
const data = writePatternCorpus({ trainTokens: 4000, valTokens: 1000 });
after(() => {
  rmSync(root, { recursive: true, force: true });
  rmSync(data, { recursive: true, force: true });
});

let n = 0;
const freshDir = (): string => path.join(root, `out${n++}`);

/** A pid that surely names no running process: a child that has already exited. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(r.stdout);
}

function writeLock(dir: string, owner: Record<string, unknown>): string {
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, LOCK_FILE);
  writeFileSync(file, JSON.stringify({ started: '2020-01-01T00:00:00.000Z', command: 'nanogpt train', token: 'feedfacefeedface', ...owner }));
  return file;
}

test('a second run in an out_dir in use exits 2 naming the holder; the first finishes; the lock is released', async () => {
  const out = freshDir();
  const first = startNanogpt(tinyTrainArgs(data, out, ['--trainer_config.max_iters=100000', '--trainer_config.lr_decay_iters=100000', '--trainer_config.eval_interval=1000']));
  try {
    // Its start record, whole: the file exists a moment before its first line is written.
    const before = await waitForFirstLine(path.join(out, 'metrics.jsonl'));
    const second = await nanogpt(tinyTrainArgs(data, out), { timeoutMs: 60_000 });
    assertUserError(second, new RegExp(`${out.replace(/[/.]/g, '\\$&')} is in use by nanogpt train \\(pid ${first.child.pid} on ${os.hostname()}, started `));
    assert.match(second.stderr, new RegExp(`fix: wait for it to finish, stop it \\(kill ${first.child.pid}\\)`));
    // The second run wrote nothing: the first run's metrics still start with its own start record.
    assert.equal(readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').split('\n')[0], before);
  } finally {
    first.child.kill('SIGTERM'); // graceful: finishes the step, writes a snapshot, releases the lock
  }
  const code = await first.exited;
  assert.equal(code, 130, first.output());
  assert.ok(!existsSync(path.join(out, LOCK_FILE)), 'lock released on SIGTERM');
  // And the next run takes the directory (resuming the snapshot).
  const next = await nanogpt(tinyTrainArgs(data, out), { timeoutMs: 60_000 });
  assert.equal(next.code, 0, next.stderr);
  assert.ok(!existsSync(path.join(out, LOCK_FILE)), 'lock released at the end');
});

test('a lock left by a SIGKILLed run on this host is taken over with a note', async () => {
  const out = freshDir();
  const victim = startNanogpt(tinyTrainArgs(data, out, ['--trainer_config.max_iters=100000', '--trainer_config.lr_decay_iters=100000']));
  await waitForFile(path.join(out, 'metrics.jsonl'));
  victim.child.kill('SIGKILL');
  await victim.exited;
  assert.ok(existsSync(path.join(out, LOCK_FILE)), 'SIGKILL leaves the lock behind');
  const r = await nanogpt(tinyTrainArgs(data, out), { timeoutMs: 60_000 });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, new RegExp(`removing a stale lock .*${LOCK_FILE.replace('.', '\\.')} \\(nanogpt train, pid ${victim.child.pid}, .*is no longer running\\)`));
  assert.ok(!existsSync(path.join(out, LOCK_FILE)));
});

test('a lock naming a live pid of this host that a reboot or pid reuse made stale is taken over too', async () => {
  const out = freshDir();
  // pid 1 runs, but not since this lock's boot: the boot id differs.
  writeLock(out, { pid: 1, host: os.hostname(), boot: 'another-boot' });
  const r = await nanogpt(tinyTrainArgs(data, out), { timeoutMs: 60_000 });
  if (!existsSync('/proc/sys/kernel/random/boot_id')) {
    assertUserError(r, /is in use by nanogpt train \(pid 1 /); // without /proc, a live pid is taken at its word
    return;
  }
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /removing a stale lock/);
});

test("another host's lock: exit 2 saying it cannot be checked from here, and how to remove it", async () => {
  const out = freshDir();
  const lock = writeLock(out, { pid: deadPid(), host: 'gpu-node-7' });
  const r = await nanogpt(tinyTrainArgs(data, out), { timeoutMs: 60_000 });
  assertUserError(r, /is in use by nanogpt train \(pid \d+ on gpu-node-7, started 2020-01-01T00:00:00\.000Z\); that is another host, so nanogpt cannot tell from here whether it still runs/);
  assert.match(r.stderr, new RegExp(`fix: if that run is over \\(check on gpu-node-7: ps -p \\d+\\), delete the lock \\(rm ${lock.replace(/[/.]/g, '\\$&')}\\)`));
  assert.ok(existsSync(lock), 'a foreign lock is left alone');
  assert.ok(!existsSync(path.join(out, 'metrics.jsonl')));
});

test('a lock file that is not ours (garbage, or a directory) is not broken: exit 2 saying how to remove it', async () => {
  const out = freshDir();
  mkdirSync(out);
  writeFileSync(path.join(out, LOCK_FILE), 'not json');
  assertUserError(await nanogpt(tinyTrainArgs(data, out), { timeoutMs: 60_000 }), /is locked by .*\.nanogpt\.lock, which does not name its holder[\s\S]*fix: if no nanogpt command is using .*, delete it \(rm -r /);
  const out2 = freshDir();
  mkdirSync(path.join(out2, LOCK_FILE), { recursive: true });
  assertUserError(await nanogpt(tinyTrainArgs(data, out2), { timeoutMs: 60_000 }), /which does not name its holder/);
});

test('the lock is released when the run fails (exit 2 on bad data), so the next run is not blocked', async () => {
  const bad = mkdtempSync(path.join(root, 'bad-data-'));
  writeFileSync(path.join(bad, 'train.bin'), new Uint16Array(400).fill(9999));
  writeFileSync(path.join(bad, 'val.bin'), new Uint16Array(400));
  const out = freshDir();
  assertUserError(await nanogpt(tinyTrainArgs(bad, out), { timeoutMs: 60_000 }), /token id 9999/);
  assert.ok(!existsSync(path.join(out, LOCK_FILE)));
});

test('temp files a killed run left in out_dir are removed at the next start; other files are not', async () => {
  const out = freshDir();
  mkdirSync(out);
  const old = new Date(Date.now() - 3600_000);
  const ours = [`.snapshot.pt.${deadPid()}.0badf00d.tmp`, `.ckpt.pt.${process.pid}.deadbeef.tmp`, `.report.html.${deadPid()}.01234567.tmp`];
  const others = ['.notes.txt.123.0badf00d.tmp', 'other.tmp', '.snapshot.pt.tmp', '.snapshot.pt.12.zzzzzzzz.tmp', 'snapshot.pt.5.0badf00d.tmp'];
  for (const f of [...ours, ...others]) {
    writeFileSync(path.join(out, f), 'x'.repeat(1000));
    utimesSync(path.join(out, f), old, old);
  }
  const r = await nanogpt(tinyTrainArgs(data, out), { timeoutMs: 60_000 });
  assert.equal(r.code, 0, r.stderr);
  const left = readdirSync(out);
  for (const f of ours) {
    assert.ok(!left.includes(f), `${f} should be removed`);
    assert.match(r.stderr, new RegExp(`removed .*${f.replace(/\./g, '\\.')}, left by an interrupted run`));
  }
  for (const f of others) assert.ok(left.includes(f), `${f} must be kept`);
});

test('prepare: a second prepare into a directory in use exits 2; leftovers of a killed prepare are removed', async () => {
  const out = freshDir();
  const live = spawn('sleep', ['30'], { stdio: 'ignore' });
  const gone = new Promise((r) => live.on('exit', r));
  const livePid = live.pid!;
  try {
    writeLock(out, { pid: livePid, host: os.hostname(), command: 'nanogpt prepare' });
    const busy = await nanogpt(['prepare', '--out_dir', out, '--workers', '1', '--quiet'], { timeoutMs: 60_000 });
    assertUserError(busy, new RegExp(`is in use by nanogpt prepare \\(pid ${livePid} on `));
    assert.deepEqual(readdirSync(out), [LOCK_FILE]);
  } finally {
    live.kill('SIGKILL');
  }
  // That holder is gone now: its lock is stale, and the empty temp files a SIGKILL left go with it.
  await gone;
  const old = new Date(Date.now() - 60_000);
  for (const f of [`.train.bin.${livePid}.00000000.tmp`, `.val.bin.${livePid}.00000001.tmp`, `.meta.json.${livePid}.00000002.tmp`]) {
    writeFileSync(path.join(out, f), '');
    utimesSync(path.join(out, f), old, old);
  }
  const corpus = path.join(root, 'docs.jsonl');
  writeFileSync(corpus, Array.from({ length: 40 }, (_, i) => JSON.stringify({ text: `document ${i}: ${'some words here '.repeat(20)}` })).join('\n'));
  const r = await nanogpt(['prepare', corpus, '--out_dir', out, '--workers', '1'], { timeoutMs: 60_000 });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /removing a stale lock/);
  assert.match(r.stderr, /removed .*\.train\.bin\.\d+\.00000000\.tmp, left by an interrupted prepare/);
  assert.deepEqual(readdirSync(out).sort(), ['meta.json', 'train.bin', 'val.bin']);
});
