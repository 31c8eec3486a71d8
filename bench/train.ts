// `npm run bench -- train`: full GPT-2 training steps (forward, backward, clip, AdamW) through nanogpt-ts, then
// shared/bench/pytorch_reference.py with the same shape in the same run; tokens/s, ratio and peak RSS of each.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as torch from '../src/torch/index.js';
import { GPT } from '../src/gpt/model.js';
import { SYSTEM_PYTHON, fixed, intFlag, machineLine, median, parseFlags, peakRssMiB, printTable } from './util.js';

interface Shape {
  layers: number;
  heads: number;
  embd: number;
  block: number;
  batch: number;
  vocab: number;
}

function referenceScript(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  // dist/bench → repository root → ../shared
  const root = path.resolve(here, path.basename(path.dirname(here)) === 'dist' ? '../..' : '..');
  return path.resolve(root, '..', 'shared', 'bench', 'pytorch_reference.py');
}

/** Our side: median step time over `steps` steps after `warmup` untimed ones. */
function ours(s: Shape, steps: number, warmup: number, bf16: boolean): { stepS: number; loss: number; phases: Record<string, number> } {
  torch.manualSeed(1337);
  const model = new GPT({ nLayer: s.layers, nHead: s.heads, nEmbd: s.embd, blockSize: s.block, vocabSize: s.vocab, dropout: 0, bias: true });
  const params = model.parameters();
  const opt = new torch.AdamW(
    [
      { params: params.filter((p) => p.ndim >= 2), weightDecay: 0.1 },
      { params: params.filter((p) => p.ndim < 2), weightDecay: 0 },
    ],
    { lr: 6e-4, betas: [0.9, 0.95] },
  );
  const x = torch.keep(torch.randint(0, s.vocab, [s.batch, s.block]));
  const y = torch.keep(torch.randint(0, s.vocab, [s.batch, s.block]));
  const times: number[] = [];
  const phase = { forward: [] as number[], backward: [] as number[], optimizer: [] as number[] };
  let loss = 0;
  for (let i = 0; i < warmup + steps; i++) {
    const t0 = performance.now();
    const l = torch.scope(() => (bf16 ? torch.autocast(() => model.forward(x, y).loss!) : model.forward(x, y).loss!));
    const t1 = performance.now();
    l.backward();
    const t2 = performance.now();
    torch.clipGradNorm(params, 1.0);
    opt.stepWith();
    opt.zeroGrad();
    const t3 = performance.now();
    loss = l.item();
    l.dispose();
    const dt = (t3 - t0) / 1000;
    if (i >= warmup) {
      times.push(dt);
      phase.forward.push(t1 - t0);
      phase.backward.push(t2 - t1);
      phase.optimizer.push(t3 - t2);
    }
    process.stdout.write(`  nanogpt-ts step ${i}${i < warmup ? ' (warm-up)' : ''}: ${dt.toFixed(2)} s (forward ${((t1 - t0) / 1000).toFixed(1)}, backward ${((t2 - t1) / 1000).toFixed(1)}), loss ${loss.toFixed(4)}, RSS ${(process.memoryUsage.rss() / 2 ** 20).toFixed(0)} MiB\n`);
  }
  opt.dispose();
  model.dispose();
  x.dispose();
  y.dispose();
  return { stepS: median(times), loss, phases: { forward: median(phase.forward), backward: median(phase.backward), optimizer: median(phase.optimizer) } };
}

interface RefResult {
  median_step_s: number;
  tokens_per_s: number;
  maxrss_kb: number;
  torch: string;
  threads: number;
}

function reference(s: Shape, steps: number, warmup: number, bf16: boolean, threads: number): { ok: true; value: RefResult } | { ok: false; reason: string } {
  const script = referenceScript();
  if (!existsSync(script)) return { ok: false, reason: `${script} not found (shared/ must sit beside the project)` };
  const args = ['--layers', s.layers, '--heads', s.heads, '--embd', s.embd, '--block', s.block, '--batch', s.batch, '--vocab', s.vocab, '--steps', warmup - 1 + steps, '--dtype', bf16 ? 'bf16' : 'fp32', '--threads', threads].map(String);
  // Run the script unchanged and append its own peak RSS (ru_maxrss, KiB on Linux) as a last JSON line.
  const wrapper = 'import json,resource,runpy,sys; s=sys.argv[1]; sys.argv=sys.argv[1:]; runpy.run_path(s, run_name="__main__"); print(json.dumps({"maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))';
  const r = spawnSync(SYSTEM_PYTHON, ['-c', wrapper, script, ...args], { encoding: 'utf8', maxBuffer: 64 << 20, timeout: 60 * 60_000 });
  if (r.error) return { ok: false, reason: `${SYSTEM_PYTHON}: ${r.error.message}` };
  const lines = r.stdout.trim().split('\n');
  for (const l of lines.slice(0, -2)) process.stdout.write(`  pytorch ${l}\n`);
  try {
    const result = JSON.parse(lines[lines.length - 2]!) as RefResult;
    const rss = JSON.parse(lines[lines.length - 1]!) as { maxrss_kb: number };
    // The script skips only its step 0; with a longer warm-up, take the median of its per-step lines ourselves.
    const stepTimes = lines.flatMap((l) => {
      const m = /^step (\d+) .* time ([\d.]+)s/.exec(l);
      return m && Number(m[1]) >= warmup ? [Number(m[2])] : [];
    });
    const med = stepTimes.length === steps ? median(stepTimes) : result.median_step_s;
    const tokens = s.batch * s.block;
    return { ok: true, value: { ...result, median_step_s: med, tokens_per_s: tokens / med, maxrss_kb: rss.maxrss_kb } };
  } catch {
    return { ok: false, reason: `reference failed (exit ${r.status}): ${r.stderr.trim().split('\n').slice(-3).join(' | ')}` };
  }
}

export async function run(args: string[]): Promise<void> {
  const flags = parseFlags(args, ['layers', 'heads', 'embd', 'block', 'batch', 'steps', 'warmup', 'threads', 'fp32', 'no-reference']);
  const s: Shape = {
    layers: intFlag(flags, 'layers') ?? 12,
    heads: intFlag(flags, 'heads') ?? 12,
    embd: intFlag(flags, 'embd') ?? 768,
    block: intFlag(flags, 'block') ?? 1024,
    batch: intFlag(flags, 'batch') ?? 4,
    vocab: 50257,
  };
  const steps = intFlag(flags, 'steps') ?? 3;
  // Untimed steps first, on both sides. On a VM whose memory the host backs lazily, the first steps pay for
  // first-touch page faults (on the development VM: 43 → 13 s over the first 6 steps), so steady state needs more
  // than the reference script's single warm-up step.
  const warmup = Math.max(1, intFlag(flags, 'warmup') ?? 1);
  const bf16 = !flags.has('fp32');
  // libtorch here defaults to 1 thread (OpenMP sees one); both sides get the same explicit count, all cores by default.
  const threads = intFlag(flags, 'threads') ?? os.availableParallelism();
  torch.setNumThreads(threads);
  console.log(`train benchmark: GPT-2 ${s.layers}L/${s.heads}H/${s.embd}d, batch ${s.batch} × ${s.block} tokens, ${bf16 ? 'bf16 autocast' : 'fp32'}, ${torch.getNumThreads()} threads, ${steps} timed steps after ${warmup} warm-up`);
  console.log(machineLine());
  const mine = ours(s, steps, warmup, bf16);
  const myRss = peakRssMiB();
  const tokens = s.batch * s.block;
  const ref = flags.has('no-reference') ? ({ ok: false, reason: 'skipped (--no-reference)' } as const) : reference(s, steps, warmup, bf16, threads);
  const rows = [['nanogpt-ts', fixed(mine.stepS, 2), fixed(tokens / mine.stepS, 0), fixed(myRss, 0)]];
  if (ref.ok) rows.push([`pytorch ${ref.value.torch}`, fixed(ref.value.median_step_s, 2), fixed(ref.value.tokens_per_s, 0), fixed(ref.value.maxrss_kb / 1024, 0)]);
  console.log('');
  printTable(['implementation', 'step s (median)', 'tokens/s', 'peak RSS MiB'], rows);
  console.log(`\nnanogpt-ts step breakdown (median ms): forward ${mine.phases.forward!.toFixed(0)}, backward ${mine.phases.backward!.toFixed(0)}, clip+AdamW ${mine.phases.optimizer!.toFixed(0)}`);
  if (ref.ok) {
    const ratio = tokens / mine.stepS / ref.value.tokens_per_s;
    console.log(`ratio nanogpt-ts / pytorch tokens/s: ${ratio.toFixed(3)} (target ≥ 1.0); RSS ratio ${(myRss / (ref.value.maxrss_kb / 1024)).toFixed(2)} (target ≤ 1.0)`);
  } else {
    console.log(`pytorch reference not run: ${ref.reason}`);
  }
}
