// s3:// in a training configuration, against a real S3-compatible server: data_dir in a bucket is downloaded into
// a local cache (once), and checkpoint locations in a bucket are probed before the first step.
import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { createS3Client, objectInfo, uploadFiles } from '../../src/io/object-store.js';
import { writePatternCorpus } from '../helpers/corpus.js';
import { assertUserError, nanogpt, tinyTrainArgs } from '../helpers/nanogpt-cli.js';
import { startS3Server, type S3TestServer } from '../helpers/s3-server.js';

let s3: S3TestServer;
let client: S3Client;
let tmp: string;
let data: string;

before(async () => {
  s3 = await startS3Server(['runs']);
  client = createS3Client({ ...s3.env });
  tmp = mkdtempSync(path.join(os.tmpdir(), 'nanogpt-remote-'));
  data = writePatternCorpus({ seed: 5 });
  await uploadFiles('runs', 'processed/', ['train.bin', 'val.bin'].map((f) => path.join(data, f)), { client });
});
after(async () => {
  client.destroy();
  await s3.close();
  rmSync(tmp, { recursive: true, force: true });
  rmSync(data, { recursive: true, force: true });
});

const env = (): NodeJS.ProcessEnv => ({ ...s3.env, NANOGPT_CACHE_DIR: path.join(tmp, 'cache') });

test('data_dir s3://bucket/prefix trains from a cached download; checkpoints go to the bucket; a second run reuses the cache', async () => {
  const first = await nanogpt(tinyTrainArgs('s3://runs/processed', path.join(tmp, 'out1'), ['--trainer_config.model_path=s3://runs/exp/ckpt.pt']), { env: env() });
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stderr, /trainer_config\.model_path: s3:\/\/runs\/exp\/ckpt\.pt is writable \(probed\)/);
  assert.match(first.stderr, /data_dir: downloading s3:\/\/runs\/processed\/train\.bin/);
  assert.ok(await objectInfo('s3://runs/exp/ckpt.pt', { client }), 'the best model is in the bucket');
  assert.deepEqual(readdirSync(path.join(tmp, 'cache', 's3', 'runs', 'processed')).filter((n) => n.endsWith('.bin')).sort(), ['train.bin', 'val.bin']);
  // The probe object is gone again: only the run's real outputs are in the bucket under exp/.
  const listed = await client.send(new ListObjectsV2Command({ Bucket: 'runs', Prefix: 'exp/' }));
  assert.deepEqual((listed.Contents ?? []).map((o) => o.Key), ['exp/ckpt.pt']);

  const second = await nanogpt(tinyTrainArgs('s3://runs/processed', path.join(tmp, 'out2')), { env: env() });
  assert.equal(second.code, 0, second.stderr);
  assert.match(second.stderr, /data_dir: train\.bin already in the cache/);
  assert.doesNotMatch(second.stderr, /downloading/);
});

test('a bucket that cannot take the checkpoints, or data that is not there, is exit 2 naming the setting before any step', async () => {
  const noBucket = await nanogpt(tinyTrainArgs(data, path.join(tmp, 'out3'), ['--trainer_config.snapshot_path=s3://no-such-bucket/run/snapshot.pt']), { env: env() });
  assertUserError(noBucket, /trainer_config\.snapshot_path: bucket 'no-such-bucket' does not exist[\s\S]*fix: check the bucket name \(trainer_config\.snapshot_path\)/);
  assert.doesNotMatch(noBucket.stderr, /iter \d/);
  const noData = await nanogpt(tinyTrainArgs('s3://runs/elsewhere', path.join(tmp, 'out4')), { env: env() });
  assertUserError(noData, /data_dir s3:\/\/runs\/elsewhere has no train\.bin/);
});
