// One rank of the data-parallel equivalence test: WORLD_SIZE ranks each take an equal slice of the same fixed
// batches; gradients are averaged with GradientSync; the final weights are printed as a checksum and a sample.
import assert from 'node:assert/strict';
import * as torch from '../../src/torch/index.js';
import { ProcessGroup } from '../../src/torch/distributed/index.js';
import { GPT } from '../../src/gpt/model.js';
import { GradientSync, parameterChecksum } from '../../src/train/ddp.js';

const rank = Number(process.env.RANK ?? 0);
const world = Number(process.env.WORLD_SIZE ?? 1);
const steps = Number(process.env.STEPS ?? 3);
// OVERLAP=1: buckets all-reduce during the (async) backward, started by gradient hooks; else after it.
const overlap = process.env.OVERLAP === '1';
const globalBatch = 4;

torch.setNumThreads(1);
torch.manualSeed(42);
const model = new GPT({ nLayer: 2, nHead: 2, nEmbd: 32, blockSize: 16, vocabSize: 64, dropout: 0, bias: true });
const opt = new torch.AdamW(model.parameters(), { lr: 1e-2, weightDecay: 0.1 });
const pg = world > 1 ? await ProcessGroup.init({ rank, worldSize: world, masterAddr: '127.0.0.1', masterPort: Number(process.env.MASTER_PORT), timeoutMs: 30_000 }) : null;
// Small buckets: several collectives per step, so the order in which hooks start them matters.
const sync = pg ? new GradientSync(pg, model.parameters(), { bucketBytes: 64 * 1024, overlap }) : null;
torch.manualSeed(7); // the data: identical on every rank
const xs = Array.from({ length: steps }, () => torch.keep(torch.randint(0, 64, [globalBatch, 16])));
const ys = Array.from({ length: steps }, () => torch.keep(torch.randint(0, 64, [globalBatch, 16])));
// Two micro-batches per step (gradient accumulation), the second one armed: hook notifications of the first may
// still be queued when it starts, and must not count for it.
const micro = 2;
const per = globalBatch / world / micro;
for (let s = 0; s < steps; s++) {
  for (let m = 0; m < micro; m++) {
    const at = (rank * micro + m) * per;
    const loss = torch.scope(() => torch.keep(model.forward(xs[s]!.narrow(0, at, per), ys[s]!.narrow(0, at, per)).loss!.div(micro)));
    if (m === micro - 1) sync?.arm();
    await loss.backwardAsync();
    loss.dispose();
  }
  if (sync) {
    assert.equal(sync.overlapped, overlap);
    // A tiny model's backward ends before its notifications are delivered; a turn of the event loop lets the
    // hooks start the buckets, as they would during a long backward.
    if (overlap) await new Promise((r) => setImmediate(r));
    await sync.averageGradients();
    // With overlap every bucket's last gradient fires a hook, so all of them are started by hooks.
    assert.equal(sync.startedByHooks, overlap ? sync.buckets.length : 0);
  }
  torch.clipGradNorm(model.parameters(), 1.0);
  opt.stepWith();
  if (sync) sync.zeroGrad();
  else opt.zeroGrad();
}
const sample = Array.from(model.transformer.h.items[0]!.attn.c_attn.weight.toTypedArray() as Float32Array).slice(0, 16);
process.stdout.write(JSON.stringify({ rank, checksum: parameterChecksum(model), sample }) + '\n');
await pg?.destroy();
