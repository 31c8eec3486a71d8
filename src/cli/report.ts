import { UserError } from '../util/errors.js';
import { flagString, parseArgs } from './args.js';
import type { Command } from './command.js';

const HELP = `nanogpt report — (re)generate the run report from a run directory's metrics.jsonl

Usage: nanogpt report <out_dir>
       nanogpt report --out_dir DIR

Reads <out_dir>/metrics.jsonl (written by \`nanogpt train\`) and writes beside it:
  report.html   a self-contained page (no scripts, fonts or network): loss curves (train loss per logged step,
                train/val loss at each evaluation), learning rate, tokens/s, final figures (best and last
                losses, tokens, wall time, mean tokens/s), environment and the full configuration
  loss.png      the loss curves as an 800x450 image (train loss line, val loss dots)
Training writes both at the end of every run; use this command for a run that is still going, was
interrupted, or was trained by an older version. Malformed lines (e.g. a line cut short by a crash) are
skipped and counted in the report; a resumed run's records are merged into one history.

Options:
  --out_dir DIR   the run directory (the same as the positional argument)

Examples:
  nanogpt report out
  nanogpt report --out_dir runs/shakespeare && xdg-open runs/shakespeare/report.html
`;

export const reportCommand: Command = {
  name: 'report',
  summary: 'write report.html and loss.png for a run directory from its metrics.jsonl',
  help: HELP,
  async run(argv) {
    const args = parseArgs(argv, { values: ['out_dir'] }, 'report');
    const flag = flagString(args, 'out_dir');
    if (args.positionals.length > 1 || (flag !== undefined && args.positionals.length)) {
      throw new UserError(`expected one run directory, got ${[...(flag !== undefined ? [flag] : []), ...args.positionals].join(', ')}`, 'nanogpt report <out_dir> (see --help)');
    }
    const outDir = flag ?? args.positionals[0];
    if (!outDir) throw new UserError('no run directory given', 'nanogpt report <out_dir>, e.g. nanogpt report out (see --help)');
    if (outDir.startsWith('s3://')) throw new UserError(`${outDir} is not a local folder`, 'download the run directory first, then nanogpt report <local dir>');
    const { writeReport } = await import('../report/write-report.js');
    const r = await writeReport(outDir);
    if (r.malformed) process.stderr.write(`warning: skipped ${r.malformed} malformed line(s) in metrics.jsonl (listed in the report)\n`);
    process.stderr.write(`wrote ${r.html}\nwrote ${r.png}\n`);
    return 0;
  },
};
