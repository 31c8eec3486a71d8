// Training output: human lines on stderr and machine-readable JSON lines in <out_dir>/metrics.jsonl, with the views
// that follow it: <out_dir>/tensorboard/ event files and the live report.html / loss.png.
import { closeSync, mkdirSync, writeSync } from 'node:fs';
import * as path from 'node:path';
import { withPath } from '../util/system-errors.js';
import { openForWriteSync } from '../io/no-follow.js';
import { TensorBoardLog } from '../report/tensorboard.js';
import { writeReportSync } from '../report/write-report.js';

/** The run's TensorBoard event files live in <out_dir>/tensorboard (tensorboard --logdir <out_dir> finds them). */
export const TENSORBOARD_DIR = 'tensorboard';

/** Seconds between reloads of report.html in a browser while the run goes (see HtmlOptions.refreshSeconds). */
export const LIVE_REPORT_REFRESH_S = 30;

/**
 * Least time between two loss.png redraws during a run. report.html is redrawn at every evaluation (tens of ms);
 * the PNG costs ~150 ms more on 2 cores (docs/benchmarks.md), worth it once a minute, not at every evaluation of
 * a short run: the report written at the end always has a fresh one.
 */
export const LIVE_PNG_INTERVAL_MS = 60_000;

/**
 * What else follows metrics.jsonl as it grows (rank 0 only): TensorBoard events for every logged step and
 * evaluation, and report.html rewritten at each evaluation (synchronously, between two steps, so an older report
 * can never land after the final one), loss.png with it at most once per LIVE_PNG_INTERVAL_MS. Both are
 * conveniences: the first failure of each is logged once and that view stops; training goes on.
 */
class RunViews {
  private tb: TensorBoardLog | null;
  private report = true;
  private lastPng = Date.now(); // the session's start: its first evaluation (often step 0) has no curve to draw

  constructor(
    private readonly outDir: string,
    private readonly pngIntervalMs: number,
  ) {
    this.tb = new TensorBoardLog(path.join(outDir, TENSORBOARD_DIR));
  }

  update(record: Record<string, unknown>): void {
    if (this.tb) {
      try {
        this.tb.write(record);
      } catch (err) {
        process.stderr.write(`warning: TensorBoard events no longer written (${(err as Error).message})\n`);
        this.tb = null;
      }
    }
    if (this.report && record.type === 'eval') {
      try {
        const png = Date.now() - this.lastPng >= this.pngIntervalMs;
        writeReportSync(this.outDir, { refreshSeconds: LIVE_REPORT_REFRESH_S, png });
        if (png) this.lastPng = Date.now();
      } catch (err) {
        process.stderr.write(`warning: report.html is no longer rewritten at each evaluation (${(err as Error).message.split('\n')[0]}); nanogpt report ${this.outDir} writes it\n`);
        this.report = false;
      }
    }
  }
}

export class MetricsLog {
  readonly file: string | null;

  /**
   * `file` null: this process does not write metrics (ranks other than 0). `livePngIntervalMs`: see
   * LIVE_PNG_INTERVAL_MS (0 redraws loss.png at every evaluation).
   */
  constructor(outDir: string | null, fresh: boolean, livePngIntervalMs = LIVE_PNG_INTERVAL_MS) {
    if (outDir === null) {
      this.file = null;
      return;
    }
    mkdirSync(outDir, { recursive: true });
    this.file = path.join(outDir, 'metrics.jsonl');
    // Opened without following a symbolic link, each time: a link planted at metrics.jsonl is refused, not written
    // through (the run would truncate the file it points to).
    if (fresh) closeSync(openForWriteSync(this.file, 'truncate', 'metrics file'));
    this.views = new RunViews(outDir, livePngIntervalMs);
  }

  private views: RunViews | null = null;

  write(record: Record<string, unknown>): void {
    if (!this.file) return;
    this.append(record);
    this.views?.update(record);
  }

  private append(record: Record<string, unknown>): void {
    if (!this.file) return;
    const fd = openForWriteSync(this.file, 'append', 'metrics file');
    try {
      writeSync(fd, JSON.stringify({ time: new Date().toISOString(), ...record }) + '\n');
    } catch (err) {
      throw withPath(err, this.file); // a failed write(2) names no file
    } finally {
      closeSync(fd);
    }
  }
}
