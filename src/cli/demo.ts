// `nanogpt demo`: the whole workflow on the embedded corpus, offline, in a few minutes on two cores —
// prepare → 2-rank data-parallel training of a small GPT → sampling → report. Each stage runs the same
// `nanogpt` command a user would type, printed before it runs.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from './command.js';
import { flagBoolean, flagNumber, flagString, parseArgs } from './args.js';
import { UserError } from '../util/errors.js';
import { readMetricsFile } from '../report/metrics-reader.js';

const HELP = `nanogpt demo — the whole workflow on the embedded corpus, offline

Usage: nanogpt demo [--out_dir DIR] [--nproc N] [--max_iters N] [--keep]

Stages (each prints the exact command it runs):
  1. prepare   the State of the Union corpus (embedded) → DIR/data/train.bin, val.bin, meta.json
  2. train     a gpt2-mini model (4 layers, 128 dims) with N data-parallel ranks (\`nanogpt launch\`)
  3. sample    text from the best checkpoint
  4. report    DIR/run/report.html and loss.png

Options:
  --out_dir DIR    where everything goes (default: demo)
  --nproc N        training ranks on this machine (default 2)
  --max_iters N    optimizer steps (default 120; about 2–3 minutes on 2 cores)
  --keep           keep an existing DIR/run (resume) instead of starting fresh

Example:
  nanogpt demo --out_dir /tmp/demo --max_iters 60
`;

const bin = fileURLToPath(new URL('../../../bin/nanogpt', import.meta.url));

function run(stage: string, args: string[]): Promise<void> {
  process.stderr.write(`\n==> ${stage}\n$ nanogpt ${args.map((a) => (/[\s"']/.test(a) ? JSON.stringify(a) : a)).join(' ')}\n`);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], { stdio: 'inherit' });
    const forward = (sig: NodeJS.Signals): void => void child.kill(sig);
    process.on('SIGINT', forward);
    process.on('SIGTERM', forward);
    child.on('close', (code, signal) => {
      process.off('SIGINT', forward);
      process.off('SIGTERM', forward);
      if (code === 0) resolve();
      else reject(new UserError(`demo stage '${stage}' failed (${signal ?? `exit ${code}`})`, 'see the output above; rerun `nanogpt demo --keep` to resume training where it stopped'));
    });
  });
}

/** "val loss 10.83 (iter 0) → 7.69 (iter 120)": the first and the last evaluation of the run. */
async function valLossLine(runDir: string): Promise<string> {
  const { evals } = await readMetricsFile(path.join(runDir, 'metrics.jsonl'));
  const first = evals[0];
  const last = evals[evals.length - 1];
  if (!first || !last || first === last) return '';
  const fmt = (e: typeof first): string => `${e.val_loss.toFixed(2)} (iter ${e.iter})`;
  return `val loss ${fmt(first)} → ${fmt(last)}.`;
}

export const demoCommand: Command = {
  name: 'demo',
  summary: 'run the whole workflow offline on the embedded corpus (prepare, 2-rank training, sampling)',
  help: HELP,
  async run(argv) {
    const args = parseArgs(argv, { values: ['out_dir', 'nproc', 'max_iters'], booleans: ['keep'] }, 'demo');
    const dir = path.resolve(flagString(args, 'out_dir') ?? 'demo');
    const nproc = flagNumber(args, 'nproc', 2, { integer: true, min: 1, max: 64 });
    const iters = flagNumber(args, 'max_iters', 120, { integer: true, min: 1 });
    const data = path.join(dir, 'data');
    const runDir = path.join(dir, 'run');
    const started = Date.now();
    if (!flagBoolean(args, 'keep') && existsSync(runDir)) {
      const { rmSync } = await import('node:fs');
      rmSync(runDir, { recursive: true, force: true });
    }
    await run('1/4 prepare: tokenize the embedded corpus', ['prepare', '--out_dir', data]);
    const evalEvery = Math.max(1, Math.round(iters / 4));
    await run(`2/4 train: gpt2-mini, ${nproc} data-parallel rank${nproc > 1 ? 's' : ''}, ${iters} steps`, [
      'launch', '--nproc_per_node', String(nproc), '--',
      'train', `--data_dir=${data}`, `--out_dir=${runDir}`, '--model.preset=gpt2-mini', '--block_size=128',
      '--trainer_config.batch_size=8', '--trainer_config.gradient_accumulation_steps=1', `--trainer_config.max_iters=${iters}`,
      `--trainer_config.eval_interval=${evalEvery}`, '--trainer_config.eval_iters=4', '--trainer_config.log_interval=10',
      '--trainer_config.warmup_iters=10', `--trainer_config.lr_decay_iters=${iters}`, '--trainer_config.max_lr=2e-3', '--trainer_config.min_lr=2e-4',
    ]);
    await run('3/4 sample from the best checkpoint', ['sample', '--ckpt_path', path.join(runDir, 'ckpt.pt'), '--num_samples', '2', '--max_new_tokens', '60', '--prompt', 'The State of the Union ']);
    if (!existsSync(path.join(runDir, 'report.html'))) await run('4/4 report', ['report', runDir]);
    else process.stderr.write('\n==> 4/4 report: written by the trainer\n');
    const secs = Math.round((Date.now() - started) / 1000);
    process.stderr.write(`\ndemo finished in ${secs} s. ${await valLossLine(runDir)}\nOutputs:\n` +
        `  ${data}/train.bin, val.bin, meta.json   tokenized corpus\n` +
        `  ${runDir}/ckpt.pt                         best model (safetensors)\n` +
        `  ${runDir}/snapshot.pt                     resumable snapshot\n` +
        `  ${runDir}/metrics.jsonl                   training metrics\n` +
        `  ${runDir}/report.html, loss.png           run report\n` +
        `Next: nanogpt sample --ckpt_path ${runDir}/ckpt.pt --prompt "..."; nanogpt train --help\n`,
    );
    return 0;
  },
};
