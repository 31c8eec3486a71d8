import type { PrepareProgress } from './prepare.js';
import { formatBytes, formatCount, formatShortDuration } from '../util/format.js';

/**
 * How far the run is, 0..1, or undefined when the source's size is unknown. Documents when the source knows its
 * count (Parquet row counts, one document per text file): exact. Else text bytes against the source's file sizes,
 * which is only a guide — a Parquet file's text is larger than its compressed size, an Alpaca template adds text —
 * so it is held below 100% until the run is really done.
 */
export function progressFraction(p: PrepareProgress): number | undefined {
  if (p.done) return 1;
  if (p.estimatedDocuments && p.estimatedDocuments > 0) return Math.min(0.999, p.documents / p.estimatedDocuments);
  if (p.estimatedBytes && p.estimatedBytes > 0) return Math.min(0.999, p.bytes / p.estimatedBytes);
  return undefined;
}

/** One status line: documents, MB, MB/s, tokens and (when the source's size is known) percent and ETA. */
export function formatProgress(p: PrepareProgress): string {
  const rate = p.elapsedS > 0 ? p.bytes / 1e6 / p.elapsedS : 0;
  const parts = [`${formatCount(p.documents)} docs`, formatBytes(p.bytes), `${rate.toFixed(1)} MB/s`, `${formatCount(p.tokens)} tokens`];
  const frac = progressFraction(p);
  if (frac !== undefined) {
    const eta = frac > 0 ? (p.elapsedS * (1 - frac)) / frac : NaN;
    parts.unshift(`${(Math.floor(frac * 1000) / 10).toFixed(1).padStart(5)}%`);
    parts.push(p.done ? `done in ${formatShortDuration(p.elapsedS)}` : `ETA ${formatShortDuration(eta)}`);
  } else {
    parts.push(p.done ? `done in ${formatShortDuration(p.elapsedS)}` : `${formatShortDuration(p.elapsedS)} elapsed`);
  }
  return parts.join(' | ');
}

function bar(frac: number, width = 24): string {
  const full = Math.round(Math.min(1, Math.max(0, frac)) * width);
  return `[${'#'.repeat(full)}${'.'.repeat(width - full)}]`;
}

/**
 * A progress reporter for prepareDataset: a redrawn bar on a TTY (at most 10 redraws a second), and on anything
 * else (CI logs, files) a plain line every `intervalS` seconds plus a final one, so logs stay readable.
 */
export function progressReporter(
  stream: NodeJS.WriteStream = process.stderr,
  opts: { tty?: boolean; intervalS?: number } = {},
): (p: PrepareProgress) => void {
  const tty = opts.tty ?? Boolean(stream.isTTY);
  const interval = (opts.intervalS ?? (tty ? 0.1 : 10)) * 1000;
  let last = -Infinity;
  return (p) => {
    const now = performance.now();
    if (!p.done && now - last < interval) return;
    last = now;
    const line = formatProgress(p);
    if (tty) {
      const frac = progressFraction(p);
      const text = `${frac !== undefined ? bar(frac) + ' ' : ''}${line}`;
      stream.write(`\r${text}\x1b[K${p.done ? '\n' : ''}`);
    } else {
      stream.write(`tokenize: ${line}\n`);
    }
  };
}
