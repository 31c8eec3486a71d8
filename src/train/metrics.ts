// Training output: human lines on stderr and machine-readable JSON lines in <out_dir>/metrics.jsonl.
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';

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
    if (this.file) appendFileSync(this.file, JSON.stringify({ time: new Date().toISOString(), ...record }) + '\n');
  }
}

export function formatDuration(ms: number): string {
  const s = Math.floor(ms / 1000);
  const hh = String(Math.floor(s / 3600)).padStart(2, '0');
  const mm = String(Math.floor((s % 3600) / 60)).padStart(2, '0');
  const ss = String(s % 60).padStart(2, '0');
  return `${hh}:${mm}:${ss}`;
}

export function formatCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
  return String(n);
}
