// `npm run bench -- attention [--batch N] [--heads N] [--block N] [--head_dim N] [--fp32] [--runs N] [--threads N]`
//
// One causal self-attention layer at GPT-2 124M's shape (B 4, H 12, T 1024, D 64; bf16 by default), forward and
// backward from a fused QKV projection, four ways, each in a fresh process so that its memory high-water mark is its
// own: our native flash-style kernel (torch.causalAttentionQKV), our composite path in 2 query blocks (what the
// model ran before the kernel, still its fallback), the same composite with the full T × T matrix, and python3-torch
// running nanoGPT's masked-softmax attention (plus scaled_dot_product_attention where that torch has it).
// Prints median forward and backward ms (after one warm-up run) and the peak RSS growth during the runs.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as torch from '../src/torch/index.js';
import { causalAttention } from '../src/gpt/attention.js';
import { fixed, intFlag, machineLine, median, parseFlags, printTable, pythonScript, runPythonJson } from './util.js';

interface Shape {
  batch: number;
  heads: number;
  block: number;
  headDim: number;
  bf16: boolean;
  runs: number;
  threads: number;
}
interface Result {
  forward_ms: number;
  backward_ms: number;
  peak_growth_mib: number;
}
const VARIANTS = ['fused', 'two-block', 'full'] as const;
type Variant = (typeof VARIANTS)[number];

/** In a child process: time one variant and print a JSON line. */
function measure(variant: Variant, s: Shape): Result {
  torch.setNumThreads(s.threads);
  const { batch: B, heads: H, block: T, headDim: D } = s;
  const C = H * D;
  torch.manualSeed(0);
  const dtype = s.bf16 ? 'bfloat16' : 'float32';
  const qkv0 = torch.keep(torch.randn([B, T, 3 * C]).to(dtype));
  const grad = torch.keep(torch.randn([B, T, C]).to(dtype));
  const mask = torch.keep(torch.ones([T, T], { dtype: 'bool' }).triu(1));
  const layer = (qkv: torch.Tensor): torch.Tensor => {
    if (variant === 'fused') return torch.causalAttentionQKV(qkv, H);
    const [q, k, v] = qkv.split(C, 2).map((t) => t.view(B, T, H, D).transpose(1, 2)) as [torch.Tensor, torch.Tensor, torch.Tensor];
    return causalAttention(q, k, v, mask, (w) => w, variant === 'two-block' ? 2 : 1).reshape(B, T, C);
  };
  const base = process.resourceUsage().maxRSS;
  const fwd: number[] = [];
  const bwd: number[] = [];
  for (let i = 0; i <= s.runs; i++) {
    torch.scope(() => {
      const qkv = qkv0.detach().requiresGrad_(true);
      const t0 = performance.now();
      const y = layer(qkv);
      const t1 = performance.now();
      y.backward(grad);
      const t2 = performance.now();
      if (i > 0) {
        fwd.push(t1 - t0);
        bwd.push(t2 - t1);
      }
    });
  }
  return { forward_ms: median(fwd), backward_ms: median(bwd), peak_growth_mib: (process.resourceUsage().maxRSS - base) / 1024 };
}

function child(variant: Variant, s: Shape): Result | string {
  const self = fileURLToPath(import.meta.url);
  const r = spawnSync(process.execPath, [self, '--child', variant, JSON.stringify(s)], { encoding: 'utf8', timeout: 30 * 60_000 });
  try {
    return JSON.parse(r.stdout.trim().split('\n').pop()!) as Result;
  } catch {
    return `exit ${r.status}: ${r.stderr.trim().split('\n').slice(-2).join(' | ')}`;
  }
}

export async function run(args: string[]): Promise<void> {
  const flags = parseFlags(args, ['batch', 'heads', 'block', 'head_dim', 'fp32', 'runs', 'threads']);
  const s: Shape = {
    batch: intFlag(flags, 'batch') ?? 4,
    heads: intFlag(flags, 'heads') ?? 12,
    block: intFlag(flags, 'block') ?? 1024,
    headDim: intFlag(flags, 'head_dim') ?? 64,
    bf16: !flags.has('fp32'),
    runs: intFlag(flags, 'runs') ?? 5,
    threads: intFlag(flags, 'threads') ?? torch.getNumThreads(),
  };
  console.log(machineLine());
  console.log(`attention benchmark: B ${s.batch}, H ${s.heads}, T ${s.block}, D ${s.headDim}, ${s.bf16 ? 'bf16' : 'fp32'}, ${s.threads} threads, median of ${s.runs} after 1 warm-up; GEMM backend ${torch.fusedGemmBackend()}`);
  const rows: string[][] = [];
  let fusedTotal: number | undefined;
  const add = (name: string, r: Result | string): void => {
    if (typeof r === 'string') {
      rows.push([name, '—', '—', '—', '—', r]);
      return;
    }
    const total = r.forward_ms + r.backward_ms;
    fusedTotal ??= total;
    rows.push([name, fixed(r.forward_ms, 1), fixed(r.backward_ms, 1), fixed(total, 1), fixed(r.peak_growth_mib, 0), fixed(total / fusedTotal, 2)]);
  };
  for (const v of VARIANTS) add(`nanogpt-ts ${v}`, child(v, s));
  const pyArgs = ['--batch', s.batch, '--heads', s.heads, '--block', s.block, '--head_dim', s.headDim, '--dtype', s.bf16 ? 'bf16' : 'fp32', '--threads', s.threads, '--runs', s.runs].map(String);
  const py = runPythonJson<Result & { torch: string }>(pythonScript('attention_reference.py'), pyArgs);
  add(`pytorch ${py.ok ? py.value.torch : ''} masked softmax`.replace('  ', ' '), py.ok ? py.value : py.reason);
  const sdpa = runPythonJson<Result & { torch: string }>(pythonScript('attention_reference.py'), [...pyArgs, '--sdpa']);
  if (sdpa.ok) add(`pytorch ${sdpa.value.torch} scaled_dot_product_attention`, sdpa.value);
  else console.log(`(no scaled_dot_product_attention run: ${sdpa.reason})`);
  console.log('');
  printTable(['implementation', 'forward ms', 'backward ms', 'total ms', 'peak RSS growth MiB', 'time vs fused'], rows);
}

if (process.argv[2] === '--child') {
  process.stdout.write(JSON.stringify(measure(process.argv[3] as Variant, JSON.parse(process.argv[4]!) as Shape)) + '\n');
}
