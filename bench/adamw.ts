// `npm run bench -- adamw [--threads N] [--runs N] [--quick]`
//
// How long does one optimizer step over GPT-2 small's 124M parameters take? It is pure memory traffic (each
// element reads p, g, m, v and writes p, m, v), so it is a fixed cost per training step that does not shrink with
// the batch. Compared: our native step with the fused float32 loop, the same step through composed ATen ops
// (fused: false), and torch.optim.AdamW in python3-torch with and without foreach, in the same run.
import * as torch from '../src/torch/index.js';
import {
  fixed, intFlag, machineLine, parseFlags, peakRssMiB, printTable, pythonScript, runPythonJson, SYSTEM_PYTHON,
  timeRuns,
} from './util.js';

/** GPT-2 small (124M) parameter shapes in model order, wte tied with the head so counted once. */
export function gpt2SmallShapes(): number[][] {
  const d = 768;
  const shapes: number[][] = [[50257, d], [1024, d]];
  for (let layer = 0; layer < 12; layer++) {
    shapes.push(
      [d], [d], // ln_1 weight, bias
      [d, 3 * d], [3 * d], // attn.c_attn
      [d, d], [d], // attn.c_proj
      [d], [d], // ln_2 weight, bias
      [d, 4 * d], [4 * d], // mlp.c_fc
      [4 * d, d], [d], // mlp.c_proj
    );
  }
  shapes.push([d], [d]); // ln_f: not in a block, but part of the 124,439,808
  return shapes;
}

const HYPER = { lr: 6e-4, betas: [0.9, 0.95] as [number, number], eps: 1e-8, weightDecay: 0.1 };

interface PythonReport {
  torch: string;
  threads: number;
  params: number;
  results: { name: string; median_ms: number; runs: number }[];
}

export async function run(args: string[]): Promise<void> {
  const flags = parseFlags(args, ['threads', 'runs', 'quick']);
  const quick = flags.has('quick');
  const runs = intFlag(flags, 'runs') ?? (quick ? 3 : 5);
  const threads = intFlag(flags, 'threads');
  if (threads !== undefined) torch.setNumThreads(threads);
  const effectiveThreads = torch.getNumThreads();

  const shapes = gpt2SmallShapes();
  const numel = shapes.reduce((s, sh) => s + sh.reduce((a, b) => a * b, 1), 0);
  const v = torch.version();
  console.log(`adamw benchmark — ${machineLine()}`);
  console.log(`libtorch ${v.torch}, ${effectiveThreads} intra-op thread(s); ${shapes.length} tensors, ${numel.toLocaleString('en-US')} parameters (GPT-2 small)`);

  // Parameters and their gradients are made once and shared by both variants; only the moment buffers (owned by
  // each optimizer) are made and freed per variant, so at most one set of them is alive at a time.
  torch.manualSeed(0);
  const params = shapes.map((s) => torch.keep(torch.randn(s).mul_(0.02).requiresGrad_(true)));
  for (const p of params) {
    torch.scope(() => {
      p.grad = torch.randn(p.shape).mul_(1e-3);
    });
  }
  const groups = [
    { params: params.filter((p) => p.ndim >= 2), weightDecay: HYPER.weightDecay },
    { params: params.filter((p) => p.ndim < 2), weightDecay: 0 },
  ];

  const ours: { name: string; ms: number; runs: number }[] = [];
  for (const fused of [true, false]) {
    const opt = new torch.AdamW(groups, { lr: HYPER.lr, betas: HYPER.betas, eps: HYPER.eps, fused });
    // One warmup step: first touches of the freshly zeroed moment pages cost page faults, not optimizer work.
    const t = timeRuns(() => opt.stepWith(), { warmup: 1, minRuns: runs, maxRuns: runs, budgetMs: 0 });
    opt.dispose();
    const name = `ours, fused: ${fused}`;
    console.error(`${name}: ${t.medianMs.toFixed(1)} ms/step`);
    ours.push({ name, ms: t.medianMs, runs: t.runs });
  }
  const rss = peakRssMiB();
  for (const p of params) p.dispose();

  console.error(`running ${SYSTEM_PYTHON} ${pythonScript('adamw_reference.py')} …`);
  const py = runPythonJson<PythonReport>(pythonScript('adamw_reference.py'), [
    '--shapes', JSON.stringify(shapes),
    '--threads', String(effectiveThreads),
    '--lr', String(HYPER.lr),
    '--beta1', String(HYPER.betas[0]),
    '--beta2', String(HYPER.betas[1]),
    '--eps', String(HYPER.eps),
    '--weight-decay', String(HYPER.weightDecay),
    '--runs', String(runs),
  ]);
  if (py.ok) {
    console.log(`python3-torch ${py.value.torch}, ${py.value.threads} thread(s), ${py.value.params.toLocaleString('en-US')} parameters`);
  } else {
    console.log(`python3-torch reference NOT RUN: ${py.reason}`);
  }

  // Ratios are against the faster Python variant: that is what a PyTorch user would get by choosing well.
  const pyRows = py.ok ? py.value.results : [];
  const bestPy = pyRows.length ? Math.min(...pyRows.map((r) => r.median_ms)) : undefined;
  // 7 float32 accesses per element (read p, g, m, v; write p, m, v): the traffic a step cannot avoid.
  const gbPerStep = (numel * 7 * 4) / 1e9;
  const rows = [
    ...ours.map((o) => [o.name, fixed(o.ms, 1), fixed(gbPerStep / (o.ms / 1e3), 1), fixed(bestPy && bestPy / o.ms, 2), String(o.runs)]),
    ...pyRows.map((r) => [`python ${r.name}`, fixed(r.median_ms, 1), fixed(gbPerStep / (r.median_ms / 1e3), 1), fixed(bestPy && bestPy / r.median_ms, 2), String(r.runs)]),
  ];
  console.log('\nAdamW step, median ms (speed-up = best python ms / this ms; >1 is faster than PyTorch)');
  printTable(['variant', 'ms/step', 'GB/s min. traffic', 'speed-up', 'runs'], rows);
  console.log(`\npeak RSS ${rss.toFixed(0)} MiB (this process: params + grads + one optimizer's moments)`);
}
