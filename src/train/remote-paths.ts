// s3:// in a training configuration: outputs (model_path, snapshot_path) are probed before the first step, and a
// data_dir in a bucket is downloaded into a local cache — the same transfer code as `nanogpt download` — because
// training reads token files with random access, which a local file does well and an object store does not.
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { downloadFile, objectInfo, parseS3Url, probeWritable, s3Url } from '../io/object-store.js';
import { DirLock, LockHeldError } from '../io/dir-lock.js';
import { writeBufferAtomic } from '../io/atomic.js';
import { isUserError, UserError } from '../util/errors.js';
import { formatBytes } from '../util/format.js';
import type { TrainConfig } from './config-schema.js';
import { resolveRunPath } from './config.js';

const isS3 = (p: string): boolean => p.startsWith('s3://');

/** Checks every s3:// output of the run can be written; the error names the setting, before any work is done. */
export async function probeRemoteOutputs(config: TrainConfig, log: (line: string) => void): Promise<void> {
  const t = config.trainer_config;
  for (const [setting, value] of [
    ['trainer_config.model_path', t.model_path],
    ['trainer_config.snapshot_path', t.snapshot_path],
  ] as const) {
    const url = resolveRunPath(config.out_dir, value);
    if (!isS3(url)) continue;
    await probeWritable(url, { setting }).catch((err: unknown) => {
      if (!isUserError(err)) throw err;
      throw new UserError(err.problem, `${err.fix ?? 'check the bucket'}; or set ${setting} to a local path`);
    });
    log(`${setting}: ${url} is writable (probed)`);
  }
}

/** Where bucket data is cached: NANOGPT_CACHE_DIR, else $XDG_CACHE_HOME/nanogpt-ts, else ~/.cache/nanogpt-ts. */
export function cacheRoot(env: NodeJS.ProcessEnv = process.env): string {
  if (env.NANOGPT_CACHE_DIR) return path.resolve(env.NANOGPT_CACHE_DIR);
  return path.join(env.XDG_CACHE_HOME ? path.resolve(env.XDG_CACHE_HOME) : path.join(os.homedir(), '.cache'), 'nanogpt-ts');
}

/** What a cached file was downloaded from: reused only while the object is unchanged. */
interface CacheRecord {
  etag: string;
  size: number;
}

const recordPath = (file: string): string => path.join(path.dirname(file), `.${path.basename(file)}.s3.json`);

function cachedCopyIsCurrent(file: string, remote: CacheRecord): boolean {
  try {
    const rec = JSON.parse(readFileSync(recordPath(file), 'utf8')) as Partial<CacheRecord>;
    return rec.etag === remote.etag && rec.size === remote.size && statSync(file).size === remote.size;
  } catch {
    return false;
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Takes the cache directory's lock, waiting while another process on this machine holds it (another local rank
 * downloading the same files): the waiter then finds them current and downloads nothing. A holder on another host
 * (a shared cache) or a damaged lock is the usual DirLock error.
 */
async function lockCache(dir: string, log: (line: string) => void): Promise<DirLock> {
  let said = false;
  for (;;) {
    try {
      return DirLock.acquire(dir, 'nanogpt train (data download)', log);
    } catch (err) {
      // Only a live holder on this machine is worth waiting for: it is downloading and will release the lock.
      if (!(err instanceof LockHeldError && err.sameHost)) throw err;
      if (!said) log(`waiting for another process to finish downloading into ${dir}`);
      said = true;
      await sleep(500);
    }
  }
}

/**
 * A local directory holding the run's train.bin and val.bin (and meta.json when the bucket has one): data_dir as
 * it is when local, else the cache copy of s3://bucket/prefix/, downloaded (resumably, sha256-checked) unless the
 * cached files are those objects already.
 */
export async function localDataDir(dataDir: string, log: (line: string) => void, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  if (!isS3(dataDir)) return dataDir;
  const { bucket, key } = parseS3Url(dataDir);
  const prefix = key.replace(/\/+$/, '');
  const dir = path.join(cacheRoot(env), 's3', bucket, ...prefix.split('/').filter(Boolean));
  if (prefix.split('/').some((seg) => seg === '..' || seg === '.')) {
    throw new UserError(`data_dir ${dataDir}: the prefix has '.' or '..' segments`, 'write the prefix as it is in the bucket, e.g. s3://bucket/processed');
  }
  mkdirSync(dir, { recursive: true });
  const lock = await lockCache(dir, log);
  try {
    for (const name of ['train.bin', 'val.bin', 'meta.json']) {
      const objectKey = prefix ? `${prefix}/${name}` : name;
      const url = s3Url(bucket, objectKey);
      const remote = await objectInfo(url, { setting: 'data_dir' });
      if (!remote) {
        if (name === 'meta.json') continue;
        throw new UserError(`data_dir ${dataDir} has no ${name} (looked for ${url})`, 'point data_dir at the prefix `nanogpt prepare --bucket` uploaded to (s3://BUCKET/processed), or prepare the data first');
      }
      const file = path.join(dir, name);
      if (cachedCopyIsCurrent(file, remote)) {
        log(`data_dir: ${name} already in the cache (${file}, ${formatBytes(remote.size)})`);
        continue;
      }
      log(`data_dir: downloading ${url} (${formatBytes(remote.size)}) into ${dir}`);
      await downloadFile(bucket, objectKey, file, { setting: 'data_dir' });
      await writeBufferAtomic(recordPath(file), JSON.stringify(remote) + "\n");
    }
  } finally {
    lock.release();
  }
  if (!existsSync(path.join(dir, 'train.bin'))) throw new UserError(`data_dir ${dataDir}: the download into ${dir} left no train.bin`, 'run the command again');
  return dir;
}
