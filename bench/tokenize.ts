/**
 * `npm run bench -- tokenize`: tokenizer throughput of `nanogpt prepare` on the embedded corpus with 1 and 2
 * worker threads (the whole pipeline: read, tokenize, split, write, hash), and the process's peak RSS.
 * Options: --workers 1,2,4 (the counts to try), --repeat N (best of N per count, default 2).
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { prepareDataset } from '../src/data/prepare.js';
import { sotuSource } from '../src/data/sources/embedded.js';

function option(args: string[], name: string): string | undefined {
  const i = args.findIndex((a) => a === `--${name}` || a.startsWith(`--${name}=`));
  if (i < 0) return undefined;
  return args[i]!.includes('=') ? args[i]!.slice(args[i]!.indexOf('=') + 1) : args[i + 1];
}

export async function run(args: string[]): Promise<void> {
  const counts = (option(args, 'workers') ?? '1,2').split(',').map(Number);
  const repeat = Number(option(args, 'repeat') ?? 2);
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'nanogpt-bench-tokenize-'));
  try {
    const source = await sotuSource();
    console.log(`tokenize: ${source.describe}, ${((source.estimatedBytes ?? 0) / 1e6).toFixed(1)} MB, ${os.availableParallelism()} cores`);
    const best = new Map<number, number>();
    for (const workers of counts) {
      for (let r = 0; r < repeat; r++) {
        const res = await prepareDataset({ source, outDir: path.join(dir, `w${workers}`), workers });
        const mbps = res.bytes / 1e6 / res.elapsedS;
        best.set(workers, Math.max(best.get(workers) ?? 0, mbps));
        console.log(`  workers=${workers} run ${r + 1}: ${res.elapsedS.toFixed(2)} s, ${mbps.toFixed(2)} MB/s, ${res.meta.tokens} tokens`);
      }
    }
    const base = best.get(counts[0]!)!;
    for (const [w, mbps] of best) {
      console.log(`workers=${w}: ${mbps.toFixed(2)} MB/s (${(mbps / w).toFixed(2)} MB/s per worker, ${(mbps / base).toFixed(2)}x vs ${counts[0]})`);
    }
    // maxRSS covers the whole process, worker threads included (they share it); reported in KiB by Node.
    console.log(`peak RSS: ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB`);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}
