import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, afterEach, beforeEach, test } from 'node:test';
import { openHubDataset } from '../../src/data/sources/hub.js';
import { checkRepoId, HubClient, unsafeRelativePath } from '../../src/io/hf-hub.js';
import { UserError } from '../../src/util/errors.js';
import { runNode } from '../helpers/children.js';
import { gitOid, makeParquet, sha256, startHostileHubServer, type HostileAnswers } from '../helpers/hub-server.js';

// A hostile or compromised HF_ENDPOINT: what it sends (commit ids, file paths, blob ids, next-page links) becomes
// paths in the cache. Before the checks, a tree path of ../../../../../victim/train-0.parquet made the snapshot
// linker delete that file, outside HF_HOME, and put a symlink in its place.

const bin = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'bin', 'nanogpt');
const parquet = makeParquet(['hostile text']);
const commit = 'c'.repeat(40);
const lfsEntry = (p: string, extra: Record<string, unknown> = {}) => ({ type: 'file', path: p, size: 134, oid: gitOid(parquet), lfs: { oid: sha256(parquet), size: parquet.byteLength }, ...extra });

let root = '';
let hfHome = '';
let victim = '';
const closers: (() => Promise<void>)[] = [];

beforeEach(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'nanogpt-hostile-'));
  hfHome = path.join(root, 'hfhome');
  await fs.mkdir(path.join(root, 'victim'));
  victim = path.join(root, 'victim', 'train-0.parquet');
  await fs.writeFile(victim, 'precious');
});
afterEach(async () => {
  for (const close of closers.splice(0)) await close();
  await fs.rm(root, { recursive: true, force: true });
});
after(() => undefined);

/** The victim is still a regular file with its content, and nothing else appeared outside HF_HOME. */
async function assertVictimUntouched(): Promise<void> {
  const st = await fs.lstat(victim);
  assert.ok(st.isFile() && !st.isSymbolicLink(), 'the victim is still a regular file');
  assert.equal(await fs.readFile(victim, 'utf8'), 'precious');
  assert.deepEqual(await fs.readdir(path.join(root, 'victim')), ['train-0.parquet']);
  assert.deepEqual((await fs.readdir(root)).filter((n) => n !== 'hfhome' && n !== 'out').sort(), ['victim']);
}

async function hostile(answers: Partial<HostileAnswers>): Promise<string> {
  const server = await startHostileHubServer({ sha: commit, tree: [lfsEntry('data/train-0.parquet')], file: parquet, ...answers });
  closers.push(server.close);
  return server.endpoint;
}

async function rejectsUnusable(answers: Partial<HostileAnswers>, field: RegExp, opts: { revision?: string } = {}): Promise<UserError> {
  const endpoint = await hostile(answers);
  let caught: unknown;
  await openHubDataset({ dataset: 'evil/corpus', revision: opts.revision, hub: { endpoint, cacheDir: path.join(hfHome, 'hub'), token: undefined, offline: false, retryDelayMs: 1 } }).catch((err: unknown) => (caught = err));
  assert.ok(caught instanceof UserError, `expected a UserError, got ${String(caught)}`);
  assert.match(caught.message, new RegExp(`^${endpoint.replace(/[.]/g, '\\.')} sent an unusable `));
  assert.match(caught.message, field);
  assert.match(caught.message, /fix: HF_ENDPOINT must point at the Hugging Face Hub or a mirror you trust/);
  await assertVictimUntouched();
  return caught;
}

test('nanogpt prepare: a tree path escaping the cache exits 2 naming the server, the field and the path; the victim is untouched', async () => {
  const evil = '../../../../../victim/train-0.parquet'; // from snapshots/{sha}/ up to the folder holding HF_HOME
  const endpoint = await hostile({ tree: [lfsEntry(evil)] });
  const r = await runNode([bin, 'prepare', '--dataset', 'evil/corpus', '--out_dir', path.join(root, 'out')], { HF_ENDPOINT: endpoint, HF_HOME: hfHome, HF_HUB_CACHE: '', HF_TOKEN: '', HF_HUB_OFFLINE: '' }, 60_000);
  assert.equal(r.code, 2, r.stderr);
  assert.ok(
    r.stderr.includes(`error: ${endpoint} sent an unusable file path ('path' in the tree listing) for dataset 'evil/corpus': "${evil}" (a '..' segment)`),
    r.stderr,
  );
  assert.doesNotMatch(r.stderr, /internal error|\n\s+at /);
  await assertVictimUntouched();
});

test('a commit id that is a path is refused before anything is written', async () => {
  const err = await rejectsUnusable({ sha: '../../../../victim' }, /commit \('sha' of revision 'main'\) for dataset 'evil\/corpus': "\.\.\/\.\.\/\.\.\/\.\.\/victim" \(not 40 lowercase hex digits\)/);
  assert.ok(!err.message.includes('\n    at '));
  // Not even the repo folder: the commit is checked before the listing.
  await assert.rejects(fs.stat(path.join(hfHome, 'hub', 'datasets--evil--corpus', 'snapshots')));
});

test('tree paths: absolute, backslashes, NUL, empty and dot segments, overlong', async () => {
  const cases: [string, string][] = [
    ['/tmp/victim/train-0.parquet', 'an absolute path'],
    ['data\\..\\..\\train-0.parquet', 'a backslash'],
    ['data/\0train-0.parquet', 'a control character'],
    ['data//train-0.parquet', 'an empty segment'],
    ['./data/train-0.parquet', "a '.' segment"],
    [`${'d/'.repeat(2100)}train-0.parquet`, 'longer than 4096 bytes'],
    [`data/${'x'.repeat(300)}-train.parquet`, 'a segment longer than 255 bytes'],
  ];
  for (const [p, why] of cases) {
    await rejectsUnusable({ tree: [lfsEntry(p)] }, new RegExp(`file path \\('path' in the tree listing\\).*\\(${why.replace(/[.()]/g, '\\$&')}\\)`));
  }
});

test('blob ids (lfs.oid, oid) and sizes must be what the Hub sends', async () => {
  await rejectsUnusable({ tree: [lfsEntry('data/train-0.parquet', { lfs: { oid: '../../../../victim/x', size: parquet.byteLength } })] }, /sha256 of data\/train-0\.parquet \('lfs\.oid'\).*not 64 hex digits/);
  await rejectsUnusable({ tree: [{ type: 'file', path: 'data/train-0.parquet', size: parquet.byteLength, oid: '../../blobs/../../victim' }] }, /git oid of data\/train-0\.parquet \('oid'\).*not 40 hex digits/);
  await rejectsUnusable({ tree: [{ type: 'file', path: 'data/train-0.parquet', size: -5, oid: gitOid(parquet) }] }, /size of data\/train-0\.parquet for dataset 'evil\/corpus': -5 \(not a byte count\)/);
});

test('a next-page link to another server, or back to a page already listed, is refused', async () => {
  await rejectsUnusable({ treeLink: '<http://198.51.100.7/api/datasets/evil/corpus/tree/x?cursor=2>; rel="next"' }, /next-page link \(Link header\) for dataset 'evil\/corpus': "http:\/\/198\.51\.100\.7\/.*not on http:\/\/127\.0\.0\.1/);
  await rejectsUnusable({ treeLink: `</api/datasets/evil/corpus/tree/${commit}?recursive=true>; rel="next"` }, /next-page link \(Link header\).*a page already listed/);
});

test('a download body longer than listed stops at the listed size instead of filling the disk', async () => {
  const tiny = new Uint8Array([1, 2, 3, 4]);
  const endpoint = await hostile({ tree: [{ type: 'file', path: 'train.parquet', size: 4, oid: gitOid(tiny) }], endless: new Uint8Array(1 << 16) });
  const t0 = Date.now();
  await assert.rejects(
    openHubDataset({ dataset: 'evil/corpus', hub: { endpoint, cacheDir: path.join(hfHome, 'hub'), token: undefined, offline: false, retryDelayMs: 1 } }),
    (err: unknown) => err instanceof UserError && /larger than the Hub listed/.test(err.message),
  );
  assert.ok(Date.now() - t0 < 20_000);
  await assertVictimUntouched();
});

test('user-given names: revisions and repo ids that would leave the cache are refused before any request', async () => {
  const endpoint = await hostile({});
  const hub = { endpoint, cacheDir: path.join(hfHome, 'hub'), token: undefined, offline: false, retryDelayMs: 1 };
  await assert.rejects(openHubDataset({ dataset: 'evil/corpus', revision: '../../../../victim/x', hub }), (err: unknown) => err instanceof UserError && /revision "\.\.\/.*cannot be used: a '\.\.' segment/.test(err.message));
  const client = new HubClient(hub);
  await assert.rejects(client.writeRef('evil/corpus', '../../../victim/ref', commit), /cannot be used/);
  assert.throws(() => client.repoCacheDir('../..'), /not a Hugging Face repo id/);
  assert.throws(() => checkRepoId('a/b/c'), UserError);
  assert.doesNotThrow(() => checkRepoId('openai-community/gpt2'));
  assert.equal(unsafeRelativePath('data/train-00000-of-00004.parquet'), undefined);
  assert.equal(unsafeRelativePath('refs/convert/parquet'), undefined);
  await assertVictimUntouched();
});
