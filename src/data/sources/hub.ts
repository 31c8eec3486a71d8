import { HubClient, type DownloadProgress, type HubConfig } from '../../io/hf-hub.js';
import { UserError } from '../../util/errors.js';
import { parquetColumnBytes, parquetColumns, parquetDocuments, parquetRowRanges, readParquetMetadata } from '../parquet.js';
import type { DocumentSource } from '../source.js';
import { formatBytes } from '../../util/format.js';

/** Short names for the datasets the original project used, so `--dataset openwebtext` just works. */
export const HUB_ALIASES: Readonly<Record<string, string>> = {
  'openwebtext-10k': 'Ankursingh/openwebtext_10K',
  openwebtext: 'Skylion007/openwebtext',
};

export interface HubDatasetOptions {
  /** `owner/name` on the Hub, or an alias from HUB_ALIASES. */
  dataset: string;
  /** Column holding the document text (default 'text'). */
  textColumn?: string;
  /** Split (default 'train'). */
  split?: string;
  /** Branch, tag or commit (default: main, falling back to the Hub's Parquet conversion). */
  revision?: string;
  /** Dataset config, when the Parquet conversion holds several (default: 'default' or the first). */
  config?: string;
  /** Human progress lines (downloads, cache use). */
  onProgress?: (msg: string) => void;
  /** Overrides of the environment-derived Hub settings (tests point this at a local server). */
  hub?: Partial<HubConfig>;
}

export function resolveHubAlias(dataset: string): string {
  const repo = HUB_ALIASES[dataset] ?? dataset;
  if (!/^[\w.-]+\/[\w.-]+$/.test(repo)) {
    throw new UserError(
      `'${dataset}' is not a Hugging Face dataset name`,
      `use owner/name (e.g. Skylion007/openwebtext) or one of: ${Object.keys(HUB_ALIASES).join(', ')}`,
    );
  }
  return repo;
}

/**
 * A Hub dataset as a document source. Opening it resolves the split's Parquet files and downloads whatever the
 * cache lacks (so a missing dataset, token or column fails here, before any work); documents() then streams
 * rows from the cached files, file by file, in name order.
 */
export async function openHubDataset(opts: HubDatasetOptions): Promise<DocumentSource> {
  const repo = resolveHubAlias(opts.dataset);
  const column = opts.textColumn ?? 'text';
  const split = opts.split ?? 'train';
  const say = opts.onProgress ?? (() => undefined);
  const client = new HubClient(opts.hub);
  const resolved = await client.resolveParquetFiles(repo, { split, revision: opts.revision, config: opts.config, onInfo: say });
  const total = resolved.files.reduce((s, f) => s + f.size, 0);
  say(`${repo} (${split}, ${resolved.revision} @ ${resolved.commit.slice(0, 10)}): ${resolved.files.length} Parquet file(s), ${formatBytes(total)}`);

  const local: { path: string; hubPath: string }[] = [];
  for (const [i, file] of resolved.files.entries()) {
    const label = `[${i + 1}/${resolved.files.length}] ${file.path}`;
    let lastReport = 0;
    const onFile = (p: DownloadProgress): void => {
      if (p.cached) return say(`${label}: in cache`);
      const now = Date.now();
      // Throttled: one line a second is plenty for logs, and a callback per network chunk would flood them.
      if (!p.done && now - lastReport < 1000) return;
      lastReport = now;
      const resumed = p.resumedFrom > 0 ? `, resumed at ${formatBytes(p.resumedFrom)}` : '';
      say(`${label}: ${p.done ? 'downloaded' : 'downloading'} ${formatBytes(p.received)} of ${formatBytes(p.total)}${resumed}`);
    };
    local.push({ path: await client.download(repo, resolved.commit, file, onFile), hubPath: file.path });
  }

  // Footers only (a few KB each): checks the column exists in every file now, and sizes the progress bar.
  let rows = 0;
  let bytes = 0;
  for (const f of local) {
    const meta = await readParquetMetadata(f.path);
    const cols = parquetColumns(meta);
    if (!cols.includes(column)) {
      throw new UserError(`dataset '${repo}' (${f.hubPath}) has no column '${column}'; its columns are: ${cols.join(', ')}`, 'choose the text column with --text_column');
    }
    rows += Number(meta.num_rows);
    bytes += parquetColumnBytes(meta, column);
  }

  return {
    describe: `Hugging Face dataset ${repo} (split ${split}, column ${column}, commit ${resolved.commit.slice(0, 10)})`,
    id: `hub:${repo}`,
    estimatedDocuments: rows,
    estimatedBytes: bytes,
    async *documents() {
      for (const f of local) yield* parquetDocuments(f.path, column, `hub:${repo}:${f.hubPath}`);
    },
    async *units() {
      for (const f of local) yield* await parquetRowRanges(f.path, column, `hub:${repo}:${f.hubPath}`);
    },
  };
}
