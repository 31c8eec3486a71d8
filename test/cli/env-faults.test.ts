// Faults of the environment are the user's to fix, not bugs: a full disk, a read-only mount, a permission, a path
// in the way, a port someone holds, a bucket name that is not one. Each exits 2 with a message and a fix, and
// leaves what was there before untouched and no temp files behind.
import { after, before, test, type TestContext } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { runNode } from '../helpers/children.js';
import { writePatternCorpus } from '../helpers/corpus.js';
import { assertUserError, bin, childEnv, nanogpt, tinyTrainArgs } from '../helpers/nanogpt-cli.js';

const root = mkdtempSync(path.join(os.tmpdir(), 'nanogpt-env-faults-'));
const data = writePatternCorpus({ trainTokens: 4000, valTokens: 1000 });
const mounts: string[] = [];
let corpus = '';

before(() => {
  // ~1.3 MB of tokens: more than a 1 MB tmpfs holds.
  corpus = path.join(root, 'docs.jsonl');
  writeFileSync(corpus, Array.from({ length: 3000 }, (_, i) => JSON.stringify({ text: `document ${i} ${'lorem ipsum dolor sit amet '.repeat(40)}` })).join('\n'));
});

after(() => {
  for (const m of mounts) spawnSync('umount', ['-l', m]);
  rmSync(root, { recursive: true, force: true });
  rmSync(data, { recursive: true, force: true });
});

/** A fresh 1 MB tmpfs, or a skip saying why not (mounting needs root). */
function tmpfs(t: TestContext): string | undefined {
  const dir = mkdtempSync(path.join(root, 'mnt-'));
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir], { encoding: 'utf8' });
  if (r.status !== 0) {
    t.skip(`cannot mount a tmpfs here (${(r.stderr || r.error?.message || '').trim()}); needs root`);
    return undefined;
  }
  mounts.push(dir);
  return dir;
}

/** Fills `dir`'s file system until about `leaveBytes` remain. */
function fill(dir: string, leaveBytes: number): void {
  const st = statfsSync(dir);
  const free = st.bavail * st.bsize;
  writeFileSync(path.join(dir, 'filler'), Buffer.alloc(Math.max(0, free - leaveBytes)));
}

const tempsIn = (dir: string): string[] => readdirSync(dir).filter((f) => f.endsWith('.tmp') || f === '.nanogpt.lock');

test('ENOSPC while training: exit 2 naming the file and df; the older checkpoint is intact, no temp file left', (t) => {
  const mnt = tmpfs(t);
  if (!mnt) return;
  const out = path.join(mnt, 'run');
  mkdirSync(out);
  writeFileSync(path.join(out, 'ckpt.pt'), 'the previous best model');
  fill(mnt, 48 * 1024); // the metrics fit; the 116 KB checkpoint does not
  return nanogpt(tinyTrainArgs(data, out)).then((r) => {
    assertUserError(r, new RegExp(`no space left on the device while writing ${out}/ckpt\\.pt \\(ENOSPC\\)`));
    assert.match(r.stderr, new RegExp(`fix: free space on that file system \\(see \`df -h ${out}\`\\)`));
    assert.equal(readFileSync(path.join(out, 'ckpt.pt'), 'utf8'), 'the previous best model');
    assert.deepEqual(tempsIn(out), []);
  });
});

test('ENOSPC while preparing: exit 2, the existing train.bin untouched, no temp file left', async (t) => {
  const mnt = tmpfs(t);
  if (!mnt) return;
  const out = path.join(mnt, 'data');
  mkdirSync(out);
  writeFileSync(path.join(out, 'train.bin'), 'old tokens');
  writeFileSync(path.join(out, 'meta.json'), '{"old": true}');
  const r = await nanogpt(['prepare', corpus, '--out_dir', out, '--workers', '1', '--quiet']);
  assertUserError(r, new RegExp(`no space left on the device while writing ${out}/(train|val)\\.bin \\(ENOSPC\\)`));
  assert.equal(readFileSync(path.join(out, 'train.bin'), 'utf8'), 'old tokens');
  assert.equal(readFileSync(path.join(out, 'meta.json'), 'utf8'), '{"old": true}');
  assert.deepEqual(tempsIn(out), []);
});

test('EROFS: training and preparing into a read-only mount exit 2 and change nothing', async (t) => {
  const mnt = tmpfs(t);
  if (!mnt) return;
  mkdirSync(path.join(mnt, 'run'));
  writeFileSync(path.join(mnt, 'run', 'ckpt.pt'), 'kept');
  execFileSync('mount', ['-o', 'remount,ro', mnt]);
  const r = await nanogpt(tinyTrainArgs(data, path.join(mnt, 'run')));
  assertUserError(r, /read-only file system: cannot write while opening .*run\/\.nanogpt\.lock \(EROFS\)[\s\S]*fix: choose a directory on a writable file system/);
  const p = await nanogpt(['prepare', corpus, '--out_dir', path.join(mnt, 'run'), '--workers', '1', '--quiet']);
  assertUserError(p, /read-only file system.*\(EROFS\)/);
  assert.deepEqual(readdirSync(path.join(mnt, 'run')), ['ckpt.pt']);
  assert.equal(readFileSync(path.join(mnt, 'run', 'ckpt.pt'), 'utf8'), 'kept');
});

test('EACCES: an out_dir the user may not write exits 2 naming it', async () => {
  const out = path.join(root, 'locked-out');
  mkdirSync(out);
  chmodSync(root, 0o755);
  chmodSync(out, 0o555);
  // Root may write anywhere: run the child as nobody then (it can read the repository, not write `out`).
  const asNobody = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
  const r = spawnSync(process.execPath, [bin, ...tinyTrainArgs(data, out)], { encoding: 'utf8', env: { ...process.env, ...childEnv }, timeout: 60_000, ...asNobody });
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, new RegExp(`permission denied while opening ${out}/\\.nanogpt\\.lock \\(EACCES\\)`));
  assert.match(r.stderr, new RegExp(`fix: check the permissions \\(\`ls -ld ${out}\`\\)`));
  assert.doesNotMatch(r.stderr, /internal error/);
});

test('EEXIST / ENOTDIR: an out_dir that is a file, or lies under one, exits 2', async () => {
  const file = path.join(root, 'a-file');
  writeFileSync(file, 'x');
  assertUserError(await nanogpt(tinyTrainArgs(data, file)), /a-file already exists \(while creating the directory .*a-file\) \(EEXIST\)/);
  assertUserError(await nanogpt(tinyTrainArgs(data, path.join(file, 'sub'))), /a part of .*a-file\/sub is a file where a directory was expected.*\(ENOTDIR\)/);
  assertUserError(await nanogpt(['prepare', corpus, '--out_dir', path.join(file, 'sub'), '--workers', '1', '--quiet']), /a-file\/sub/);
  assert.equal(readFileSync(file, 'utf8'), 'x');
});

test('a port in use: `launch --master_port` and a rank 0 given a taken MASTER_PORT exit 2 saying so', async () => {
  const holder = net.createServer();
  await new Promise<void>((r) => holder.listen(0, r));
  const port = (holder.address() as net.AddressInfo).port;
  try {
    const l = await nanogpt(['launch', '--nproc_per_node', '2', '--master_port', String(port), '--', ...tinyTrainArgs(data, path.join(root, 'launch-out'))], { timeoutMs: 60_000 });
    assertUserError(l, new RegExp(`--master_port ${port} is in use on this machine`));
    assert.ok(l.ms < 30_000, `took ${l.ms} ms`);
    const env = { RANK: '0', WORLD_SIZE: '2', LOCAL_RANK: '0', LOCAL_WORLD_SIZE: '2', MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port) };
    const r = await runNode([bin, ...tinyTrainArgs(data, path.join(root, 'port-out'), ['--distributed.timeout_s=10'])], { ...childEnv, ...env }, 60_000);
    assertUserError(r, new RegExp(`rendezvous at 127\\.0\\.0\\.1:${port} failed[\\s\\S]*fix: port ${port} is taken on this machine \\(another run\\?\\)`));
  } finally {
    holder.close();
  }
});

test('a bucket name like ../.. is refused up front by the S3 rules (download, prepare --bucket, s3:// paths)', async () => {
  const env = { AWS_ENDPOINT_URL: 'http://127.0.0.1:9', AWS_ACCESS_KEY_ID: 'x', AWS_SECRET_ACCESS_KEY: 'y', AWS_REGION: 'us-east-1' };
  const d = await nanogpt(['download', '--bucket', '../..', '--out_dir', path.join(root, 'dl')], { env, timeoutMs: 60_000 });
  assertUserError(d, /--bucket: '\.\.\/\.\.' is not a valid S3 bucket name \(it contains '\/'\)/);
  assert.match(d.stderr, /fix: give the bucket's name: bucket names are 3 to 63 characters/);
  // prepare checks before tokenizing anything: no output directory appears.
  const prepOut = path.join(root, 'prep-bucket');
  const p = await nanogpt(['prepare', corpus, '--out_dir', prepOut, '--bucket', 'My_Bucket', '--workers', '1'], { env, timeoutMs: 60_000 });
  assertUserError(p, /--bucket: 'My_Bucket' is not a valid S3 bucket name \(it contains 'M'\)/);
  assert.throws(() => readdirSync(prepOut), /ENOENT/);
  const s = await nanogpt(['sample', '--ckpt_path', 's3://a..b/ckpt.pt', '--max_new_tokens', '1'], { env, timeoutMs: 60_000 });
  assertUserError(s, /s3:\/\/a\.\.b\/ckpt\.pt: 'a\.\.b' is not a valid S3 bucket name \(it has two dots in a row\)/);
});
