import assert from 'node:assert/strict';
import { randomBytes, createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import type { S3Client } from '@aws-sdk/client-s3';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { createS3Client, downloadFile, exists, MiB, parseS3Url, readObject, uploadFile, uploadFiles, writeObject } from '../../src/io/object-store.js';
import { UserError } from '../../src/util/errors.js';
import { startS3Server, type S3TestServer } from '../helpers/s3-server.js';

let s3: S3TestServer;
let client: S3Client;
let dir: string;
const commands: string[] = [];

before(async () => {
  s3 = await startS3Server(['test-bucket']);
  client = createS3Client({ ...s3.env });
  // Records the S3 operations sent, so tests can see what actually went over the wire.
  client.middlewareStack.add(
    (next, context) => async (args) => {
      commands.push(context.commandName ?? '?');
      return next(args);
    },
    { step: 'initialize', name: 'recordCommands' },
  );
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'nanogpt-s3test-'));
});
after(async () => {
  client.destroy();
  await s3.close();
  await fs.rm(dir, { recursive: true, force: true });
});

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

test('parseS3Url', () => {
  assert.deepEqual(parseS3Url('s3://bkt/k/with/slashes.bin'), { bucket: 'bkt', key: 'k/with/slashes.bin' });
  assert.deepEqual(parseS3Url('s3://bkt'), { bucket: 'bkt', key: '' });
  assert.throws(() => parseS3Url('http://b/k'), UserError);
  assert.throws(() => parseS3Url('s3://../../etc'), /'\.\.' is not a valid S3 bucket name/);
});

test('small file round trip, with sha256 metadata, and a skipped re-upload', async () => {
  const src = path.join(dir, 'small.bin');
  const data = randomBytes(1000);
  await fs.writeFile(src, data);
  const up = await uploadFile('test-bucket', 'round/small.bin', src, { client });
  assert.equal(up.sha256, sha(data));
  assert.equal(up.skipped, false);
  assert.equal((await uploadFile('test-bucket', 'round/small.bin', src, { client })).skipped, true);
  const dest = path.join(dir, 'out', 'small.bin');
  const down = await downloadFile('test-bucket', 'round/small.bin', dest, { client });
  assert.equal(down.sha256, sha(data));
  assert.deepEqual(await fs.readFile(dest), data);
  assert.deepEqual(await fs.readdir(path.dirname(dest)), ['small.bin'], 'no partial/state files left behind');
});

test('readObject / writeObject / exists for s3:// URLs', async () => {
  assert.equal(await exists('s3://test-bucket/ckpt/a.safetensors', { client }), false);
  await writeObject('s3://test-bucket/ckpt/a.safetensors', 'checkpoint bytes', { client });
  assert.equal(await exists('s3://test-bucket/ckpt/a.safetensors', { client }), true);
  assert.equal(new TextDecoder().decode(await readObject('s3://test-bucket/ckpt/a.safetensors', { client })), 'checkpoint bytes');
  await writeObject('s3://test-bucket/ckpt/empty', new Uint8Array(), { client });
  assert.equal((await readObject('s3://test-bucket/ckpt/empty', { client })).byteLength, 0);
  const emptyDest = path.join(dir, 'empty.bin');
  assert.equal((await downloadFile('test-bucket', 'ckpt/empty', emptyDest, { client })).bytes, 0);
  assert.equal((await fs.stat(emptyDest)).size, 0);
  await assert.rejects(readObject('s3://test-bucket/ckpt/missing', { client }), (e: unknown) => e instanceof UserError && /does not exist/.test(e.message));
});

test('a 12 MB file goes up as a multipart upload in 5 MB parts and comes back identical', async () => {
  const src = path.join(dir, 'big.bin');
  const data = randomBytes(12 * MiB);
  await fs.writeFile(src, data);
  const seen: number[] = [];
  commands.length = 0;
  const [up] = await uploadFiles('test-bucket', 'processed', [src], { client, partSize: 5 * MiB, concurrency: 3, onProgress: (p) => seen.push(p.transferred) });
  assert.equal(up!.key, 'processed/big.bin');
  assert.ok(seen.length >= 3, `progress per part (got ${seen.length})`);
  // 12 MB in 5 MB parts is 3 parts (s3rver's ETags do not show the part count, so the commands sent are counted).
  assert.deepEqual(commands.filter((c) => /Multipart|UploadPart/.test(c)).sort(), ['CompleteMultipartUploadCommand', 'CreateMultipartUploadCommand', 'UploadPartCommand', 'UploadPartCommand', 'UploadPartCommand']);
  const dest = path.join(dir, 'big.out');
  const down = await downloadFile('test-bucket', 'processed/big.bin', dest, { client, partSize: 2 * MiB, concurrency: 3 });
  assert.equal(down.sha256, sha(data));
  assert.ok((await fs.readFile(dest)).equals(data));
});

test('an interrupted download resumes from the bytes already on disk', async () => {
  const data = randomBytes(6 * MiB + 123);
  await writeObject('s3://test-bucket/resume/obj.bin', data, { client });
  const dest = path.join(dir, 'resume', 'obj.bin');
  const ac = new AbortController();
  await assert.rejects(
    downloadFile('test-bucket', 'resume/obj.bin', dest, {
      client,
      partSize: MiB,
      concurrency: 1,
      signal: ac.signal,
      onProgress: (p) => {
        if (p.transferred >= 2 * MiB) ac.abort(new Error('simulated interruption'));
      },
    }),
    /simulated interruption/,
  );
  await assert.rejects(fs.stat(dest), 'no file under the final name after an interruption');
  const kept = (await fs.stat(`${dest}.partial`)).size;
  assert.equal(kept, 2 * MiB);
  const r = await downloadFile('test-bucket', 'resume/obj.bin', dest, { client, partSize: MiB });
  assert.equal(r.resumedFrom, 2 * MiB);
  assert.ok((await fs.readFile(dest)).equals(data));

  // If the object changed in between, the stale partial is not reused.
  await fs.writeFile(`${dest}.partial`, data.subarray(0, 1000));
  await fs.writeFile(`${dest}.partial.json`, JSON.stringify({ etag: '"stale"', size: data.byteLength }));
  const again = await downloadFile('test-bucket', 'resume/obj.bin', dest, { client, partSize: MiB });
  assert.equal(again.resumedFrom, 0);
  assert.ok((await fs.readFile(dest)).equals(data));
});

test('a download that does not match the stored sha256 is rejected and not renamed', async () => {
  await client.send(new PutObjectCommand({ Bucket: 'test-bucket', Key: 'bad/obj.bin', Body: Buffer.from('hello'), Metadata: { sha256: '0'.repeat(64) } }));
  const dest = path.join(dir, 'bad.bin');
  await assert.rejects(downloadFile('test-bucket', 'bad/obj.bin', dest, { client }), (e: unknown) => e instanceof UserError && /corrupt/.test(e.message));
  await assert.rejects(fs.stat(dest));
});

test('errors: NoSuchBucket, missing key, bad credentials, unreachable endpoint', async () => {
  const src = path.join(dir, 'e.bin');
  await fs.writeFile(src, 'x');
  await assert.rejects(uploadFile('no-such-bucket', 'k', src, { client }), (e: unknown) => {
    assert.ok(e instanceof UserError);
    assert.match(e.message, /bucket 'no-such-bucket' does not exist/);
    return true;
  });
  await assert.rejects(downloadFile('no-such-bucket', 'k', path.join(dir, 'x'), { client }), (e: unknown) => e instanceof UserError && /bucket 'no-such-bucket' does not exist/.test(e.message));
  await assert.rejects(downloadFile('test-bucket', 'nope/k', path.join(dir, 'x'), { client }), (e: unknown) => e instanceof UserError && /s3:\/\/test-bucket\/nope\/k does not exist/.test(e.message));
  // s3rver checks the access key id (it does not verify SigV4 signatures), so an unknown key id stands in for bad credentials.
  const badCreds = createS3Client({ ...s3.env, AWS_ACCESS_KEY_ID: 'WRONGKEY' });
  await assert.rejects(readObject('s3://test-bucket/round/small.bin', { client: badCreds }), (e: unknown) => e instanceof UserError && /AWS_ACCESS_KEY_ID/.test(e.message));
  badCreds.destroy();
  const down = createS3Client({ ...s3.env, AWS_ENDPOINT_URL: 'http://127.0.0.1:1' });
  await assert.rejects(exists('s3://test-bucket/x', { client: down }), (e: unknown) => e instanceof UserError && /cannot reach http:\/\/127\.0\.0\.1:1/.test(e.message) && /AWS_ENDPOINT_URL/.test(e.message));
  down.destroy();
});
