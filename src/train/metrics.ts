// Training output: human lines on stderr and machine-readable JSON lines in <out_dir>/metrics.jsonl.
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { withPath } from '../util/system-errors.js';

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
    if (fresh) writeFileSync(this.file, '');
  }

  write(record: Record<string, unknown>): void {
    if (!this.file) return;
    try {
      appendFileSync(this.file, JSON.stringify({ time: new Date().toISOString(), ...record }) + '\n');
    } catch (err) {
      throw withPath(err, this.file); // a failed write(2) names no file
    }
  }
}
