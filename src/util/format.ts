// Human-readable figures and values for logs, reports and messages.

/** Milliseconds as hh:mm:ss (the original's "Total time taken" format). */
export function formatDuration(ms: number): string {
  const s = Math.floor(ms / 1000);
  const hh = String(Math.floor(s / 3600)).padStart(2, '0');
  const mm = String(Math.floor((s % 3600) / 60)).padStart(2, '0');
  const ss = String(s % 60).padStart(2, '0');
  return `${hh}:${mm}:${ss}`;
}

/** Seconds as 45s, 3m07s, 2h05m: for ETAs and elapsed times in progress lines; '?' when unknown. */
export function formatShortDuration(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '?';
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = Math.floor(s % 60);
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : m > 0 ? `${m}m${String(sec).padStart(2, '0')}s` : `${sec}s`;
}

/** A count with a k / M / B suffix: 124.44M parameters, 2.07M tokens. */
export function formatCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
  return String(n);
}

/**
 * Bytes with the unit that keeps 2–4 significant digits (decimal units, as disks and S3 count): 512 bytes,
 * 3.4 kB, 12.5 MB, 1.52 GB — never "0.0 MB" for a small file.
 */
export function formatBytes(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} GB`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} MB`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} kB`;
  return plural(n, 'byte');
}

/** `1 thread`, `2 threads`: the count and the word, singular only for exactly one. */
export function plural(n: number, word: string, many = `${word}s`): string {
  return `${n} ${n === 1 ? word : many}`;
}

/** A word and the items it names: "rank 2", "ranks 0, 3" (plural for any count but one). */
export function named(word: string, items: readonly (number | string)[], many = `${word}s`): string {
  return `${items.length === 1 ? word : many} ${items.join(', ')}`;
}

/** A value as a message shows it: JSON, cut short, with the kinds JSON cannot show named. */
export function describeValue(v: unknown): string {
  if (v === undefined) return 'missing';
  if (typeof v === 'number' && !Number.isFinite(v)) return Number.isNaN(v) ? 'NaN' : v > 0 ? 'infinity' : '-infinity';
  const kind = v === null ? '' : Array.isArray(v) ? 'an array ' : typeof v === 'object' ? 'an object ' : typeof v === 'string' ? 'the string ' : '';
  const text = JSON.stringify(v) ?? String(v);
  return kind + (text.length > 60 ? `${text.slice(0, 60)}...` : text);
}

/** What a file that is not a regular one is, for messages ("… is a FIFO (named pipe), not a token file"). */
export function fileKind(st: { isFIFO(): boolean; isDirectory(): boolean; isCharacterDevice(): boolean; isBlockDevice(): boolean; isSocket(): boolean }): string {
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isDirectory()) return 'a directory';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}
