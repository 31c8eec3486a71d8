import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import type { S3Client } from '@aws-sdk/client-s3';
import { createS3Client, uploadFiles } from '../../src/io/object-store.js';
import { startS3Server, type S3TestServer } from '../helpers/s3-server.js';

const bin = fileURLToPath(new URL('../../../bin/nanogpt', import.meta.url));
let s3: S3TestServer;
let client: S3Client;
let dir: string;

before(async () => {
  s3 = await startS3Server(['data-bucket']);
  client = createS3Client({ ...s3.env });
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'nanogpt-dl-'));
});
after(async () => {
  client.destroy();
  await s3.close();
  await fs.rm(dir, { recursive: true, force: true });
});

/** Runs bin/nanogpt asynchronously: the S3 server lives in this process, so a sync spawn would deadlock. */
function nanogpt(args: string[], env: Record<string, string> = s3.env): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args], { env: { PATH: process.env.PATH ?? '', HOME: dir, ...env } }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

test('nanogpt download fetches train.bin, val.bin and meta.json from the bucket', async () => {
  const src = path.join(dir, 'src');
  await fs.mkdir(src);
  const train = randomBytes(3 * 1024 * 1024);
  const val = randomBytes(4096);
  await fs.writeFile(path.join(src, 'train.bin'), train);
  await fs.writeFile(path.join(src, 'val.bin'), val);
  await fs.writeFile(path.join(src, 'meta.json'), '{"vocab_size":50257}');
  await uploadFiles('data-bucket', 'processed/', ['train.bin', 'val.bin', 'meta.json'].map((f) => path.join(src, f)), { client });

  const out = path.join(dir, 'out');
  const r = await nanogpt(['download', '--bucket', 'data-bucket', '--out_dir', out]);
  assert.equal(r.code, 0, r.stderr);
  assert.ok((await fs.readFile(path.join(out, 'train.bin'))).equals(train));
  assert.ok((await fs.readFile(path.join(out, 'val.bin'))).equals(val));
  assert.equal(await fs.readFile(path.join(out, 'meta.json'), 'utf8'), '{"vocab_size":50257}');
  assert.match(r.stderr, /s3:\/\/data-bucket\/processed\/train\.bin → /);
  assert.doesNotMatch(r.stderr, /Warning/);
});

test('nanogpt download: a missing bucket or object is exit 2 with a fix; --help documents it', async () => {
  const nb = await nanogpt(['download', '--bucket', 'nope-bucket', '--out_dir', path.join(dir, 'x')]);
  assert.equal(nb.code, 2);
  assert.match(nb.stderr, /bucket 'nope-bucket' does not exist on http:\/\/127\.0\.0\.1/);
  const nk = await nanogpt(['download', '--bucket', 'data-bucket', '--prefix', 'other', '--out_dir', path.join(dir, 'y')]);
  assert.equal(nk.code, 2);
  assert.match(nk.stderr, /s3:\/\/data-bucket\/other\/train\.bin does not exist/);
  const noBucket = await nanogpt(['download']);
  assert.equal(noBucket.code, 2);
  assert.match(noBucket.stderr, /--bucket is required/);
  const help = await nanogpt(['download', '--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /--out_dir/);
  assert.match(help.stdout, /AWS_ENDPOINT_URL/);
});

test('prepare --bucket uploads each file once: a rerun with the same output says "already there" instead of "uploaded"', async () => {
  const corpus = path.join(dir, 'corpus');
  await fs.mkdir(corpus);
  for (let i = 0; i < 4; i++) await fs.writeFile(path.join(corpus, `d${i}.txt`), `document ${i}: ${'the quick brown fox '.repeat(20)}`);
  const args = ['prepare', corpus, '--out_dir', path.join(dir, 'prep'), '--bucket', 'data-bucket', '--workers', '1', '--val_fraction', '0.25'];
  const first = await nanogpt(args);
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stderr, /s3:\/\/data-bucket\/processed\/train\.bin: uploaded \(\d/);
  const second = await nanogpt(args);
  assert.equal(second.code, 0, second.stderr);
  for (const f of ['train.bin', 'val.bin', 'meta.json']) assert.match(second.stderr, new RegExp(`processed/${f.replace('.', '\\.')}: already there with the same content`));
  assert.doesNotMatch(second.stderr, /: uploaded/);
});
