// `nanogpt report --watch`: keeps report.html and loss.png in step with a run's metrics.jsonl while it grows.
// Polls the file's stat (size, mtime, inode) rather than using fs.watch: it works the same on network file systems
// and for a file that does not exist yet, and at most one report is drawn per interval however fast lines arrive.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { isUserError } from '../util/errors.js';
import { METRICS_FILE, writeReport, type ReportResult } from './write-report.js';

export interface WatchOptions {
  /** Milliseconds between two looks at metrics.jsonl. */
  intervalMs: number;
  /** The page's reload period while the run goes (HtmlOptions.refreshSeconds). */
  refreshSeconds: number;
  /** Aborting stops the watch after the write in progress, if any (a report file is never left half-written). */
  signal: AbortSignal;
  log: (line: string) => void;
}

export interface WatchResult {
  /** Reports written. */
  writes: number;
  /** Why the watch ended: the run wrote its end record, or the signal was aborted. */
  reason: 'ended' | 'stopped';
  last: ReportResult | null;
}

const stamp = async (file: string): Promise<string | null> => {
  try {
    const st = await fs.stat(file);
    return `${st.ino}:${st.size}:${st.mtimeMs}`;
  } catch {
    return null;
  }
};

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

/** Redraws the report whenever metrics.jsonl changes, until the run's end record is in or `signal` aborts. */
export async function watchReport(outDir: string, opts: WatchOptions): Promise<WatchResult> {
  const file = path.join(outDir, METRICS_FILE);
  let seen: string | null = null;
  let writes = 0;
  let last: ReportResult | null = null;
  let waitingSaid = false;
  while (!opts.signal.aborted) {
    const now = await stamp(file);
    if (now === null && !waitingSaid) {
      opts.log(`waiting for ${file} (the run has not logged yet)`);
      waitingSaid = true;
    }
    if (now !== null && now !== seen) {
      seen = now;
      try {
        last = await writeReport(outDir, { refreshSeconds: opts.refreshSeconds });
        writes++;
        if (last.ended) return { writes, reason: 'ended', last };
      } catch (err) {
        // A file with no complete record yet (the run just started) is worth waiting on; anything else is not.
        if (!(isUserError(err) && /holds no metrics record/.test(err.problem))) throw err;
      }
    }
    await sleep(opts.intervalMs, opts.signal);
  }
  return { writes, reason: 'stopped', last };
}
