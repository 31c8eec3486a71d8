// Training output: human lines on stderr and machine-readable JSON lines in <out_dir>/metrics.jsonl.
import { closeSync, mkdirSync, writeSync } from 'node:fs';
import * as path from 'node:path';
import { withPath } from '../util/system-errors.js';
import { openForWriteSync } from '../io/no-follow.js';

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
  }

  write(record: Record<string, unknown>): void {
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
