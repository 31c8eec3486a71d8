// OpenAI's GPT-2 weights from the Hugging Face Hub (`openai-community/<size>`), fetched into the standard
// Hugging Face cache so a copy downloaded by Python's huggingface_hub is reused here, and ours by it. Only
// model.safetensors (the weights) and config.json (n_head and friends) are needed; loadModel reads both.
import { existsSync, promises as fs } from 'node:fs';
import * as path from 'node:path';
import { HubClient, HubNetworkError, type DownloadProgress, type HubConfig, type HubFile } from '../io/hf-hub.js';
import { UserError } from '../util/errors.js';
import { PRETRAINED } from './config.js';
import { formatBytes } from '../util/format.js';

export type PretrainedName = (typeof PRETRAINED)[number];

const WEIGHTS = 'model.safetensors';
const CONFIG = 'config.json';
const REVISION = 'main';

export interface PretrainedOptions {
  /** Overrides of the Hub settings read from the environment (tests point these at a local server). */
  hub?: Partial<HubConfig>;
}

export function isPretrainedName(name: string): name is PretrainedName {
  return (PRETRAINED as readonly string[]).includes(name);
}

/** The Hub repo holding a released GPT-2 size. */
export function pretrainedRepo(name: PretrainedName): string {
  return `openai-community/${name}`;
}

/**
 * The local path of `model.safetensors` for a released GPT-2 size, downloading it (and config.json, into the same
 * snapshot folder) when the cache lacks it. A complete cached copy is used without touching the network: these
 * repos do not change, and a training run should not depend on the Hub being up. HF_HUB_OFFLINE=1 uses only the
 * cache; when the weights are neither cached nor downloadable the error names the folder to put them in.
 */
export async function pretrainedWeightsFile(name: PretrainedName | string, log: (s: string) => void, opts: PretrainedOptions = {}): Promise<string> {
  // Takes any string (config values are strings) and checks it here, so callers need no cast.
  if (!isPretrainedName(name)) {
    throw new UserError(`'${name}' is not a released GPT-2 size`, `use one of ${PRETRAINED.join(', ')}, or a path to a model.safetensors file`);
  }
  const hub = new HubClient(opts.hub);
  const repo = pretrainedRepo(name);

  const cached = await cachedSnapshotDir(hub, repo);
  const cachedWeights = cached && path.join(cached, WEIGHTS);
  if (cachedWeights && (existsSync(path.join(cached, CONFIG)) || hub.config.offline)) {
    log(`${name}: using cached weights ${cachedWeights}`);
    return cachedWeights;
  }
  if (hub.config.offline) throw notAvailable(hub, repo, name, 'HF_HUB_OFFLINE is set and the Hugging Face cache does not hold them', cached);

  let commit: string;
  let files: HubFile[];
  try {
    commit = await hub.commitOf(repo, REVISION, 'model');
    files = await hub.listFiles(repo, commit, 'model');
  } catch (err) {
    if (!(err instanceof HubNetworkError)) throw err;
    // The weights without config.json are still usable (loadModel infers the shape; GPT-2's head size is 64).
    if (cachedWeights) {
      log(`${name}: ${firstLine(err)}; using cached weights ${cachedWeights}`);
      return cachedWeights;
    }
    throw notAvailable(hub, repo, name, firstLine(err), cached);
  }
  const weights = files.find((f) => f.path === WEIGHTS);
  if (!weights) {
    throw new UserError(`${repo} on ${hub.config.endpoint} has no ${WEIGHTS}`, 'check HF_ENDPOINT points at the Hugging Face Hub (or a full mirror of it)');
  }
  const config = files.find((f) => f.path === CONFIG);

  let local = '';
  // config.json first: it is tiny, and once the weights land the snapshot is complete.
  for (const file of config ? [config, weights] : [weights]) {
    try {
      const p = await hub.download(repo, commit, file, progressLogger(name, log), 'model');
      if (file === weights) local = p;
    } catch (err) {
      if (!(err instanceof HubNetworkError)) throw err;
      // A cut download keeps its partial blob; the same command resumes it.
      throw notAvailable(hub, repo, name, firstLine(err), cached, 'run the same command again to resume the download');
    }
  }
  // refs/main lets later offline runs (ours and huggingface_hub's) find this snapshot without asking the Hub.
  await hub.writeRef(repo, REVISION, commit, 'model');
  return local;
}

/**
 * The snapshot folder of the repo in the cache that holds model.safetensors: the one refs/main points to, else
 * (weights copied in by hand, or a cache from another tool) the most recently modified snapshot that has them.
 */
async function cachedSnapshotDir(hub: HubClient, repo: string): Promise<string | undefined> {
  const snapshots = path.join(hub.repoCacheDir(repo, 'model'), 'snapshots');
  const ref = await hub.cachedSnapshot(repo, REVISION, 'model');
  if (ref) {
    const dir = path.join(snapshots, ref.commit);
    if (await isFile(path.join(dir, WEIGHTS))) return dir;
  }
  let best: { dir: string; mtime: number } | undefined;
  for (const entry of await fs.readdir(snapshots, { withFileTypes: true }).catch(() => [])) {
    if (!entry.isDirectory()) continue;
    const dir = path.join(snapshots, entry.name);
    const st = await fs.stat(path.join(dir, WEIGHTS)).catch(() => undefined);
    if (st?.isFile() && (!best || st.mtimeMs > best.mtime)) best = { dir, mtime: st.mtimeMs };
  }
  return best?.dir;
}

async function isFile(p: string): Promise<boolean> {
  // stat follows the snapshot symlink into blobs/: a dangling link (blob deleted) is not a file.
  return (await fs.stat(p).catch(() => undefined))?.isFile() ?? false;
}

/** The error for weights that are neither cached nor downloadable: says where to put them by hand. */
function notAvailable(hub: HubClient, repo: string, name: string, why: string, cachedDir: string | undefined, firstFix?: string): UserError {
  const dir = cachedDir ?? path.join(hub.repoCacheDir(repo, 'model'), 'snapshots', 'local');
  const fixes = [
    ...(firstFix ? [firstFix] : []),
    `put ${WEIGHTS} (and ${CONFIG}) from https://huggingface.co/${repo} into ${dir}${path.sep} ` +
      `(any folder under ${path.dirname(dir)}${path.sep} is found; \`huggingface-cli download ${repo} ${WEIGHTS} ${CONFIG}\` fills the same cache)`,
    `or set init_from: /path/to/${WEIGHTS} (with its ${CONFIG} beside it)`,
  ];
  return new UserError(`the ${name} weights are not available: ${why}`, fixes.join('; '));
}

function firstLine(err: unknown): string {
  return ((err as Error).message ?? String(err)).split('\n')[0]!;
}

/** Progress lines for a download: its start, about one a second (or every 10%), and its end. */
function progressLogger(name: string, log: (s: string) => void): (p: DownloadProgress) => void {
  let lastAt = 0;
  let lastPct = -1;
  return (p) => {
    const total = formatBytes(p.total);
    if (p.cached) {
      log(`${name}: ${p.file} already in the cache (${total})`);
      return;
    }
    if (p.done) {
      log(`${name}: ${p.file} downloaded (${total})`);
      return;
    }
    const pct = p.total > 0 ? Math.floor((100 * p.received) / p.total) : 0;
    const now = Date.now();
    const first = lastPct < 0;
    if (!first && now - lastAt < 1000 && pct < lastPct + 10) return;
    lastAt = now;
    lastPct = pct;
    if (first) {
      const resumed = p.resumedFrom > 0 ? `, resuming at ${formatBytes(p.resumedFrom)}` : '';
      log(`${name}: downloading ${p.file} (${total}${resumed})`);
    } else {
      log(`${name}: ${p.file} ${formatBytes(p.received)} of ${total} (${pct}%)`);
    }
  };
}

