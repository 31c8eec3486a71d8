import { createHash } from 'node:crypto';
import { createReadStream, existsSync, promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { UserError } from '../util/errors.js';
import { readBoundedFile, readBoundedFileSync } from './bounded-read.js';
import { createExclusive, openForWrite } from './no-follow.js';

/**
 * A small client for the Hugging Face Hub: which Parquet files make up a dataset split, and a download of any
 * repo file (dataset or model) into the same cache layout `huggingface_hub` uses, so files fetched by Python
 * tools are reused here and vice versa:
 *
 *   {cache}/datasets--owner--name/blobs/{sha256 or git oid}        the content, once
 *   {cache}/datasets--owner--name/snapshots/{commit}/{path}        relative symlink into blobs/
 *   {cache}/datasets--owner--name/refs/{revision}                  the commit a branch/ref pointed to
 *
 * Model repos use the same layout under `models--owner--name`. Methods take an optional trailing `repoType`
 * ('dataset' by default, so dataset callers are unchanged).
 */

export interface HubConfig {
  /** Base URL, no trailing slash (HF_ENDPOINT, default https://huggingface.co). */
  endpoint: string;
  /** Bearer token (HF_TOKEN, HUGGING_FACE_HUB_TOKEN, or the file `huggingface-cli login` writes). */
  token?: string;
  /** Hub cache root (HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub). */
  cacheDir: string;
  /** HF_HUB_OFFLINE=1: never touch the network, use only what the cache holds. */
  offline: boolean;
  /** Consecutive failed attempts allowed per file before giving up (progress resets the count). */
  maxRetries: number;
  /** First back-off delay after a failed attempt, doubled each time (capped at 10 s). */
  retryDelayMs: number;
}

function truthy(v: string | undefined): boolean {
  return v !== undefined && ['1', 'true', 'yes', 'on'].includes(v.trim().toLowerCase());
}

/** The Hub configuration the Python tools would use, read from the environment. */
export function hubConfigFromEnv(env: NodeJS.ProcessEnv = process.env): HubConfig {
  const hfHome = env.HF_HOME || path.join(env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'huggingface');
  let token = env.HF_TOKEN || env.HUGGING_FACE_HUB_TOKEN || undefined;
  if (!token) {
    const tokenPath = env.HF_TOKEN_PATH || path.join(hfHome, 'token');
    try {
      token = readBoundedFileSync(tokenPath, 64 * 1024, 'token file').toString('utf8').trim() || undefined;
    } catch {
      // No saved token: anonymous access, which is all public datasets need.
    }
  }
  return {
    endpoint: (env.HF_ENDPOINT || 'https://huggingface.co').replace(/\/+$/, ''),
    token,
    cacheDir: env.HF_HUB_CACHE || env.HUGGINGFACE_HUB_CACHE || path.join(hfHome, 'hub'),
    offline: truthy(env.HF_HUB_OFFLINE),
    maxRetries: 5,
    retryDelayMs: 500,
  };
}

/** One file of a repo at a commit, as the tree API lists it. */
export interface HubFile {
  path: string;
  size: number;
  /** Git blob id (sha1 of "blob {size}\0" + content). */
  gitOid?: string;
  /** sha256 of the content, for files stored with Git LFS (all real Parquet files are). */
  sha256?: string;
}

export interface ResolvedFiles {
  repo: string;
  /** What the user asked for (branch, tag, ref such as refs/convert/parquet, or commit). */
  revision: string;
  commit: string;
  files: HubFile[];
  /** True when resolved from the cache without asking the Hub (offline, or the Hub unreachable). */
  fromCache: boolean;
}

export interface DownloadProgress {
  file: string;
  received: number;
  total: number;
  /** Bytes already on disk from an earlier, interrupted attempt when this one started. */
  resumedFrom: number;
  done: boolean;
  /** True when the file came from the cache and nothing was downloaded. */
  cached: boolean;
}

/** The two kinds of Hub repo this client knows. They differ only in URL prefixes and cache folder names. */
export type RepoType = 'dataset' | 'model';

/** URL path segment and cache-folder prefix of each repo type, as the Hub and huggingface_hub name them. */
const REPO_KIND: Record<RepoType, { plural: string; resolvePrefix: string }> = {
  dataset: { plural: 'datasets', resolvePrefix: '/datasets' },
  // Model downloads have no type prefix: {endpoint}/{owner}/{name}/resolve/{commit}/{file}.
  model: { plural: 'models', resolvePrefix: '' },
};

/** Marks errors caused by the network being unreachable, so callers can fall back to the cache. */
export class HubNetworkError extends UserError {}

const CONVERT_REF = 'refs/convert/parquet';
const KNOWN_SPLITS = ['train', 'test', 'validation', 'valid', 'val', 'dev', 'eval'];

// What the server sends becomes paths in the cache: snapshots/{sha}/{path}, blobs/{oid}. A mirror that lies
// (HF_ENDPOINT pointing at a hostile or compromised server) could otherwise write anywhere the user can: a path
// of ../../../x made the snapshot linker delete a file outside the cache and put a symlink in its place.
const COMMIT = /^[0-9a-f]{40}$/;
const GIT_OID = /^[0-9a-f]{40}$/;
const SHA256 = /^[0-9a-f]{64}$/;
const MAX_PATH_BYTES = 4096;
const MAX_SEGMENT_BYTES = 255;
/** JSON answers (revision, one page of a tree listing) are kilobytes; more is not a Hub talking. */
const MAX_JSON_BYTES = 64 * 2 ** 20;
const TRUSTED_ENDPOINT = 'HF_ENDPOINT must point at the Hugging Face Hub or a mirror you trust (unset it to use https://huggingface.co)';

/**
 * Why `p` cannot be used as a path relative to a folder of the cache, or undefined when it can: '/'-separated
 * segments, none empty, '.' or '..', no backslash or control character (NUL included), not absolute, of sane length.
 */
export function unsafeRelativePath(p: unknown): string | undefined {
  if (typeof p !== 'string') return 'not a string';
  if (p === '') return 'empty';
  if (Buffer.byteLength(p) > MAX_PATH_BYTES) return `longer than ${MAX_PATH_BYTES} bytes`;
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(p)) return 'a control character';
  if (p.includes('\\')) return 'a backslash';
  if (p.startsWith('/')) return 'an absolute path';
  for (const seg of p.split('/')) {
    if (seg === '') return 'an empty segment';
    if (seg === '.' || seg === '..') return `a '${seg}' segment`;
    if (Buffer.byteLength(seg) > MAX_SEGMENT_BYTES) return `a segment longer than ${MAX_SEGMENT_BYTES} bytes`;
  }
  return undefined;
}

/** True when `p` lies strictly inside `dir` once both are resolved. */
function isInside(dir: string, p: string): boolean {
  const rel = path.relative(path.resolve(dir), path.resolve(p));
  return rel !== '' && !path.isAbsolute(rel) && rel.split(path.sep)[0] !== '..';
}

/** A server-sent value for a message: quoted, escaped, and cut short (it may be huge). */
function shown(value: unknown): string {
  const s = JSON.stringify(value) ?? String(value);
  return s.length > 160 ? `${s.slice(0, 160)}…` : s;
}

/** Checks a repo id before it becomes a cache folder name: owner/name (or a bare name), letters, digits, - _ . */
export function checkRepoId(repo: string): void {
  if (repo.length > 256 || !/^[\w.-]+(\/[\w.-]+)?$/.test(repo) || repo.split('/').some((s) => s === '.' || s === '..')) {
    throw new UserError(`${shown(repo)} is not a Hugging Face repo id`, 'use owner/name, e.g. openai-community/gpt2 (letters, digits, -, _ and .)');
  }
}

/** Checks a revision (branch, tag, ref or commit) before it becomes a file under refs/. */
export function checkRevision(revision: string): void {
  const why = unsafeRelativePath(revision);
  if (why) throw new UserError(`revision ${shown(revision)} cannot be used: ${why}`, 'pass a branch, tag or commit such as main, v1.0 or refs/convert/parquet');
}

export class HubClient {
  readonly config: HubConfig;

  constructor(config: Partial<HubConfig> = {}) {
    this.config = { ...hubConfigFromEnv(), ...config };
  }

  /** The cache folder of one repo. */
  repoCacheDir(repo: string, repoType: RepoType = 'dataset'): string {
    checkRepoId(repo);
    return path.join(this.config.cacheDir, `${REPO_KIND[repoType].plural}--${repo.split('/').join('--')}`);
  }

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    const h: Record<string, string> = { 'user-agent': 'nanogpt-ts', ...extra };
    if (this.config.token) h.authorization = `Bearer ${this.config.token}`;
    return h;
  }

  /** fetch() with the Hub's failure modes turned into errors that say what to do. */
  private async fetchHub(url: string, repo: string, what: string, extraHeaders: Record<string, string> = {}, repoType: RepoType = 'dataset'): Promise<Response> {
    let res: Response;
    try {
      res = await fetch(url, { headers: this.headers(extraHeaders), redirect: 'follow' });
    } catch (err) {
      throw this.networkError(err, repoType);
    }
    if (res.ok || res.status === 416) return res;
    const code = res.headers.get('x-error-code') ?? '';
    // Only the start of an error page is shown; the rest is never read.
    const body = (await boundedText(res, 64 * 1024).catch(() => '')) ?? '';
    const page = `${this.config.endpoint}${REPO_KIND[repoType].resolvePrefix}/${repo}`;
    const kind = repoType; // 'dataset' or 'model', for the messages below
    // The Hub answers 401 (not 404) for a repo that does not exist when the request is anonymous, so the
    // error code decides, not just the status.
    if (res.status === 404 || code === 'RepoNotFound') {
      if (code === 'RevisionNotFound') {
        throw new UserError(`${what}: revision not found in ${kind} '${repo}' on ${this.config.endpoint}`, `check --revision (a branch, tag or commit of the ${kind})`);
      }
      if (code === 'EntryNotFound') throw new UserError(`${what}: file not found in ${kind} '${repo}'`, `the ${kind} changed while downloading; run again`);
      throw new UserError(
        `${kind} '${repo}' not found on ${this.config.endpoint}`,
        `check the name (owner/name, as in ${page}); for a private ${kind} set HF_TOKEN to a token with read access`,
      );
    }
    if (res.status === 401 || res.status === 403) {
      const gated = code === 'GatedRepo' || /gated|terms|access to (this|the) (dataset|model|repo)/i.test(body);
      throw new UserError(
        `access to ${kind} '${repo}' denied by ${this.config.endpoint} (HTTP ${res.status}${code ? ` ${code}` : ''})`,
        gated || this.config.token
          ? `accept the ${kind}'s terms at ${page} while logged in, and set HF_TOKEN to a token of that account`
          : `set HF_TOKEN to a Hugging Face access token (https://huggingface.co/settings/tokens); gated ${kind}s also need their terms accepted at ${page}`,
      );
    }
    if (res.status === 429) throw new HubNetworkError(`${what}: rate limited by ${this.config.endpoint} (HTTP 429)`, 'wait a minute and run again; setting HF_TOKEN raises the limits');
    throw new HubNetworkError(`${what}: ${this.config.endpoint} answered HTTP ${res.status} ${res.statusText}${body ? `: ${body.slice(0, 200)}` : ''}`, 'run again later; the Hub may be having trouble');
  }

  /**
   * The error for a server-sent value that cannot be used (it would become a path outside the cache, or is not what
   * the Hub sends). Not a HubNetworkError: a lying server must stop the command, not send it to the cache.
   */
  private unsafe(repo: string, repoType: RepoType, field: string, value: unknown, why: string): UserError {
    return new UserError(
      `${this.config.endpoint} sent an unusable ${field} for ${repoType} '${repo}': ${shown(value)} (${why}); nothing was written for it`,
      TRUSTED_ENDPOINT,
    );
  }

  /** Checks a file entry (from a listing, or passed to download) before its path and ids name files in the cache. */
  private checkFile(repo: string, repoType: RepoType, file: HubFile): void {
    const why = unsafeRelativePath(file.path);
    if (why) throw this.unsafe(repo, repoType, "file path ('path' in the tree listing)", file.path, why);
    if (!Number.isSafeInteger(file.size) || file.size < 0) throw this.unsafe(repo, repoType, `size of ${file.path}`, file.size, 'not a byte count');
    if (file.gitOid !== undefined && !GIT_OID.test(file.gitOid)) throw this.unsafe(repo, repoType, `git oid of ${file.path} ('oid')`, file.gitOid, 'not 40 hex digits');
    if (file.sha256 !== undefined && !SHA256.test(file.sha256)) throw this.unsafe(repo, repoType, `sha256 of ${file.path} ('lfs.oid')`, file.sha256, 'not 64 hex digits');
  }

  private networkError(err: unknown, repoType: RepoType = 'dataset'): HubNetworkError {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    const detail = cause?.code ?? cause?.message ?? (err as Error).message;
    return new HubNetworkError(
      `cannot reach the Hugging Face Hub at ${this.config.endpoint} (${detail})`,
      `check your network; set HF_ENDPOINT to a reachable mirror, set HF_HUB_OFFLINE=1 to use only the cache, or ${repoType === 'model' ? 'load the weights from a local file' : 'prepare from local files'} instead`,
    );
  }

  private async getJson<T>(url: string, repo: string, what: string, repoType: RepoType = 'dataset'): Promise<{ data: T; res: Response }> {
    const res = await this.fetchHub(url, repo, what, {}, repoType);
    const text = await boundedText(res, MAX_JSON_BYTES);
    if (text === undefined) {
      throw new UserError(`${this.config.endpoint} sent more than ${MAX_JSON_BYTES / 2 ** 20} MiB for ${url} (${what}); a Hugging Face Hub answers in kilobytes`, TRUSTED_ENDPOINT);
    }
    try {
      return { data: JSON.parse(text) as T, res };
    } catch {
      throw new HubNetworkError(`${what}: ${url} did not return JSON (${text.slice(0, 80)})`, 'check HF_ENDPOINT points at a Hugging Face Hub');
    }
  }

  /** The commit a branch, tag or ref points to (`GET /api/{datasets|models}/{repo}/revision/{rev}`). */
  async commitOf(repo: string, revision: string, repoType: RepoType = 'dataset'): Promise<string> {
    const url = `${this.config.endpoint}/api/${REPO_KIND[repoType].plural}/${repo}/revision/${encodeURIComponent(revision)}`;
    const { data } = await this.getJson<{ sha?: unknown } | null>(url, repo, `resolving revision '${revision}'`, repoType);
    const sha = data?.sha;
    if (!sha) throw new HubNetworkError(`resolving revision '${revision}' of '${repo}': the answer has no commit`, 'check HF_ENDPOINT points at a Hugging Face Hub');
    if (typeof sha !== 'string' || !COMMIT.test(sha)) throw this.unsafe(repo, repoType, `commit ('sha' of revision '${revision}')`, sha, 'not 40 lowercase hex digits');
    return sha;
  }

  /** Every file of the repo at a commit (`GET /api/{datasets|models}/{repo}/tree/{commit}?recursive=true`, paginated). */
  async listFiles(repo: string, commit: string, repoType: RepoType = 'dataset'): Promise<HubFile[]> {
    type Entry = { type: string; path: string; size?: number; oid?: string; lfs?: { oid?: string; sha256?: string; size?: number } };
    const out: HubFile[] = [];
    let url: string | undefined = `${this.config.endpoint}/api/${REPO_KIND[repoType].plural}/${repo}/tree/${encodeURIComponent(commit)}?recursive=true`;
    const origin = new URL(url).origin;
    const seen = new Set<string>();
    while (url) {
      seen.add(url);
      const { data, res }: { data: Entry[]; res: Response } = await this.getJson<Entry[]>(url, repo, 'listing files', repoType);
      if (!Array.isArray(data)) throw new HubNetworkError(`listing files of '${repo}': ${url} did not return a list`, 'check HF_ENDPOINT points at a Hugging Face Hub');
      for (const e of data) {
        if (e === null || typeof e !== 'object' || e.type !== 'file') continue;
        const file: HubFile = { path: e.path, size: e.lfs?.size ?? e.size ?? 0, gitOid: e.oid, sha256: e.lfs?.oid ?? e.lfs?.sha256 };
        this.checkFile(repo, repoType, file);
        out.push(file);
      }
      // Large repos are listed page by page; the next page is in an RFC 8288 Link header. It must stay on the
      // endpoint (the request carries the token) and must not send us round in circles.
      const link = res.headers.get('link');
      const next: RegExpMatchArray | null | undefined = link?.match(/<([^>]+)>\s*;\s*rel="?next"?/);
      url = next ? new URL(next[1]!, url).toString() : undefined;
      if (url !== undefined && new URL(url).origin !== origin) throw this.unsafe(repo, repoType, 'next-page link (Link header)', url, `not on ${origin}`);
      if (url !== undefined && seen.has(url)) throw this.unsafe(repo, repoType, 'next-page link (Link header)', url, 'a page already listed');
    }
    return out;
  }

  /**
   * The Parquet files that hold `split` of a dataset. Repos that store Parquet directly are used as they are;
   * otherwise (script or JSON datasets) the Hub's automatic conversion on `refs/convert/parquet` is used.
   */
  async resolveParquetFiles(repo: string, opts: { split?: string; revision?: string; config?: string; onInfo?: (msg: string) => void } = {}): Promise<ResolvedFiles> {
    const split = opts.split ?? 'train';
    if (opts.revision !== undefined) checkRevision(opts.revision);
    const candidates = opts.revision ? [opts.revision] : ['main', CONVERT_REF];
    let lastAll: HubFile[] = [];
    let unreachable: UserError | undefined;
    for (const revision of candidates) {
      let commit: string;
      let all: HubFile[];
      let fromCache = false;
      try {
        if (this.config.offline) throw new HubNetworkError('HF_HUB_OFFLINE is set');
        commit = await this.commitOf(repo, revision);
        all = await this.listFiles(repo, commit);
      } catch (err) {
        if (!(err instanceof HubNetworkError)) throw err;
        const cached = await this.cachedSnapshot(repo, revision);
        if (!cached) {
          // The next candidate (the conversion branch) may be the one in the cache.
          unreachable ??= this.config.offline
            ? new UserError(`dataset '${repo}' is not in the cache ${this.config.cacheDir} and HF_HUB_OFFLINE is set`, 'unset HF_HUB_OFFLINE to download it')
            : err;
          continue;
        }
        opts.onInfo?.(`${err.message.split('\n')[0]}; using the cached snapshot ${cached.commit.slice(0, 10)}`);
        ({ commit, files: all } = cached);
        fromCache = true;
      }
      lastAll = all;
      const files = selectParquetFiles(all, split, opts.config);
      if (files.length > 0) {
        await this.writeRef(repo, revision, commit);
        return { repo, revision, commit, files, fromCache };
      }
      if (revision === 'main' && !opts.revision) opts.onInfo?.(`no Parquet files for split '${split}' on main; trying the Hub's Parquet conversion (${CONVERT_REF})`);
    }
    if (unreachable) throw unreachable;
    const splits = [...new Set(lastAll.filter((f) => f.path.endsWith('.parquet')).map((f) => guessSplit(f.path)))].filter(Boolean);
    throw new UserError(
      `dataset '${repo}' has no Parquet files for split '${split}'` + (splits.length ? ` (splits found: ${splits.join(', ')})` : ''),
      splits.length ? `pass --split ${splits[0]}` : 'use a dataset with Parquet data (or its Parquet conversion), or prepare from local files',
    );
  }

  /** The commit and files of a revision already in the cache, for offline use. */
  async cachedSnapshot(repo: string, revision: string, repoType: RepoType = 'dataset'): Promise<{ commit: string; files: HubFile[] } | undefined> {
    const dir = this.repoCacheDir(repo, repoType);
    if (unsafeRelativePath(revision)) return undefined;
    let commit = revision;
    try {
      commit = (await readBoundedFile(path.join(dir, 'refs', revision), 4096, 'ref file')).toString('utf8').trim();
    } catch {
      // `revision` may itself be a commit hash.
    }
    const snap = path.join(dir, 'snapshots', commit);
    if (!/^[0-9a-f]{40}$/.test(commit) || !existsSync(snap)) return undefined;
    const files: HubFile[] = [];
    const walk = async (rel: string): Promise<void> => {
      for (const ent of await fs.readdir(path.join(snap, rel), { withFileTypes: true })) {
        const r = rel ? `${rel}/${ent.name}` : ent.name;
        if (ent.isDirectory()) await walk(r);
        else {
          const st = await fs.stat(path.join(snap, r)).catch(() => undefined);
          if (st?.isFile()) files.push({ path: r, size: st.size });
        }
      }
    };
    await walk('');
    return { commit, files };
  }

  /** Records in the cache which commit `revision` resolved to, so offline runs (ours and Python's) find it. */
  async writeRef(repo: string, revision: string, commit: string, repoType: RepoType = 'dataset'): Promise<void> {
    if (revision === commit) return;
    checkRevision(revision);
    if (!COMMIT.test(commit)) throw new UserError(`${shown(commit)} is not a commit id`, 'pass the 40-hex commit the revision resolved to');
    const refPath = path.join(this.repoCacheDir(repo, repoType), 'refs', ...revision.split('/'));
    await fs.mkdir(path.dirname(refPath), { recursive: true });
    // A ref is tiny and rewritten whole; temp + rename keeps a concurrent reader from seeing half a hash. The temp
    // name is predictable, so it is created exclusively: a link planted there is refused, not written through.
    const tmp = `${refPath}.${process.pid}.tmp`;
    await fs.rm(tmp, { force: true });
    const handle = await createExclusive(tmp, 'temp file');
    await handle.writeFile(commit).finally(() => handle.close());
    await fs.rename(tmp, refPath);
  }

  /** Path of a file inside the snapshot folder of a commit (where it appears once downloaded). */
  snapshotPath(repo: string, commit: string, file: string, repoType: RepoType = 'dataset'): string {
    const repoDir = this.repoCacheDir(repo, repoType);
    const why = unsafeRelativePath(file);
    if (why) throw new UserError(`${shown(file)} cannot be a file of '${repo}' in the cache: ${why}`);
    if (!COMMIT.test(commit)) throw new UserError(`${shown(commit)} is not a commit id of '${repo}'`, 'resolve the revision to its 40-hex commit first');
    const snap = path.join(repoDir, 'snapshots', commit, ...file.split('/'));
    // Checked again after joining, whatever the rules above miss.
    if (!isInside(repoDir, snap)) throw new UserError(`${shown(file)} would lie outside the cache folder ${repoDir}`);
    return snap;
  }

  /**
   * Makes one file available in the cache and returns its snapshot path. A blob already present is reused
   * without any request; a partial `.incomplete` blob from an earlier attempt is resumed with an HTTP Range
   * request; the finished blob is verified (size, and sha256 or git oid) before it is renamed into place.
   */
  async download(repo: string, commit: string, file: HubFile, onProgress?: (p: DownloadProgress) => void, repoType: RepoType = 'dataset'): Promise<string> {
    this.checkFile(repo, repoType, file);
    const snap = this.snapshotPath(repo, commit, file.path, repoType);
    const blobId = file.sha256 ?? file.gitOid;
    if (!blobId) {
      // Listed from the cache (offline): the snapshot entry is all there is.
      if (existsSync(snap)) {
        onProgress?.({ file: file.path, received: file.size, total: file.size, resumedFrom: 0, done: true, cached: true });
        return snap;
      }
      throw new UserError(`${file.path} of '${repo}' is missing from the cache`, 'run again with network access');
    }
    const blob = path.join(this.repoCacheDir(repo, repoType), 'blobs', blobId);
    const st = await fs.stat(blob).catch(() => undefined);
    if (st?.isFile() && st.size === file.size) {
      await linkSnapshot(blob, snap);
      onProgress?.({ file: file.path, received: file.size, total: file.size, resumedFrom: 0, done: true, cached: true });
      return snap;
    }
    if (this.config.offline) throw new UserError(`${file.path} of '${repo}' is not in the cache and HF_HUB_OFFLINE is set`, 'unset HF_HUB_OFFLINE to download it');
    const url = `${this.config.endpoint}${REPO_KIND[repoType].resolvePrefix}/${repo}/resolve/${commit}/${file.path.split('/').map(encodeURIComponent).join('/')}`;
    await fs.mkdir(path.dirname(blob), { recursive: true });
    await this.fetchToFile(url, repo, file, `${blob}.incomplete`, onProgress, repoType);
    await verifyBlob(`${blob}.incomplete`, file);
    await fs.rename(`${blob}.incomplete`, blob);
    await linkSnapshot(blob, snap);
    return snap;
  }

  private async fetchToFile(url: string, repo: string, file: HubFile, partial: string, onProgress?: (p: DownloadProgress) => void, repoType: RepoType = 'dataset'): Promise<void> {
    let failures = 0;
    let lastError: unknown;
    const startSize = (await fs.stat(partial).catch(() => undefined))?.size ?? 0;
    const resumedFrom = startSize <= file.size ? startSize : 0;
    for (;;) {
      let have = (await fs.stat(partial).catch(() => undefined))?.size ?? 0;
      if (have > file.size) {
        // Longer than the file can be: not a prefix of it. Start over.
        await fs.rm(partial, { force: true });
        have = 0;
      }
      if (have === file.size) return;
      if (failures > this.config.maxRetries) {
        const detail = (lastError as { cause?: { message?: string } })?.cause?.message ?? (lastError as Error)?.message ?? String(lastError);
        throw new HubNetworkError(
          `downloading ${file.path} of '${repo}' from ${this.config.endpoint} failed ${failures} times in a row (${detail}); ${have} of ${file.size} bytes are kept in ${partial}`,
          'run the same command again to resume where it stopped',
        );
      }
      if (failures > 0) await sleep(Math.min(10_000, this.config.retryDelayMs * 2 ** (failures - 1)));
      let res: Response;
      try {
        res = await this.fetchHub(url, repo, `downloading ${file.path}`, have > 0 ? { range: `bytes=${have}-` } : {}, repoType);
      } catch (err) {
        if (!(err instanceof HubNetworkError)) throw err;
        failures++;
        lastError = err;
        continue;
      }
      if (res.status === 416) {
        // The server has no bytes past `have`: our partial file does not match the remote file. Start over.
        await res.body?.cancel();
        await fs.rm(partial, { force: true });
        failures++;
        continue;
      }
      // 200 to a ranged request means the server ignored the Range header: the body starts at byte 0.
      const append = have > 0 && res.status === 206;
      if (!append) have = 0;
      const handle = await openForWrite(partial, append ? 'append' : 'truncate', 'partial download');
      let received = have;
      let progressed = false;
      try {
        onProgress?.({ file: file.path, received, total: file.size, resumedFrom, done: false, cached: false });
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          await handle.write(chunk);
          received += chunk.byteLength;
          progressed = true;
          // More than the listing said: stop reading (an endless body must not fill the disk); refused below.
          if (received > file.size) break;
          onProgress?.({ file: file.path, received, total: file.size, resumedFrom, done: false, cached: false });
        }
        await handle.sync();
      } catch (err) {
        // A connection cut mid-body: keep what arrived and resume from there.
        lastError = err;
        failures = progressed ? 1 : failures + 1;
        continue;
      } finally {
        await handle.close();
      }
      if (received > file.size) {
        // The server's file is not the one the listing described (changed between listing and download).
        await fs.rm(partial, { force: true });
        throw new UserError(`${file.path} of '${repo}' is larger than the Hub listed (${received} > ${file.size} bytes)`, 'run the command again');
      }
      if (received < file.size) {
        lastError = new Error(`connection closed after ${received} of ${file.size} bytes`);
        failures = progressed ? 1 : failures + 1;
        continue;
      }
      onProgress?.({ file: file.path, received, total: file.size, resumedFrom, done: true, cached: false });
    }
  }
}

/** Checks a finished download against the size and hash the Hub listed; a mismatch deletes it. */
async function verifyBlob(file: string, expected: HubFile): Promise<void> {
  const st = await fs.stat(file);
  let ok = st.size === expected.size;
  let what = `size ${st.size}, expected ${expected.size}`;
  if (ok && expected.sha256) {
    const got = await hashFile(file, 'sha256');
    ok = got === expected.sha256;
    what = `sha256 ${got}, expected ${expected.sha256}`;
  } else if (ok && expected.gitOid) {
    // Small non-LFS files are identified by their git blob id: sha1 over a "blob <size>\0" header + content.
    const got = await hashFile(file, 'sha1', `blob ${st.size}\0`);
    ok = got === expected.gitOid;
    what = `git oid ${got}, expected ${expected.gitOid}`;
  }
  if (!ok) {
    await fs.rm(file, { force: true });
    throw new UserError(`downloaded ${expected.path} is corrupt (${what}); the partial file was deleted`, 'run the command again to download it afresh');
  }
}

async function hashFile(file: string, algo: string, prefix?: string): Promise<string> {
  const h = createHash(algo);
  if (prefix) h.update(prefix);
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** snapshots/{commit}/{path} → ../../blobs/{id} as a relative symlink (a copy where symlinks are refused). */
async function linkSnapshot(blob: string, snap: string): Promise<void> {
  await fs.mkdir(path.dirname(snap), { recursive: true });
  const target = path.relative(path.dirname(snap), blob);
  try {
    if ((await fs.readlink(snap)) === target) return;
  } catch {
    // Not a link yet (or a copy): replace it below.
  }
  await fs.rm(snap, { force: true });
  try {
    await fs.symlink(target, snap);
  } catch {
    await fs.copyFile(blob, snap);
  }
}

/** The body as text, or undefined (and the rest left unread) once it passes `maxBytes`. */
async function boundedText(res: Response, maxBytes: number): Promise<string | undefined> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of (res.body ?? []) as AsyncIterable<Uint8Array>) {
    total += chunk.byteLength;
    if (total > maxBytes) return undefined; // leaving the loop cancels the stream
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, total).toString('utf8');
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** The split a Parquet path belongs to by the Hub's naming conventions, or '' if it names none. */
export function guessSplit(p: string): string {
  const parts = p.replace(/\.parquet$/, '').split('/');
  const base = parts.pop() ?? '';
  // {config}/{split}/0000.parquet (the conversion branch) or data/{split}/... : a directory named for the split.
  for (const d of parts) if (KNOWN_SPLITS.includes(d)) return d;
  // data/train-00000-of-00004.parquet, plain_text/openwebtext-train.parquet: the split is a word of the name.
  for (const w of base.split(/[-_.]/)) if (KNOWN_SPLITS.includes(w)) return w;
  return '';
}

/**
 * The Parquet files of one split, in path order (which is row order for sharded names). Files that name no
 * split at all are the train split, as the `datasets` library treats them. When files of several configs
 * match, `config` chooses (default: 'default', else the first in name order).
 */
export function selectParquetFiles(files: HubFile[], split: string, config?: string): HubFile[] {
  const parquet = files.filter((f) => f.path.endsWith('.parquet'));
  let matched = parquet.filter((f) => guessSplit(f.path) === split || (!KNOWN_SPLITS.includes(split) && f.path.split('/').slice(0, -1).includes(split)));
  if (matched.length === 0 && split === 'train' && parquet.every((f) => guessSplit(f.path) === '')) matched = parquet;
  const configs = [...new Set(matched.map((f) => (f.path.includes('/') ? f.path.split('/')[0]! : '')))].sort();
  const chosen = config ?? (configs.length > 1 ? (configs.includes('default') ? 'default' : configs[0]!) : undefined);
  if (chosen !== undefined && configs.includes(chosen)) matched = matched.filter((f) => f.path.split('/')[0] === chosen);
  return matched.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}
