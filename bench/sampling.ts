// `npm run bench -- sampling [--rows N,N] [--threads N]`
//
// The draw of the next token from [rows × 50257] logits (GPT-2's vocabulary), as serve and sample do it every
// step: the native draw (sampleRows: softmax, filters, cumulative sums and the inverse-CDF search stay in libtorch,
// one index per row comes back) against the JavaScript walk it replaced (the filtered probabilities, and the sort's
// indices for top-p, copied into JS and walked there). Both consume the same generators, so they must pick the
// same tokens: checked. Logits are scaled normal noise, peaked enough that top-p 0.9 keeps a few hundred tokens.
import * as torch from '../src/torch/index.js';
import { sampleRows } from '../src/gpt/generate.js';
import { SamplerRng } from '../src/util/rng.js';
import { fixed, intFlag, intListFlag, machineLine, parseFlags, printTable, timeRuns } from './util.js';

type Opts = { temperature: number; topK?: number; topP?: number };

/** The former draw: probabilities into JavaScript, then a float64 walk per row. */
function jsWalk(logits: torch.Tensor, opts: Opts, rngs: readonly SamplerRng[]): number[] {
  return torch.scope(() => {
    const tempered = logits.sub(logits.max(-1, true).values).div(opts.temperature);
    let candidates = tempered;
    let ids: BigInt64Array | null = null;
    if (opts.topK !== undefined) {
      const top = torch.topk(tempered, opts.topK, -1);
      candidates = top.values;
      ids = top.indices.toTypedArray() as BigInt64Array;
    } else if (opts.topP !== undefined) {
      const sorted = torch.sort(tempered, -1, true);
      candidates = sorted.values;
      ids = sorted.indices.toTypedArray() as BigInt64Array;
    }
    const K = candidates.size(-1);
    const probs = torch.softmax(candidates, -1, 'float32').toTypedArray() as Float32Array;
    return rngs.map((rng, b) => {
      let p = probs.subarray(b * K, (b + 1) * K);
      if (opts.topP !== undefined) {
        let above = 0;
        let keep = 0;
        while (keep < K && above < opts.topP) above += p[keep++]!;
        p = p.subarray(0, keep);
      }
      let total = 0;
      for (let i = 0; i < p.length; i++) total += p[i]!;
      let u = rng.uniform() * total;
      let pick = p.length - 1;
      for (let i = 0; i < p.length; i++) {
        if ((u -= p[i]!) < 0) {
          pick = i;
          break;
        }
      }
      return ids ? Number(ids[b * K + pick]!) : pick;
    });
  });
}

export async function run(args: string[]): Promise<void> {
  const flags = parseFlags(args, ['rows', 'threads']);
  const threads = intFlag(flags, 'threads');
  if (threads !== undefined) torch.setNumThreads(threads);
  const rowCounts = intListFlag(flags, 'rows') ?? [1, 16];
  const V = 50257;
  console.log(machineLine());
  console.log(`libtorch ${torch.version().torch}, ${torch.getNumThreads()} threads; vocabulary ${V}; median ms per draw of all rows`);
  const settings: [string, Opts][] = [
    ['temperature 1', { temperature: 1 }],
    ['top_p 0.9', { temperature: 0.8, topP: 0.9 }],
    ['top_k 200', { temperature: 1, topK: 200 }],
  ];
  const table: string[][] = [];
  for (const rows of rowCounts) {
    torch.manualSeed(rows);
    const logits = torch.randn([rows, V]).mul(3);
    for (const [name, opts] of settings) {
      const gens = (): SamplerRng[] => Array.from({ length: rows }, (_, b) => new SamplerRng(1000 + b));
      const same = sampleRows(logits, opts, gens()).join() === jsWalk(logits, opts, gens()).join();
      const plan = { warmup: 2, minRuns: 5, maxRuns: 30, budgetMs: 2000 };
      const native = timeRuns(() => void sampleRows(logits, opts, gens()), plan);
      const walk = timeRuns(() => void jsWalk(logits, opts, gens()), plan);
      table.push([`${rows} × ${name}`, fixed(walk.medianMs, 2), fixed(native.medianMs, 2), `${fixed(walk.medianMs / native.medianMs, 1)}×`, same ? 'yes' : 'NO']);
    }
    logits.dispose();
  }
  printTable(['rows × setting', 'JS walk ms', 'native ms', 'speed-up', 'same picks'], table);
}
