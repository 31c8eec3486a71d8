import { createHash } from 'node:crypto';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { parquetWriteBuffer } from 'hyparquet-writer';

/**
 * A local stand-in for the Hugging Face Hub, serving the three endpoints the client uses with the Hub's shapes:
 *   GET /api/datasets/{repo}/revision/{rev}              → { id, sha }
 *   GET /api/datasets/{repo}/tree/{rev}?recursive=true   → [{ type, path, size, oid, lfs? }], paginated by Link
 *   GET /datasets/{repo}/resolve/{rev}/{path}            → the bytes, honouring Range
 * Model repos (`type: 'model'`) are served the same way under /api/models/{repo}/... and /{repo}/resolve/...
 * It records every request, can require a token (a gated repo), and can cut a download mid-file.
 */

export interface FixtureRevision {
  files: Record<string, Uint8Array>;
}

export interface FixtureRepo {
  /** Dataset (the default) or model repo: decides which URL prefixes reach it. */
  type?: 'dataset' | 'model';
  /** Revisions by name (main, refs/convert/parquet); each gets a made-up 40-hex commit. */
  revisions: Record<string, FixtureRevision>;
  /** If set, every request for this repo needs `Authorization: Bearer <token>`. */
  token?: string;
}

export interface RecordedRequest {
  url: string;
  range?: string;
  authorization?: string;
}

export interface HubServer {
  endpoint: string;
  requests: RecordedRequest[];
  /** Commit hash of a fixture revision. */
  commitOf(repo: string, revision: string): string;
  /** The next download whose path contains `match` sends only `afterBytes` bytes, then drops the connection. */
  cutNext(match: string, afterBytes: number): void;
  close(): Promise<void>;
}

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export function gitOid(bytes: Uint8Array): string {
  return createHash('sha1').update(`blob ${bytes.byteLength}\0`).update(bytes).digest('hex');
}

/** A real Parquet file (snappy, as the Hub's are) with a `text` and an `id` column. */
export function makeParquet(texts: (string | null)[], rowGroupSize = 1000): Uint8Array {
  const buf = parquetWriteBuffer({
    columnData: [
      { name: 'id', data: Int32Array.from(texts.map((_, i) => i)), type: 'INT32' },
      { name: 'text', data: texts, type: 'STRING' },
    ],
    rowGroupSize,
  });
  return new Uint8Array(buf);
}

export async function startHubServer(repos: Record<string, FixtureRepo>, opts: { pageSize?: number } = {}): Promise<HubServer> {
  const pageSize = opts.pageSize ?? 1000;
  const requests: RecordedRequest[] = [];
  const cuts: { match: string; afterBytes: number }[] = [];
  const commitOf = (repo: string, revision: string): string => createHash('sha1').update(`${repo}@${revision}`).digest('hex');

  // Find a revision by name or by its commit hash.
  const lookup = (repo: FixtureRepo, repoName: string, rev: string): FixtureRevision | undefined => {
    for (const [name, r] of Object.entries(repo.revisions)) if (name === rev || commitOf(repoName, name) === rev) return r;
    return undefined;
  };

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    requests.push({ url: url.pathname + url.search, range: req.headers.range, authorization: req.headers.authorization });
    const send = (status: number, body: unknown, headers: Record<string, string> = {}): void => {
      res.writeHead(status, { 'content-type': 'application/json', ...headers });
      res.end(JSON.stringify(body));
    };
    // Path segments stay percent-encoded until split, so an encoded ref (refs%2Fconvert%2Fparquet) is one segment.
    const seg = url.pathname.split('/').slice(1).map(decodeURIComponent);
    const api = seg[0] === 'api' && (seg[1] === 'datasets' || seg[1] === 'models');
    const dl = seg[0] === 'datasets' && seg[3] === 'resolve';
    // Model downloads carry no type prefix: /{owner}/{name}/resolve/{rev}/{path}.
    const modelDl = !api && !dl && seg[0] !== 'api' && seg[0] !== 'datasets' && seg[2] === 'resolve';
    if (!api && !dl && !modelDl) return send(404, { error: 'no such route' });
    const wantType = (api ? seg[1] === 'models' : modelDl) ? 'model' : 'dataset';
    if (modelDl) seg.unshift('models'); // align the segments with the dataset download route below
    const repoName = api ? `${seg[2]}/${seg[3]}` : `${seg[1]}/${seg[2]}`;
    const repo = repos[repoName];
    if (!repo || (repo.type ?? 'dataset') !== wantType) return send(404, { error: 'Repository not found' }, { 'x-error-code': 'RepoNotFound' });
    if (repo.token && req.headers.authorization !== `Bearer ${repo.token}`) {
      return send(401, { error: 'Access to dataset is restricted. You must have access to it and be authenticated to access it.' }, { 'x-error-code': 'GatedRepo' });
    }
    if (api) {
      const kind = seg[4];
      const rev = seg[5] ?? '';
      const r = lookup(repo, repoName, rev);
      if (!r) return send(404, { error: 'Invalid rev id' }, { 'x-error-code': 'RevisionNotFound' });
      const revName = Object.keys(repo.revisions).find((n) => repo.revisions[n] === r)!;
      if (kind === 'revision') return send(200, { id: repoName, sha: commitOf(repoName, revName) });
      if (kind === 'tree') {
        // Parquet and safetensors files are stored with Git LFS on the Hub, as real repos store them.
        const isLfs = (p: string): boolean => p.endsWith('.parquet') || p.endsWith('.safetensors');
        const entries = Object.entries(r.files)
          .sort(([a], [b]) => (a < b ? -1 : 1))
          .map(([p, bytes]) => ({
            type: 'file',
            path: p,
            size: isLfs(p) ? 134 : bytes.byteLength, // LFS files: the pointer's size, as the Hub reports
            oid: gitOid(bytes),
            ...(isLfs(p) ? { lfs: { oid: sha256(bytes), size: bytes.byteLength, pointerSize: 134 } } : {}),
          }));
        const dirs = [...new Set(entries.flatMap((e) => e.path.split('/').slice(0, -1).map((_, i, a) => a.slice(0, i + 1).join('/'))))];
        const all = [...dirs.map((d) => ({ type: 'directory', path: d, size: 0, oid: gitOid(new Uint8Array()) })), ...entries];
        const cursor = Number(url.searchParams.get('cursor') ?? 0);
        const page = all.slice(cursor, cursor + pageSize);
        const headers: Record<string, string> = {};
        if (cursor + pageSize < all.length) {
          const next = new URL(url.toString());
          next.searchParams.set('cursor', String(cursor + pageSize));
          headers.link = `<${next.pathname}${next.search}>; rel="next"`;
        }
        return send(200, page, headers);
      }
      return send(404, { error: 'no such route' });
    }
    const r = lookup(repo, repoName, seg[4] ?? '');
    const filePath = seg.slice(5).join('/');
    const bytes = r?.files[filePath];
    if (!bytes) return send(404, { error: 'Entry not found' }, { 'x-error-code': 'EntryNotFound' });
    let start = 0;
    let status = 200;
    const headers: Record<string, string> = { 'content-type': 'application/octet-stream', 'accept-ranges': 'bytes', etag: `"${sha256(bytes)}"` };
    const m = req.headers.range?.match(/^bytes=(\d+)-$/);
    if (m) {
      start = Number(m[1]);
      if (start >= bytes.byteLength) {
        res.writeHead(416, { 'content-range': `bytes */${bytes.byteLength}` });
        return res.end();
      }
      status = 206;
      headers['content-range'] = `bytes ${start}-${bytes.byteLength - 1}/${bytes.byteLength}`;
    }
    const body = bytes.subarray(start);
    headers['content-length'] = String(body.byteLength);
    const cutAt = cuts.findIndex((c) => filePath.includes(c.match));
    res.writeHead(status, headers);
    if (cutAt >= 0) {
      const { afterBytes } = cuts.splice(cutAt, 1)[0]!;
      // Send part of the promised body, then kill the socket: the client sees a truncated response.
      res.write(body.subarray(0, afterBytes), () => setTimeout(() => req.socket.destroy(), 20));
      return;
    }
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    requests,
    commitOf,
    cutNext: (match, afterBytes) => cuts.push({ match, afterBytes }),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** What a hostile (or broken) Hub answers, verbatim: no checking, no consistency between the answers. */
export interface HostileAnswers {
  /** The `sha` of every revision answer. */
  sha: unknown;
  /** The tree listing, sent as it is. */
  tree: unknown[];
  /** A Link header for the tree answer (a next page). */
  treeLink?: string;
  /** The bytes of every download, whatever path is asked for. */
  file: Uint8Array;
  /** Instead of `file`, send this chunk again and again until the client hangs up. */
  endless?: Uint8Array;
}

/** A server at HF_ENDPOINT that lies: it answers the revision, tree and download routes with `answers`. */
export async function startHostileHubServer(answers: HostileAnswers): Promise<{ endpoint: string; requests: string[]; close(): Promise<void> }> {
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    const url = req.url ?? '/';
    requests.push(url);
    if (url.startsWith('/api/')) {
      const isTree = /\/tree\//.test(url);
      res.writeHead(200, { 'content-type': 'application/json', ...(isTree && answers.treeLink ? { link: answers.treeLink } : {}) });
      res.end(JSON.stringify(isTree ? answers.tree : { id: 'x', sha: answers.sha }));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    if (!answers.endless) return res.end(answers.file);
    const chunk = answers.endless;
    const pump = (): void => {
      while (!res.destroyed && res.write(chunk));
      if (!res.destroyed) res.once('drain', pump);
    };
    res.on('close', () => res.removeAllListeners('drain'));
    pump();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
