import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, beforeEach, test } from 'node:test';
import { prepareDataset } from '../../src/data/prepare.js';
import { documentText } from '../../src/data/document.js';
import type { DocumentSource } from '../../src/data/source.js';
import { openHubDataset, resolveHubAlias } from '../../src/data/sources/hub.js';
import { hubConfigFromEnv, selectParquetFiles } from '../../src/io/hf-hub.js';
import { UserError } from '../../src/util/errors.js';
import { makeParquet, sha256, startHubServer, type HubServer } from '../helpers/hub-server.js';

const shard0 = Array.from({ length: 300 }, (_, i) => `shard zero document ${i}: ${'lorem ipsum '.repeat(i % 17)}`);
const shard1 = Array.from({ length: 200 }, (_, i) => `shard one document ${i} — ünïcödé ${i * i}`);
const valid = ['a validation document'];
const files0 = makeParquet(shard0, 64);
const files1 = makeParquet(shard1, 64);

let server: HubServer;
let cache: string;

before(async () => {
  server = await startHubServer(
    {
      'test-org/corpus': {
        revisions: {
          main: {
            files: {
              'README.md': new TextEncoder().encode('# corpus\n'),
              'data/train-00000-of-00002.parquet': files0,
              'data/train-00001-of-00002.parquet': files1,
              'data/validation-00000-of-00001.parquet': makeParquet(valid),
            },
          },
        },
      },
      // A JSON-lines dataset: its Parquet exists only on the Hub's conversion branch.
      'test-org/jsonl-only': {
        revisions: {
          main: { files: { 'data.jsonl': new TextEncoder().encode('{"text":"x"}\n') } },
          'refs/convert/parquet': { files: { 'default/train/0000.parquet': makeParquet(['converted one', 'converted two'], 1) } },
        },
      },
      'test-org/gated': { token: 'hf_secret', revisions: { main: { files: { 'train.parquet': makeParquet(['gated text']) } } } },
    },
    { pageSize: 2 }, // forces the tree listing through several Link-paginated pages
  );
});
after(async () => {
  await server.close();
});
beforeEach(async () => {
  cache = await fs.mkdtemp(path.join(os.tmpdir(), 'nanogpt-hfcache-'));
  server.requests.length = 0;
});

const hub = () => ({ endpoint: server.endpoint, cacheDir: cache, token: undefined, offline: false, retryDelayMs: 1 });

async function texts(src: DocumentSource): Promise<{ text: string; origin: string }[]> {
  const out = [];
  for await (const d of src.documents()) out.push({ text: documentText(d), origin: d.origin });
  return out;
}

const downloads = () => server.requests.filter((r) => r.url.includes('/resolve/'));

test('Hub flow end to end: resolve, download into the HF cache layout, documents in order', async () => {
  const progress: string[] = [];
  const src = await openHubDataset({ dataset: 'test-org/corpus', hub: hub(), onProgress: (m) => progress.push(m) });
  assert.equal(src.id, 'hub:test-org/corpus');
  assert.equal(src.estimatedDocuments, 500);
  assert.ok(src.estimatedBytes! > 0);
  const docs = await texts(src);
  assert.deepEqual(
    docs.map((d) => d.text),
    [...shard0, ...shard1],
  );
  assert.equal(docs[0]!.origin, 'hub:test-org/corpus:data/train-00000-of-00002.parquet#0');
  assert.equal(docs[300]!.origin, 'hub:test-org/corpus:data/train-00001-of-00002.parquet#0');
  assert.equal(downloads().length, 2, 'only the train split is downloaded');
  assert.ok(progress.some((m) => /downloaded/.test(m)));

  const repoDir = path.join(cache, 'datasets--test-org--corpus');
  const commit = server.commitOf('test-org/corpus', 'main');
  assert.equal(await fs.readFile(path.join(repoDir, 'refs', 'main'), 'utf8'), commit);
  const snap = path.join(repoDir, 'snapshots', commit, 'data', 'train-00000-of-00002.parquet');
  assert.equal(await fs.readlink(snap), path.join('..', '..', '..', 'blobs', sha256(files0)));
  assert.deepEqual(new Uint8Array(await fs.readFile(snap)), files0);
  assert.deepEqual((await fs.readdir(path.join(repoDir, 'blobs'))).sort(), [sha256(files0), sha256(files1)].sort());

  // Second open: metadata calls only, no data request, same documents.
  server.requests.length = 0;
  const again = await openHubDataset({ dataset: 'test-org/corpus', hub: hub() });
  assert.equal(downloads().length, 0);
  assert.equal((await texts(again)).length, 500);

  // Other split.
  const val = await openHubDataset({ dataset: 'test-org/corpus', split: 'validation', hub: hub() });
  assert.deepEqual((await texts(val)).map((d) => d.text), valid);

  // prepare reads the row groups in its workers (units()): the same files as from the decoded documents.
  const decoded: DocumentSource = { id: again.id, describe: again.describe, documents: () => again.documents() };
  const out = await fs.mkdtemp(path.join(os.tmpdir(), 'nanogpt-hub-prepare-'));
  try {
    const viaWorkers = await prepareDataset({ source: again, outDir: path.join(out, 'w'), workers: 2 });
    const viaMain = await prepareDataset({ source: decoded, outDir: path.join(out, 'm'), workers: 1 });
    assert.equal(viaWorkers.meta.train.sha256, viaMain.meta.train.sha256);
    assert.equal(viaWorkers.meta.val.sha256, viaMain.meta.val.sha256);
    assert.equal(viaWorkers.meta.train.documents + viaWorkers.meta.val.documents, 500);
    assert.equal(viaWorkers.bytes, viaMain.bytes);
  } finally {
    await fs.rm(out, { recursive: true, force: true });
  }
});

test('a connection cut mid-file is resumed with a Range request', async () => {
  server.cutNext('train-00000', 1000);
  const src = await openHubDataset({ dataset: 'test-org/corpus', hub: hub() });
  const d = downloads().filter((r) => r.url.includes('train-00000'));
  assert.equal(d.length, 2);
  assert.equal(d[0]!.range, undefined);
  assert.equal(d[1]!.range, 'bytes=1000-');
  assert.deepEqual((await texts(src)).map((x) => x.text), [...shard0, ...shard1]);
});

test('a partial .incomplete blob left by an earlier run is resumed, then verified', async () => {
  const blobs = path.join(cache, 'datasets--test-org--corpus', 'blobs');
  await fs.mkdir(blobs, { recursive: true });
  const half = Math.floor(files1.byteLength / 2);
  await fs.writeFile(path.join(blobs, `${sha256(files1)}.incomplete`), files1.subarray(0, half));
  const progress: string[] = [];
  await openHubDataset({ dataset: 'test-org/corpus', hub: hub(), onProgress: (m) => progress.push(m) });
  const d = downloads().filter((r) => r.url.includes('train-00001'));
  assert.deepEqual(d.map((r) => r.range), [`bytes=${half}-`]);
  assert.ok(progress.some((m) => /resumed at/.test(m)), progress.join('\n'));
  assert.deepEqual(new Uint8Array(await fs.readFile(path.join(blobs, sha256(files1)))), files1);
  assert.deepEqual((await fs.readdir(blobs)).filter((f) => f.endsWith('.incomplete')), []);
});

test('a corrupt partial file fails verification and is deleted', async () => {
  const blobs = path.join(cache, 'datasets--test-org--corpus', 'blobs');
  await fs.mkdir(blobs, { recursive: true });
  await fs.writeFile(path.join(blobs, `${sha256(files0)}.incomplete`), new Uint8Array(500).fill(7));
  await assert.rejects(openHubDataset({ dataset: 'test-org/corpus', hub: hub() }), (err: unknown) => err instanceof UserError && /corrupt/.test(err.message));
  // The next run starts afresh and succeeds.
  const src = await openHubDataset({ dataset: 'test-org/corpus', hub: hub() });
  assert.equal((await texts(src)).length, 500);
});

test('falls back to refs/convert/parquet when main has no Parquet files', async () => {
  const src = await openHubDataset({ dataset: 'test-org/jsonl-only', hub: hub() });
  assert.deepEqual((await texts(src)).map((d) => d.text), ['converted one', 'converted two']);
  const commit = server.commitOf('test-org/jsonl-only', 'refs/convert/parquet');
  const ref = path.join(cache, 'datasets--test-org--jsonl-only', 'refs', 'refs', 'convert', 'parquet');
  assert.equal(await fs.readFile(ref, 'utf8'), commit);
  const offline = await openHubDataset({ dataset: 'test-org/jsonl-only', hub: { ...hub(), offline: true } });
  assert.equal((await texts(offline)).length, 2);
});

test('404: dataset not found, with a hint about the name', async () => {
  await assert.rejects(openHubDataset({ dataset: 'test-org/typo', hub: hub() }), (err: unknown) => {
    assert.ok(err instanceof UserError);
    assert.match(err.message, /dataset 'test-org\/typo' not found on http:\/\/127\.0\.0\.1/);
    assert.match(err.message, /check the name/);
    return true;
  });
});

test('401 on a gated dataset asks for HF_TOKEN; with the token it works', async () => {
  await assert.rejects(openHubDataset({ dataset: 'test-org/gated', hub: hub() }), (err: unknown) => {
    assert.ok(err instanceof UserError);
    assert.match(err.message, /denied/);
    assert.match(err.message, /HF_TOKEN/);
    return true;
  });
  const src = await openHubDataset({ dataset: 'test-org/gated', hub: { ...hub(), token: 'hf_secret' } });
  assert.deepEqual((await texts(src)).map((d) => d.text), ['gated text']);
  assert.ok(server.requests.every((r) => r.url.includes('gated') === false || r.authorization === undefined || r.authorization === 'Bearer hf_secret'));
  assert.ok(downloads().every((r) => r.authorization === 'Bearer hf_secret'));
});

test('a missing text column is reported with the dataset columns', async () => {
  await assert.rejects(openHubDataset({ dataset: 'test-org/corpus', textColumn: 'content', hub: hub() }), (err: unknown) => err instanceof UserError && /no column 'content'.*id, text/.test(err.message));
});

test('an unreachable endpoint names it and suggests HF_ENDPOINT; the cache then serves offline', async () => {
  const down = { ...hub(), endpoint: 'http://127.0.0.1:1' };
  await assert.rejects(openHubDataset({ dataset: 'test-org/corpus', hub: down }), (err: unknown) => {
    assert.ok(err instanceof UserError);
    assert.match(err.message, /cannot reach the Hugging Face Hub at http:\/\/127\.0\.0\.1:1/);
    assert.match(err.message, /HF_ENDPOINT/);
    return true;
  });
  await openHubDataset({ dataset: 'test-org/corpus', hub: hub() }); // fill the cache
  const msgs: string[] = [];
  const offline = await openHubDataset({ dataset: 'test-org/corpus', hub: down, onProgress: (m) => msgs.push(m) });
  assert.equal((await texts(offline)).length, 500);
  assert.ok(msgs.some((m) => /using the cached snapshot/.test(m)));
});

test('HF_HUB_OFFLINE: served from the cache without any request; a dataset not cached is a clear error', async () => {
  await openHubDataset({ dataset: 'test-org/corpus', hub: hub() });
  server.requests.length = 0;
  const src = await openHubDataset({ dataset: 'test-org/corpus', hub: { ...hub(), offline: true } });
  assert.equal((await texts(src)).length, 500);
  assert.equal(server.requests.length, 0);
  await assert.rejects(openHubDataset({ dataset: 'test-org/gated', hub: { ...hub(), offline: true } }), (err: unknown) => err instanceof UserError && /HF_HUB_OFFLINE/.test(err.message));
});

test('environment: HF_ENDPOINT, HF_TOKEN, HF_HOME, HF_HUB_CACHE', () => {
  const c = hubConfigFromEnv({ HF_ENDPOINT: 'http://mirror.example/', HF_TOKEN: 't', HF_HOME: '/h' });
  assert.equal(c.endpoint, 'http://mirror.example');
  assert.equal(c.token, 't');
  assert.equal(c.cacheDir, path.join('/h', 'hub'));
  assert.equal(hubConfigFromEnv({ HF_HOME: '/h', HF_HUB_CACHE: '/c' }).cacheDir, '/c');
  assert.equal(hubConfigFromEnv({ HOME: os.homedir() }).endpoint, 'https://huggingface.co');
});

test('aliases and split selection', () => {
  assert.equal(resolveHubAlias('openwebtext-10k'), 'Ankursingh/openwebtext_10K');
  assert.equal(resolveHubAlias('openwebtext'), 'Skylion007/openwebtext');
  assert.throws(() => resolveHubAlias('not a name'), UserError);
  const f = (p: string) => ({ path: p, size: 1 });
  const pick = (paths: string[], split: string, config?: string) => selectParquetFiles(paths.map(f), split, config).map((x) => x.path);
  assert.deepEqual(pick(['plain_text/train/0001.parquet', 'plain_text/train/0000.parquet', 'plain_text/test/0000.parquet'], 'train'), ['plain_text/train/0000.parquet', 'plain_text/train/0001.parquet']);
  assert.deepEqual(pick(['a/train/0.parquet', 'default/train/0.parquet'], 'train'), ['default/train/0.parquet']);
  assert.deepEqual(pick(['a/train/0.parquet', 'default/train/0.parquet'], 'train', 'a'), ['a/train/0.parquet']);
  assert.deepEqual(pick(['openwebtext_10k.parquet'], 'train'), ['openwebtext_10k.parquet']);
  assert.deepEqual(pick(['plain_text/openwebtext-train-00001-of-00002.parquet', 'plain_text/openwebtext-train-00000-of-00002.parquet'], 'train').length, 2);
});
