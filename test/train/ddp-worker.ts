// One rank of the data-parallel equivalence test: WORLD_SIZE ranks each take an equal slice of the same fixed
// batches; gradients are averaged with GradientSync; the final weights are printed as a checksum and a sample.
import * as torch from '../../src/torch/index.js';
import { ProcessGroup } from '../../src/torch/dist/index.js';
import { GPT } from '../../src/gpt/model.js';
import { GradientSync, parameterChecksum } from '../../src/train/ddp.js';

const rank = Number(process.env.RANK ?? 0);
const world = Number(process.env.WORLD_SIZE ?? 1);
const steps = Number(process.env.STEPS ?? 3);
const globalBatch = 4;

torch.setNumThreads(1);
torch.manualSeed(42);
const model = new GPT({ nLayer: 2, nHead: 2, nEmbd: 32, blockSize: 16, vocabSize: 64, dropout: 0, bias: true });
const opt = new torch.AdamW(model.parameters(), { lr: 1e-2, weightDecay: 0.1 });
const pg = world > 1 ? await ProcessGroup.init({ rank, worldSize: world, masterAddr: '127.0.0.1', masterPort: Number(process.env.MASTER_PORT), timeoutMs: 30_000 }) : null;
const sync = pg ? new GradientSync(pg, model.parameters(), 64 * 1024) : null; // small buckets: several collectives
torch.manualSeed(7); // the data: identical on every rank
const xs = Array.from({ length: steps }, () => torch.keep(torch.randint(0, 64, [globalBatch, 16])));
const ys = Array.from({ length: steps }, () => torch.keep(torch.randint(0, 64, [globalBatch, 16])));
const per = globalBatch / world;
for (let s = 0; s < steps; s++) {
  torch.scope(() => model.forward(xs[s]!.narrow(0, rank * per, per), ys[s]!.narrow(0, rank * per, per)).loss!.backward());
  if (sync) await sync.averageGradients();
  torch.clipGradNorm(model.parameters(), 1.0);
  opt.stepWith();
  if (sync) sync.zeroGrad();
  else opt.zeroGrad();
}
const sample = Array.from(model.transformer.h.items[0]!.attn.c_attn.weight.toTypedArray() as Float32Array).slice(0, 16);
process.stdout.write(JSON.stringify({ rank, checksum: parameterChecksum(model), sample }) + '\n');
await pg?.destroy();
