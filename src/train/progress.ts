// Where a training run stands: "iter 12/120 (10%, ETA 1m48s)" on every log line, and on a terminal a status line
// redrawn after every step (as `prepare` has), so a user sees progress between log intervals too.
import { formatShortDuration } from '../util/format.js';

/**
 * Progress of the optimizer steps this process runs: the ETA comes from the time per step since this process
 * started stepping (a resumed run does not count the steps another process took), evaluations and snapshots
 * included, which is what the remaining steps will cost too.
 */
export class RunProgress {
  readonly #firstIter: number;
  readonly #maxIters: number;
  readonly #startedMs: number;

  constructor(firstIter: number, maxIters: number, nowMs = performance.now()) {
    this.#firstIter = firstIter;
    this.#maxIters = maxIters;
    this.#startedMs = nowMs;
  }

  /** Seconds left at `iter`, or NaN before the first step of this process. */
  etaSeconds(iter: number, nowMs = performance.now()): number {
    const done = iter - this.#firstIter;
    if (done <= 0) return NaN;
    return (((nowMs - this.#startedMs) / 1000) * Math.max(0, this.#maxIters - iter)) / done;
  }

  /** "iter 12/120 (10%, ETA 1m48s)"; the last step says "done". */
  describe(iter: number, nowMs = performance.now()): string {
    const pct = this.#maxIters > 0 ? Math.floor((100 * iter) / this.#maxIters) : 100;
    const tail = iter >= this.#maxIters ? 'done' : `ETA ${formatShortDuration(this.etaSeconds(iter, nowMs))}`;
    return `iter ${iter}/${this.#maxIters} (${pct}%, ${tail})`;
  }
}

/**
 * A status line at the bottom of a terminal: `show` redraws it in place; `log` prints a normal line above it
 * (clearing, printing, redrawing), so interleaved log lines never end up glued to a half-drawn status. Disabled
 * (not a TTY: a log file, a pipe, `nanogpt launch`'s prefixed output) it only logs.
 */
export class StatusLine {
  #text = '';
  #lastDraw = -Infinity;

  constructor(
    private readonly stream: { write(s: string): unknown },
    readonly enabled: boolean,
    private readonly minIntervalMs = 100,
  ) {}

  show(text: string, nowMs = performance.now()): void {
    if (!this.enabled) return;
    this.#text = text;
    if (nowMs - this.#lastDraw < this.minIntervalMs) return;
    this.#lastDraw = nowMs;
    this.stream.write(`\r${text}\x1b[K`);
  }

  /** Wraps a line logger so that its lines print above the status line. */
  wrap(log: (line: string) => void): (line: string) => void {
    return (line) => {
      if (this.enabled && this.#text) this.stream.write('\r\x1b[K');
      log(line);
      if (this.enabled && this.#text) this.stream.write(`\r${this.#text}\x1b[K`);
    };
  }

  /** Clears the line for good (end of the run). */
  clear(): void {
    if (this.enabled && this.#text) this.stream.write('\r\x1b[K');
    this.#text = '';
  }
}
