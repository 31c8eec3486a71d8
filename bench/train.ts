// `npm run bench -- train`: full GPT-2 training steps (forward, backward, clip, AdamW) through nanogpt-ts and
// shared/bench/pytorch_reference.py with the same shape, in one run ordered reference, ours, reference (a slow
// phase of a noisy machine then lands on both sides); tokens/s, ratio, peak RSS of each, and MFU against this
// machine's matmul peak measured in the same run.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as torch from '../src/torch/index.js';
import { GPT } from '../src/gpt/model.js';
import { flopsPerToken } from '../src/gpt/config.js';
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

/**
 * The best matmul GFLOP/s this process reaches in the run's dtype: square products through torch.matmul (ATen) and
 * GPT-2-shaped linear layers through torch.linear (our oneDNN path), 3 timed runs each, the maximum over all.
 */
function matmulPeakGflops(bf16: boolean): { gflops: number; best: string } {
  let best = { gflops: 0, best: '' };
  const consider = (label: string, flops: number, fn: () => void): void => {
    fn();
    const times: number[] = [];
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now();
      fn();
      times.push(performance.now() - t0);
    }
    const gflops = flops / (Math.min(...times) / 1000) / 1e9;
    if (gflops > best.gflops) best = { gflops, best: label };
  };
  torch.scope(() => {
    const dtype = bf16 ? 'bfloat16' : 'float32';
    for (const n of [2048, 4096]) {
      const a = torch.randn([n, n]).to(dtype);
      const b = torch.randn([n, n]).to(dtype);
      consider(`matmul ${n}³`, 2 * n ** 3, () => torch.scope(() => void a.matmul(b)));
    }
    const x = torch.randn([4096, 768]);
    for (const out of [2304, 3072]) {
      const w = torch.randn([out, 768]);
      const f = (): void => torch.scope(() => void (bf16 ? torch.autocast(() => torch.linear(x, w)) : torch.linear(x, w)));
      consider(`linear 4096×768 → ${out}`, 2 * 4096 * 768 * out, f);
    }
  });
  return best;
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
  const skipRef = flags.has('no-reference');
  const refBefore = skipRef ? ({ ok: false, reason: 'skipped (--no-reference)' } as const) : reference(s, steps, warmup, bf16, threads);
  const peak = matmulPeakGflops(bf16);
  console.log(`matmul peak measured here: ${peak.gflops.toFixed(0)} GFLOP/s ${bf16 ? 'bf16' : 'fp32'} (${peak.best})`);
  const mine = ours(s, steps, warmup, bf16);
  const myRss = peakRssMiB();
  const refAfter = skipRef || !refBefore.ok ? refBefore : reference(s, steps, warmup, bf16, threads);
  const tokens = s.batch * s.block;
  // The reference's figure: the mean of its two runs' medians (before and after ours), peak RSS the larger.
  let ref: ReturnType<typeof reference> = refBefore.ok ? refAfter : refBefore;
  if (refBefore.ok && refAfter.ok) {
    const stepS = (refBefore.value.median_step_s + refAfter.value.median_step_s) / 2;
    ref = { ok: true, value: { ...refBefore.value, median_step_s: stepS, tokens_per_s: tokens / stepS, maxrss_kb: Math.max(refBefore.value.maxrss_kb, refAfter.value.maxrss_kb) } };
  }
  const model = { nLayer: s.layers, nHead: s.heads, nEmbd: s.embd, blockSize: s.block, vocabSize: s.vocab, dropout: 0, bias: true };
  // nanoGPT's accounting: 6 N + 12 L C T per token, N without position embeddings.
  const nParams = s.layers * (12 * s.embd * s.embd + 13 * s.embd) + s.vocab * s.embd + 2 * s.embd;
  const flopsPerStep = flopsPerToken(model, nParams, s.block) * tokens;
  const mfu = (stepS: number): string => `${((flopsPerStep / stepS / 1e9 / peak.gflops) * 100).toFixed(1)} %`;
  const rows = [['nanogpt-ts', fixed(mine.stepS, 2), fixed(tokens / mine.stepS, 0), fixed((flopsPerStep / mine.stepS) / 1e9, 0), mfu(mine.stepS), fixed(myRss, 0)]];
  if (refBefore.ok) rows.push([`pytorch ${refBefore.value.torch} (before)`, fixed(refBefore.value.median_step_s, 2), fixed(tokens / refBefore.value.median_step_s, 0), fixed(flopsPerStep / refBefore.value.median_step_s / 1e9, 0), mfu(refBefore.value.median_step_s), fixed(refBefore.value.maxrss_kb / 1024, 0)]);
  if (refAfter.ok && refAfter !== refBefore) rows.push([`pytorch ${refAfter.value.torch} (after)`, fixed(refAfter.value.median_step_s, 2), fixed(tokens / refAfter.value.median_step_s, 0), fixed(flopsPerStep / refAfter.value.median_step_s / 1e9, 0), mfu(refAfter.value.median_step_s), fixed(refAfter.value.maxrss_kb / 1024, 0)]);
  console.log('');
  printTable(['implementation', 'step s (median)', 'tokens/s', 'model GFLOP/s', 'MFU', 'peak RSS MiB'], rows);
  console.log(`\nnanogpt-ts step breakdown (median ms): forward ${mine.phases.forward!.toFixed(0)}, backward ${mine.phases.backward!.toFixed(0)}, clip+AdamW ${mine.phases.optimizer!.toFixed(0)}`);
  console.log(`MFU: model FLOPs per step (${(flopsPerStep / 1e12).toFixed(2)} TFLOP, 6N + 12LCT per token) / step time / the matmul peak above`);
  if (ref.ok) {
    const ratio = tokens / mine.stepS / ref.value.tokens_per_s;
    console.log(`ratio nanogpt-ts / pytorch tokens/s: ${ratio.toFixed(3)} (target ≥ ${bf16 ? '1.5' : '1.2'}); peak RSS ratio ${(myRss / (ref.value.maxrss_kb / 1024)).toFixed(2)} (target ≤ 0.75)`);
  } else {
    console.log(`pytorch reference not run: ${ref.reason}`);
  }
}
