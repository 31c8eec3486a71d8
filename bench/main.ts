// `npm run bench -- <name> [args]`: runs bench/<name>.ts. Benchmarks are imported only when chosen, so one that
// needs a big model or a missing dependency costs nothing to the others, and a benchmark still being written
// (its file not there yet) is simply not offered.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { UsageError } from './util.js';

interface Bench {
  describe: string;
}

const BENCHES: Record<string, Bench> = {
  matmul: { describe: 'fp32/bf16 matmul GFLOP/s and tiny-op overhead, vs python3-torch' },
  tokenize: { describe: 'GPT-2 BPE tokenizer throughput' },
  adamw: { describe: 'AdamW step on GPT-2 124M-sized parameters, fused vs composed vs torch.optim' },
  train: { describe: 'training throughput vs shared/bench/pytorch_reference.py' },
  allreduce: { describe: 'Gloo all-reduce bandwidth across local ranks' },
  generate: { describe: 'sampling tokens/s with the KV cache, and several samples in one batch' },
  sampling: { describe: 'drawing the next token from [rows × 50257] logits: native draw vs the JavaScript walk it replaced' },
  serve: { describe: 'HTTP serving with continuous batching: tokens/s, TTFT and inter-token latency for 1, 4, 16 streaming clients' },
  attention: { describe: 'one causal attention layer, forward + backward: fused kernel vs composite vs PyTorch' },
};

interface BenchModule {
  run(args: string[]): Promise<void>;
}

const here = path.dirname(fileURLToPath(import.meta.url));

/** Names whose compiled module exists next to this file. */
function available(): string[] {
  return Object.keys(BENCHES).filter((name) => existsSync(path.join(here, `${name}.js`)));
}

function usage(): string {
  const have = new Set(available());
  const lines = Object.entries(BENCHES).map(([name, b]) =>
    `  ${name.padEnd(10)} ${b.describe}${have.has(name) ? '' : ' (not available yet)'}`);
  return ['usage: npm run bench -- <name> [args]', '', 'benchmarks:', ...lines].join('\n');
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h') {
    console.log(usage());
    return 0;
  }
  if (!Object.hasOwn(BENCHES, name)) {
    console.error(`unknown benchmark '${name}'\n\n${usage()}`);
    return 2;
  }
  const file = path.join(here, `${name}.js`);
  if (!existsSync(file)) {
    console.error(`benchmark '${name}' is not available yet (${path.relative(process.cwd(), file)} is missing)\n\n${usage()}`);
    return 2;
  }
  const mod = (await import(pathToFileURL(file).href)) as BenchModule;
  await mod.run(rest);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof UsageError) {
      console.error(err.message);
      process.exitCode = 2;
      return;
    }
    console.error(err instanceof Error ? err.stack ?? err.message : err);
    process.exitCode = 1;
  },
);
