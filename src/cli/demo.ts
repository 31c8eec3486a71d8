// `nanogpt demo`: the whole workflow on the embedded corpus, offline, in a few minutes on two cores —
// prepare → 2-rank data-parallel training of a small GPT → sampling → report. Each stage runs the same
// `nanogpt` command a user would type, printed before it runs.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from './command.js';
import { flagBoolean, flagNumber, flagString, parseArgs } from './args.js';
import { UserError } from '../util/errors.js';
import { plural } from '../util/format.js';
import { readMetricsFile } from '../report/metrics-reader.js';
import { tokenBaselines, type TokenBaselines } from '../data/baselines.js';
import { writeBufferAtomic } from '../io/atomic.js';
// Written into the run directory for the report to draw the baselines.
import { BASELINES_FILE } from '../report/write-report.js';

/** The demo's prompt: the corpus's own phrase, no trailing space (GPT-2 BPE attaches a space to the next word). */
const PROMPT = 'The State of the Union';

const HELP = `nanogpt demo — the whole workflow on the embedded corpus, offline

Usage: nanogpt demo [--out_dir DIR] [--nproc N] [--max_iters N] [--keep]

Stages (each prints the exact command it runs):
  1. prepare   the State of the Union corpus (embedded) → DIR/data/train.bin, val.bin, meta.json (5% of the
               speeches, drawn across the corpus, for validation); prints the uniform and unigram baselines
  2. sample    text from the untrained model (random weights): the starting point
  3. train     a gpt2-mini model (4 layers, 128 dims) with N data-parallel ranks (\`nanogpt launch\`)
  4. sample    text from the best checkpoint, same prompt and seed
  5. report    DIR/run/report.html and loss.png

Options:
  --out_dir DIR    where everything goes (default: demo)
  --nproc N        training ranks on this machine (default 2)
  --max_iters N    optimizer steps (default 120; the whole demo takes about 2 minutes on 2 cores)
  --keep           keep an existing DIR/run (resume) instead of starting fresh

Example:
  nanogpt demo --out_dir /tmp/demo --max_iters 60
`;

const bin = fileURLToPath(new URL('../../../bin/nanogpt', import.meta.url));

function run(stage: string, args: string[]): Promise<void> {
  process.stderr.write(`\n==> ${stage}\n$ nanogpt ${args.map((a) => (/[\s"']/.test(a) ? JSON.stringify(a) : a)).join(' ')}\n`);
  return new Promise((resolve, reject) => {
    // Its own session: a terminal's Ctrl-C reaches only the demo, which forwards it once (in one process group the
    // stage would get it twice, and `launch` counts repeated signals). If the demo dies, the stage goes with it.
    const child = spawn(process.execPath, [bin, ...args], { stdio: 'inherit', detached: true });
    const forward = (sig: NodeJS.Signals): void => void child.kill(sig);
    const killStage = (): void => void child.kill('SIGKILL');
    process.on('SIGINT', forward);
    process.on('SIGTERM', forward);
    process.on('exit', killStage);
    child.on('close', (code, signal) => {
      process.off('SIGINT', forward);
      process.off('SIGTERM', forward);
      process.off('exit', killStage);
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

/** The demo's training settings, as flags: the trainer gets these, and the untrained model is built from them. */
function trainFlags(data: string, runDir: string, iters: number): string[] {
  const evalEvery = Math.max(1, Math.round(iters / 4));
  return [
    `--data_dir=${data}`, `--out_dir=${runDir}`, '--model.preset=gpt2-mini', '--block_size=128',
    '--trainer_config.batch_size=8', '--trainer_config.gradient_accumulation_steps=1', `--trainer_config.max_iters=${iters}`,
    `--trainer_config.eval_interval=${evalEvery}`, '--trainer_config.eval_iters=4', '--trainer_config.log_interval=10',
    '--trainer_config.warmup_iters=10', '--trainer_config.max_lr=2e-3', '--trainer_config.min_lr=2e-4',
  ];
}

/** The model training starts from (same shape, random weights), saved so that `sample` can show what it writes. */
async function writeUntrainedModel(flags: string[], file: string): Promise<void> {
  const { loadConfig } = await import('../train/config.js');
  const { scratchConfig } = await import('../train/model-init.js');
  const { saveModel } = await import('../train/checkpoint.js');
  const { GPT } = await import('../gpt/model.js');
  const torch = await import('../torch/index.js');
  const overrides = new Map(flags.map((f) => f.slice(2).split(/=(.*)/s).slice(0, 2) as [string, string]));
  const config = loadConfig({ overrides });
  torch.manualSeed(config.seed);
  const model = new GPT(scratchConfig(config));
  try {
    await saveModel(file, model);
  } finally {
    model.dispose();
  }
}

/** Where the run stands against the baselines, in words a newcomer can read. */
async function verdict(runDir: string, baselines: TokenBaselines | undefined): Promise<string> {
  const { evals } = await readMetricsFile(path.join(runDir, 'metrics.jsonl'));
  const last = evals[evals.length - 1];
  if (!last || !baselines) return '';
  const gap = baselines.unigram - last.val_loss;
  return gap > 0
    ? `The model beats the unigram baseline by ${gap.toFixed(2)} nats (val ${last.val_loss.toFixed(2)} vs ${baselines.unigram.toFixed(2)}): it has learnt something of context, not only which tokens are common.`
    : `The model has not beaten the unigram baseline yet (val ${last.val_loss.toFixed(2)} vs ${baselines.unigram.toFixed(2)}): it predicts common tokens, not yet context. More steps (--max_iters) take it further.`;
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
    if (!flagBoolean(args, 'keep') && existsSync(runDir)) rmSync(runDir, { recursive: true, force: true });
    // 5% of the speeches, drawn across the corpus: a validation set that sounds like the training text (the default
    // fraction would hold out one speech, the last, and measure little but its vocabulary).
    await run('1/5 prepare: tokenize the embedded corpus', ['prepare', '--out_dir', data, '--val_fraction', '0.05']);

    const baselines = tokenBaselines(path.join(data, 'train.bin'), path.join(data, 'val.bin'));
    mkdirSync(runDir, { recursive: true });
    await writeBufferAtomic(path.join(runDir, BASELINES_FILE), JSON.stringify(baselines) + '\n');
    process.stderr.write(
      `\nBaselines on the validation tokens (cross-entropy, nats per token):\n` +
        `  uniform ${baselines.uniform.toFixed(2)}   every one of the ${baselines.vocab} tokens equally likely: an untrained model\n` +
        `  unigram ${baselines.unigram.toFixed(2)}   each token as frequent as in train.bin, context ignored\n`,
    );

    const flags = trainFlags(data, runDir, iters);
    const untrained = path.join(dir, 'untrained.pt');
    await writeUntrainedModel(flags, untrained);
    const sampleArgs = ['--num_samples', '2', '--max_new_tokens', '60', '--prompt', PROMPT, '--seed', '7'];
    await run('2/5 sample before training (random weights)', ['sample', '--ckpt_path', untrained, ...sampleArgs]);
    await run(`3/5 train: gpt2-mini, ${plural(nproc, 'data-parallel rank')}, ${iters} steps`, ['launch', '--nproc_per_node', String(nproc), '--', 'train', ...flags]);
    await run('4/5 sample after training, from the best checkpoint', ['sample', '--ckpt_path', path.join(runDir, 'ckpt.pt'), '--record', ...sampleArgs]);
    await run('5/5 report', ['report', runDir]);
    const secs = Math.round((Date.now() - started) / 1000);
    process.stderr.write(
      `\ndemo finished in ${secs} s. ${await valLossLine(runDir)}\n${await verdict(runDir, baselines)}\n` +
        `A 4-layer model trained for a couple of minutes on a laptop's cores learns which tokens and short phrases are\n` +
        `common; fluent sentences take far more compute. For real text, fine-tune pretrained GPT-2 (124M) on the same\n` +
        `data (downloads ~500 MB from the Hugging Face Hub once):\n` +
        `  nanogpt train --init_from=gpt2 --data_dir=${data} --out_dir=${dir}/gpt2-ft --block_size=256 --trainer_config.batch_size=4 --trainer_config.max_iters=100\n` +
        `  nanogpt sample --ckpt_path ${dir}/gpt2-ft --prompt "${PROMPT}"\n` +
        `Outputs:\n` +
        `  ${data}/train.bin, val.bin, meta.json   tokenized corpus\n` +
        `  ${runDir}/ckpt.pt                         best model (safetensors)\n` +
        `  ${runDir}/snapshot.pt                     resumable snapshot\n` +
        `  ${runDir}/metrics.jsonl                   training metrics\n` +
        `  ${runDir}/report.html, loss.png           run report (loss against the baselines, samples)\n`,
    );
    return 0;
  },
};
