// `npm run bench -- allreduce`: Gloo all-reduce bandwidth for a GPT-2 124M fp32 gradient across 2 and 3 local
// ranks on loopback, then the share of a data-parallel training step spent communicating (world 2).
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { fixed, intFlag, machineLine, median, parseFlags, printTable } from './util.js';
import { freePort } from '../src/distributed/launch.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');

function runRanks(script: string, args: string[], world: number, env: Record<string, string>): Promise<string[]> {
  return freePort().then((port) =>
    Promise.all(
      Array.from({ length: world }, (_, rank) =>
        new Promise<string>((resolve, reject) => {
          const child = spawn(process.execPath, [script, ...args], {
            env: { ...process.env, ...env, RANK: String(rank), LOCAL_RANK: String(rank), WORLD_SIZE: String(world), LOCAL_WORLD_SIZE: String(world), MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port) },
            stdio: ['ignore', 'pipe', 'pipe'],
          });
          let out = '';
          let err = '';
          child.stdout.on('data', (d: Buffer) => (out += d.toString()));
          child.stderr.on('data', (d: Buffer) => (err += d.toString()));
          child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`rank ${rank} exited ${code}: ${err.slice(-2000)}`))));
        }),
      ),
    ),
  );
}

interface Result {
  world: number;
  bytes: number;
  buckets: number;
  flatMs: number[];
  bucketMs: number[];
}

export async function run(args: string[]): Promise<void> {
  const flags = parseFlags(args, ['runs', 'steps', 'no-train']);
  const runs = intFlag(flags, 'runs') ?? 3;
  console.log('allreduce benchmark: GPT-2 124M fp32 gradient (124.4M floats, 498 MB), Gloo over loopback, 1 thread per rank');
  console.log(machineLine());
  const rows: string[][] = [];
  for (const world of [2, 3]) {
    const outs = await runRanks(path.join(here, 'allreduce-worker.js'), [], world, { RUNS: String(runs) });
    const r = JSON.parse(outs[0]!.trim().split('\n').pop()!) as Result;
    for (const [kind, ms] of [['one flat tensor', median(r.flatMs)], [`${r.buckets} buckets (trainer)`, median(r.bucketMs)]] as const) {
      const algbw = r.bytes / (ms / 1000) / 1e9;
      // A ring all-reduce moves 2(n-1)/n of the buffer through each rank's link: the bus bandwidth.
      const busbw = (algbw * 2 * (world - 1)) / world;
      rows.push([String(world), kind, fixed(ms, 0), fixed(algbw, 2), fixed(busbw, 2)]);
    }
  }
  printTable(['ranks', 'layout', 'ms (median)', 'algbw GB/s', 'busbw GB/s'], rows);
  if (flags.has('no-train')) return;

  // Share of step time spent in the gradient all-reduce, GPT-2 124M at world 2 (from the trainer's own metrics).
  const steps = intFlag(flags, 'steps') ?? 3;
  const data = mkdtempSync(path.join(os.tmpdir(), 'nanogpt-bench-ar-'));
  try {
    const tokens = new Uint16Array(200_000).map((_, i) => (i * 7919) % 50257);
    const { writeFileSync } = await import('node:fs');
    writeFileSync(path.join(data, 'train.bin'), tokens);
    writeFileSync(path.join(data, 'val.bin'), tokens.subarray(0, 20_000));
    const threads = Math.max(1, Math.floor(os.availableParallelism() / 2));
    const trainArgs = [
      path.join(root, 'bin', 'nanogpt'), 'train', `--data_dir=${data}`, '--model.preset=gpt2', '--block_size=256',
      '--trainer_config.batch_size=2', '--trainer_config.gradient_accumulation_steps=1', `--trainer_config.max_iters=${steps}`, '--trainer_config.eval_interval=1000',
      '--trainer_config.eval_iters=1', `--threads=${threads}`, '--distributed.check_interval=0',
    ];
    console.log(`\nGPT-2 124M training at world 2 (batch 2 × 256 tokens per rank, bf16, ${threads} threads/rank, ${steps} steps):`);
    // Without and with the all-reduce overlapped with backward; comm_ms is the time the step waits for it after
    // backward (all of it without overlap, the part backward did not hide with it).
    for (const overlap of [false, true]) {
      const out = path.join(data, `out-${overlap}`);
      await runRanks(trainArgs[0]!, [...trainArgs.slice(1), `--out_dir=${out}`, `--distributed.overlap_comm=${overlap}`], 2, {});
      const lines = readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { type: string; ms?: number; comm_ms?: number });
      const train = lines.filter((l) => l.type === 'train').slice(1); // first step warms up
      const stepMs = median(train.map((l) => l.ms!));
      const commMs = median(train.map((l) => l.comm_ms!));
      console.log(
        `  ${overlap ? 'overlapped with backward' : 'after backward          '}: step ${fixed(stepMs, 0)} ms, waiting for the all-reduce ${fixed(commMs, 0)} ms: ` +
          `${fixed((100 * commMs) / stepMs, 1)}% of the step (target ≤ 10%)`,
      );
    }
  } finally {
    rmSync(data, { recursive: true, force: true });
  }
}
