// `npm run bench -- matmul [--sizes 1024,2048] [--threads N] [--quick]`
//
// Is the binding as fast as PyTorch itself? Two questions: does a big matmul reach the same GFLOP/s (the addon
// should add nothing to a call that runs for milliseconds), and how much does one call cost when the op itself is
// trivial (N-API crossing, handle wrapping, scope tracking, dispose). Both are measured against Debian's
// python3-torch, which wraps the same libtorch, so the ratio isolates the binding. The Python side runs as a
// server and the two sides take turns run by run, so background load falls on both alike.
import * as torch from '../src/torch/index.js';
import {
  batchMicros, fixed, intFlag, intListFlag, machineLine, median, parseFlags, peakRssMiB, printTable, PythonServer,
  pythonScript, SYSTEM_PYTHON, timeOnceMs,
} from './util.js';

const DTYPES = ['float32', 'bfloat16'] as const;
type BenchDType = (typeof DTYPES)[number];

/** Targets from issue 2. */
const RATIO_TARGET = 0.95;
const OVERHEAD_TARGET_US = 5;

interface PyInfo {
  torch: string;
  threads: number;
  python: string;
}

interface Plan {
  warmup: number;
  minRuns: number;
  maxRuns: number;
  /** Past minRuns, stop adding rounds once this much time went by, so 4096³ fp32 stays bounded. */
  budgetMs: number;
  overheadIters: number;
  overheadBatches: number;
}

// Quick mode trades precision for a run of well under a minute; the full run gives each size up to ~6 s.
const QUICK: Plan = { warmup: 1, minRuns: 3, maxRuns: 5, budgetMs: 1000, overheadIters: 5000, overheadBatches: 5 };
const FULL: Plan = { warmup: 2, minRuns: 3, maxRuns: 10, budgetMs: 6000, overheadIters: 20000, overheadBatches: 7 };

export async function run(args: string[]): Promise<void> {
  const flags = parseFlags(args, ['sizes', 'threads', 'quick']);
  const quick = flags.has('quick');
  const plan = quick ? QUICK : FULL;
  const sizes = intListFlag(flags, 'sizes') ?? (quick ? [1024, 2048] : [1024, 2048, 4096]);
  const threads = intFlag(flags, 'threads');
  if (threads !== undefined) torch.setNumThreads(threads);
  // Python is told the thread count we actually run with, so both sides use the same cores even where libtorch's
  // default differs between the two processes.
  const effectiveThreads = torch.getNumThreads();

  const v = torch.version();
  console.log(`matmul benchmark — ${machineLine()}`);
  console.log(`libtorch ${v.torch} (mkldnn ${v.mkldnn ? 'on' : 'off'}), ${effectiveThreads} intra-op thread(s)${quick ? ', quick mode' : ''}`);

  // Measured on Debian's build: float32 matmul goes to OpenBLAS, whose pthread pool is sized by
  // OPENBLAS_NUM_THREADS (default: every core) and not by torch's thread count; bf16 goes to oneDNN on torch's.
  console.log(`float32 uses OpenBLAS threads: OPENBLAS_NUM_THREADS=${process.env.OPENBLAS_NUM_THREADS ?? 'unset (all cores)'}, the same for the python child`);

  const started = await PythonServer.start<PyInfo>(pythonScript('matmul_reference.py'), ['--threads', String(effectiveThreads)]);
  const py = started.ok ? started.server : undefined;
  if (started.ok) {
    console.log(`python3-torch ${started.info.torch} (${SYSTEM_PYTHON}, Python ${started.info.python}), ${started.info.threads} thread(s)`);
  } else {
    console.log(`python3-torch reference NOT RUN, only our side is measured: ${started.reason}`);
  }

  try {
    const mm = await matmuls(sizes, plan, py);
    const over = await overheads(plan, py);
    const live = torch.memory().tensors;

    console.log('\nmatmul, square n×n @ n×n, 2n³ flops, median of alternating runs');
    printTable(['dtype', 'n', 'ours ms', 'ours GFLOP/s', 'python GFLOP/s', 'ours/python', `≥${RATIO_TARGET}`, 'runs'],
      mm.map((r) => {
        const gf = (ms: number | undefined) => (ms === undefined ? undefined : (2 * r.n ** 3) / (ms / 1e3) / 1e9);
        const ratio = r.pyMs === undefined ? undefined : r.pyMs / r.oursMs;
        const verdict = ratio === undefined ? '—' : ratio >= RATIO_TARGET ? 'ok' : 'SLOW';
        return [r.dtype, String(r.n), fixed(r.oursMs, 2), fixed(gf(r.oursMs), 1), fixed(gf(r.pyMs), 1), fixed(ratio, 3), verdict, String(r.runs)];
      }));

    console.log(`\nper-call overhead of a tiny op, µs, median of ${plan.overheadBatches} batches (target: under ${OVERHEAD_TARGET_US} µs)`);
    printTable(['op', 'ours µs', 'python µs', 'ours/python', 'target'],
      over.map((o) => [o.label, fixed(o.ours, 3), fixed(o.py, 3), fixed(o.py && o.ours / o.py, 2), o.ours < OVERHEAD_TARGET_US ? 'ok' : 'OVER']));
    // A leak in the timed loops would show here: every tensor above was created in a scope or disposed.
    console.log(`\nlive tensors after the run: ${live}; peak RSS ${peakRssMiB().toFixed(0)} MiB (this process, not python)`);
  } finally {
    py?.close();
  }
}

interface MatmulResult {
  n: number;
  dtype: BenchDType;
  oursMs: number;
  pyMs: number | undefined;
  runs: number;
}

async function matmuls(sizes: number[], plan: Plan, py: PythonServer | undefined): Promise<MatmulResult[]> {
  const out: MatmulResult[] = [];
  torch.manualSeed(0);
  for (const dtype of DTYPES) {
    for (const n of sizes) {
      // Inputs live for the whole size; each product is disposed at once so the allocator hands back the same
      // block every run, as Python's refcounting does on its side.
      // The scope frees the float32 draws behind the bf16 copies; a and b leave it and are disposed below.
      const [a, b] = torch.scope(() => [torch.randn([n, n]).to(dtype), torch.randn([n, n]).to(dtype)]);
      const once = () => a.matmul(b).dispose();
      // Warmup pays for first-touch page faults and oneDNN primitive creation on both sides.
      for (let i = 0; i < plan.warmup; i++) once();
      await py?.ask({ op: 'matmul', n, dtype, warmup: plan.warmup, runs: 0 });
      const ours: number[] = [];
      const theirs: number[] = [];
      const start = performance.now();
      while (ours.length < plan.maxRuns && (ours.length < plan.minRuns || performance.now() - start < plan.budgetMs)) {
        ours.push(timeOnceMs(once));
        if (py) theirs.push(...(await py.ask<{ samples_ms: number[] }>({ op: 'matmul', n, dtype, runs: 1 })).samples_ms);
      }
      a.dispose();
      b.dispose();
      const r: MatmulResult = { n, dtype, oursMs: median(ours), pyMs: py ? median(theirs) : undefined, runs: ours.length };
      console.error(`${dtype} ${n}: ours ${r.oursMs.toFixed(2)} ms, python ${fixed(r.pyMs, 2)} ms (${r.runs} runs each)`);
      out.push(r);
    }
  }
  return out;
}

interface OverheadResult {
  label: string;
  ours: number;
  py: number | undefined;
}

async function overheads(plan: Plan, py: PythonServer | undefined): Promise<OverheadResult[]> {
  return torch.scope(async () => {
    const a = torch.randn([1]);
    const b = torch.randn([1]);
    // add allocates a result, so it pays the whole round trip (argument unwrapping, dispatch, a new handle, its
    // scope registration, dispose). dtype is a native query with no allocation. shape is what user code reads
    // most; our Tensor serves it from a JS-side cache after the first call, Python builds a torch.Size.
    const ops: { name: string; label: string; fn: () => void; scale: number }[] = [
      { name: 'add', label: 'add, 1-element tensors', fn: () => a.add(b).dispose(), scale: 1 },
      { name: 'dtype', label: 'dtype query', fn: () => void a.dtype, scale: 5 },
      { name: 'shape', label: 'shape query', fn: () => void a.shape, scale: 5 },
    ];
    const results: OverheadResult[] = [];
    for (const op of ops) {
      const iters = plan.overheadIters * op.scale;
      batchMicros(op.fn, 1000);
      await py?.ask({ op: 'overhead', name: op.name, iters: 1000 });
      const ours: number[] = [];
      const theirs: number[] = [];
      for (let k = 0; k < plan.overheadBatches; k++) {
        ours.push(batchMicros(op.fn, iters));
        if (py) theirs.push((await py.ask<{ us: number }>({ op: 'overhead', name: op.name, iters })).us);
      }
      results.push({ label: op.label, ours: median(ours), py: py ? median(theirs) : undefined });
    }
    return results;
  });
}
