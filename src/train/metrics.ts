// Training output: human lines on stderr and machine-readable JSON lines in <out_dir>/metrics.jsonl, with the views
// that follow it: <out_dir>/tensorboard/ event files and the live report.html / loss.png.
import { closeSync, mkdirSync, writeSync } from 'node:fs';
import * as path from 'node:path';
import { withPath } from '../util/system-errors.js';
import { openForWriteSync } from '../io/no-follow.js';
import { TensorBoardLog } from '../report/tensorboard.js';
import { writeReportSync } from '../report/write-report.js';

/** Seconds between reloads of report.html in a browser while the run goes (see HtmlOptions.refreshSeconds). */
export const LIVE_REPORT_REFRESH_S = 30;

/**
 * What else follows metrics.jsonl as it grows (rank 0 only): TensorBoard events for every logged step and
 * evaluation, and report.html + loss.png rewritten at each evaluation (synchronously, between two steps, so an
 * older report can never land after the final one). Both are conveniences: the first failure of each is logged
 * once and that view stops; training goes on.
 */
class RunViews {
  private tb: TensorBoardLog | null;
  private report = true;

  constructor(private readonly outDir: string) {
    this.tb = new TensorBoardLog(path.join(outDir, 'tensorboard'));
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
        writeReportSync(this.outDir, { refreshSeconds: LIVE_REPORT_REFRESH_S });
      } catch (err) {
        process.stderr.write(`warning: report.html is no longer rewritten at each evaluation (${(err as Error).message.split('\n')[0]}); nanogpt report ${this.outDir} writes it\n`);
        this.report = false;
      }
    }
  }
}

export class MetricsLog {
  readonly file: string | null;

  /** `file` null: this process does not write metrics (ranks other than 0). */
  constructor(outDir: string | null, fresh: boolean) {
    if (outDir === null) {
      this.file = null;
      return;
    }
    mkdirSync(outDir, { recursive: true });
    this.file = path.join(outDir, 'metrics.jsonl');
    // Opened without following a symbolic link, each time: a link planted at metrics.jsonl is refused, not written
    // through (the run would truncate the file it points to).
    if (fresh) closeSync(openForWriteSync(this.file, 'truncate', 'metrics file'));
    this.views = new RunViews(outDir);
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
