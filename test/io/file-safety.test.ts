import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readBoundedFile, readBoundedFileSync } from '../../src/io/bounded-read.js';
import { createExclusive, openForWrite, openForWriteSync } from '../../src/io/no-follow.js';
import { writeBufferAtomic } from '../../src/io/atomic.js';
import { MetricsLog } from '../../src/train/metrics.js';
import { readHostsFile } from '../../src/distributed/hosts.js';
import { loadConfig } from '../../src/train/config.js';
import { UserError } from '../../src/util/errors.js';

let dir = '';
let victim = '';
let fifo = '';

before(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'nanogpt-files-'));
  victim = path.join(dir, 'victim.txt');
  writeFileSync(victim, 'precious');
  fifo = path.join(dir, 'fifo');
  const r = spawnSync('mkfifo', [fifo]);
  assert.equal(r.status, 0, `mkfifo: ${r.stderr}`);
});
after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const userError = (pattern: RegExp) => (err: unknown) => err instanceof UserError && pattern.test(err.message);

function assertVictimUntouched(): void {
  assert.ok(lstatSync(victim).isFile());
  assert.equal(readFileSync(victim, 'utf8'), 'precious');
}

test('run files are not opened through a symbolic link, nor when they are FIFOs', async () => {
  const out = path.join(dir, 'run');
  mkdirSync(out);
  const link = path.join(out, 'metrics.jsonl');
  symlinkSync(victim, link);
  // A fresh run truncated the link's target before; appending wrote into it.
  assert.throws(() => new MetricsLog(out, true), userError(new RegExp(`metrics file ${link.replace(/[.]/g, '\\.')} is a symbolic link.*\\n  fix: remove the link`, 's')));
  assert.throws(() => new MetricsLog(out, false).write({ type: 'train' }), userError(/is a symbolic link/));
  assert.throws(() => openForWriteSync(link, 'truncate', 'x'), userError(/symbolic link/));
  await assert.rejects(openForWrite(link, 'update', 'partial download'), userError(/partial download .* is a symbolic link/));
  assertVictimUntouched();
  // A FIFO: refused at once rather than blocking until a reader comes.
  assert.throws(() => openForWriteSync(fifo, 'append', 'metrics file'), userError(/metrics file .*fifo is a FIFO, not a regular file/));
  // An ordinary file works as before.
  rmSync(link);
  const log = new MetricsLog(out, true);
  log.write({ type: 'train', iter: 1 });
  log.write({ type: 'train', iter: 2 });
  assert.equal(readFileSync(link, 'utf8').trim().split('\n').length, 2);
});

test('temp files are created exclusively: a link planted at the temp name is refused', async () => {
  const tmp = path.join(dir, '.planted.tmp');
  symlinkSync(victim, tmp);
  await assert.rejects(createExclusive(tmp, 'temp file'), userError(/temp file .* already exists/));
  assertVictimUntouched();
  rmSync(tmp);
  // writeBufferAtomic goes through it: the final name, even a link, is replaced by rename, never written through.
  const target = path.join(dir, 'report.html');
  symlinkSync(victim, target);
  await writeBufferAtomic(target, 'new content');
  assert.ok(!lstatSync(target).isSymbolicLink());
  assert.equal(readFileSync(target, 'utf8'), 'new content');
  assertVictimUntouched();
  assert.deepEqual(readdirSync(dir).filter((n) => n.endsWith('.tmp')), []);
});

test('readBoundedFile: regular files up to the limit; devices, FIFOs, directories and larger files are refused', async () => {
  const small = path.join(dir, 'small.txt');
  writeFileSync(small, 'hello');
  assert.equal(readBoundedFileSync(small, 5, 'x').toString(), 'hello');
  assert.equal((await readBoundedFile(small, 5, 'x')).toString(), 'hello');
  assert.throws(() => readBoundedFileSync(small, 4, '--prompt_file'), userError(/--prompt_file .*small\.txt is 5 bytes, over the limit of 4 bytes/));
  // /proc files report size 0: the limit still holds while reading.
  assert.ok(readBoundedFileSync('/proc/self/status', 1 << 20, 'x').toString().includes('Pid:'));
  assert.throws(() => readBoundedFileSync('/proc/self/status', 16, 'x'), userError(/is more than 16 bytes, over the limit/));
  const t0 = Date.now();
  assert.throws(() => readBoundedFileSync('/dev/zero', 1 << 20, '--prompt_file'), userError(/--prompt_file \/dev\/zero is a character device, not a regular file/));
  assert.throws(() => readBoundedFileSync(fifo, 1 << 20, 'hosts file'), userError(/hosts file .*fifo is a FIFO \(named pipe\), not a regular file/));
  await assert.rejects(readBoundedFile(fifo, 1 << 20, 'metrics file'), userError(/is a FIFO/));
  assert.throws(() => readBoundedFileSync(dir, 1 << 20, 'config file'), userError(/is a directory, not a regular file/));
  assert.ok(Date.now() - t0 < 5000, 'nothing blocks');
  // Errors of the open itself are left to the caller.
  assert.throws(() => readBoundedFileSync(path.join(dir, 'missing'), 10, 'x'), (err: unknown) => (err as NodeJS.ErrnoException).code === 'ENOENT');
});

test('configs and hosts files are bounded: a huge or special file is a UserError naming it, size and limit', () => {
  const big = path.join(dir, 'big.yaml');
  writeFileSync(big, '');
  truncateSync(big, 5 * 2 ** 20); // sparse: nothing is read
  assert.throws(() => loadConfig({ file: big }), userError(/config file .*big\.yaml is 5\.0 MiB, over the limit of 4\.0 MiB/));
  assert.throws(() => loadConfig({ file: fifo }), userError(/config file .*fifo is a FIFO/));
  assert.throws(() => loadConfig({ file: '/dev/zero' }), userError(/config file \/dev\/zero is a character device/));
  assert.throws(() => readHostsFile(fifo), userError(/hosts file .*fifo is a FIFO/));
  assert.throws(() => loadConfig({ file: path.join(dir, 'missing.yaml') }), userError(/cannot read config file .*missing\.yaml: ENOENT/));
});
