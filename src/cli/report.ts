import { UserError } from '../util/errors.js';
import { flagBoolean, flagNumber, flagString, parseArgs } from './args.js';
import type { Command } from './command.js';

const DEFAULT_INTERVAL_S = 5;

const HELP = `nanogpt report — (re)generate the run report from a run directory's metrics.jsonl

Usage: nanogpt report <out_dir> [--watch [--interval SECONDS]]
       nanogpt report --out_dir DIR

Reads <out_dir>/metrics.jsonl (written by \`nanogpt train\`) and writes beside it:
  report.html   a self-contained page (no scripts, fonts or network): loss curves (train loss per logged step,
                train/val loss at each evaluation), gradient norm, learning rate, tokens/s, final figures (best
                and last losses, tokens, wall time, mean tokens/s), samples recorded with
                \`nanogpt sample --record\`, environment and the full configuration
  loss.png      the page's loss chart as a 1520x600 image (title, train loss line, eval points)
Training rewrites report.html at every evaluation (loss.png at most once a minute; the page reloads
itself every 30 s until the run ends) and both at the end of every run; it also writes TensorBoard event
files to <out_dir>/tensorboard/ (tensorboard --logdir <out_dir>). Use this command for a run that was
interrupted or trained by an older version, or with --watch to follow a run. Malformed lines (e.g. a line cut short by a crash) are skipped and
counted in the report; a resumed run's records are merged into one history.

Options:
  --out_dir DIR         the run directory (the same as the positional argument)
  --watch               keep the report up to date: redraw it whenever metrics.jsonl changes (at most once per
                        interval; waits for a run that has not logged yet), the page reloading itself; ends when
                        the run writes its end record, or on Ctrl-C
  --interval SECONDS    how often --watch looks at metrics.jsonl (default ${DEFAULT_INTERVAL_S}, from 0.2 to 3600)

Examples:
  nanogpt report out
  nanogpt report --out_dir runs/shakespeare && xdg-open runs/shakespeare/report.html
  nanogpt report out --watch &    # then open out/report.html while nanogpt train --out_dir out runs
`;

export const reportCommand: Command = {
  name: 'report',
  summary: 'write report.html and loss.png for a run directory from its metrics.jsonl',
  help: HELP,
  async run(argv) {
    const args = parseArgs(argv, { values: ['out_dir', 'interval'], booleans: ['watch'] }, 'report');
    const watch = flagBoolean(args, 'watch');
    if (!watch && args.flags.has('interval')) throw new UserError('--interval only applies to --watch', 'add --watch, or drop --interval');
    const intervalS = flagNumber(args, 'interval', DEFAULT_INTERVAL_S, { min: 0.2, max: 3600 });
    const flag = flagString(args, 'out_dir');
    if (args.positionals.length > 1 || (flag !== undefined && args.positionals.length)) {
      throw new UserError(`expected one run directory, got ${[...(flag !== undefined ? [flag] : []), ...args.positionals].join(', ')}`, 'nanogpt report <out_dir> (see --help)');
    }
    const outDir = flag ?? args.positionals[0];
    if (!outDir) throw new UserError('no run directory given', 'nanogpt report <out_dir>, e.g. nanogpt report out (see --help)');
    if (outDir.startsWith('s3://')) throw new UserError(`${outDir} is not a local folder`, 'download the run directory first, then nanogpt report <local dir>');
    if (watch) return watchCommand(outDir, intervalS);
    const { writeReport } = await import('../report/write-report.js');
    const r = await writeReport(outDir);
    if (r.malformed) process.stderr.write(`warning: skipped ${r.malformed} malformed line(s) in metrics.jsonl (listed in the report)\n`);
    process.stderr.write(`wrote ${r.html}\nwrote ${r.png}\n`);
    return 0;
  },
};

/** --watch: redraws until the run ends or Ctrl-C (SIGINT) / SIGTERM, then exits 0 with the last report in place. */
async function watchCommand(outDir: string, intervalS: number): Promise<number> {
  const { watchReport } = await import('../report/watch.js');
  const stop = new AbortController();
  const onSignal = (): void => stop.abort();
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const log = (line: string): void => {
    process.stderr.write(line + '\n');
  };
  log(`watching ${outDir}/metrics.jsonl every ${intervalS} s; Ctrl-C stops`);
  try {
    // The page reloads a little slower than the file is looked at, so a reload usually finds a new report.
    const r = await watchReport(outDir, { intervalMs: intervalS * 1000, refreshSeconds: Math.max(5, Math.ceil(intervalS * 2)), signal: stop.signal, log });
    if (r.last?.malformed) log(`warning: skipped ${r.last.malformed} malformed line(s) in metrics.jsonl (listed in the report)`);
    const where = r.last ? `${r.last.html} and ${r.last.png}` : 'no report (the run never logged a record)';
    log(r.reason === 'ended' ? `the run has ended; final report: ${where} (${r.writes} written)` : `stopped watching; last report: ${where} (${r.writes} written)`);
    return 0;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
