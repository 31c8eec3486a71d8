// One rank of `npm run bench -- allreduce`: times all-reduces of a GPT-2-124M-sized fp32 gradient, as one flat
// tensor and as the trainer's ~25 MB buckets over the real GPT-2 parameter shapes. Rank 0 prints JSON.
import * as torch from '../src/torch/index.js';
import { ProcessGroup } from '../src/torch/distributed/index.js';
import { GradientSync } from '../src/train/ddp.js';
import { GPT } from '../src/gpt/model.js';

const rank = Number(process.env.RANK);
const world = Number(process.env.WORLD_SIZE);
const runs = Number(process.env.RUNS ?? 3);
torch.setNumThreads(1);
const pg = await ProcessGroup.init({ rank, worldSize: world, masterAddr: '127.0.0.1', masterPort: Number(process.env.MASTER_PORT), timeoutMs: 300_000 });

const model = new GPT({ nLayer: 12, nHead: 12, nEmbd: 768, blockSize: 1024, vocabSize: 50257, dropout: 0, bias: true });
const params = model.parameters();
const numel = params.reduce((n, p) => n + p.numel, 0);
const flat = torch.keep(torch.ones([numel]));
const sync = new GradientSync(pg, params);
for (const p of params) {
  const z = torch.ones(p.shape);
  p.grad = z;
  z.dispose();
}

async function time(fn: () => Promise<void>): Promise<number[]> {
  await fn(); // warm-up: connections, buffers
  const out: number[] = [];
  for (let i = 0; i < runs; i++) {
    await pg.barrier();
    const t0 = performance.now();
    await fn();
    out.push(performance.now() - t0);
  }
  return out;
}

const flatMs = await time(() => pg.allreduce(flat, 'sum'));
const bucketMs = await time(() => sync.averageGradients());
if (rank === 0) {
  process.stdout.write(JSON.stringify({ world, numel, bytes: numel * 4, buckets: sync.buckets.length, flatMs, bucketMs }) + '\n');
}
await pg.destroy();
model.dispose();
