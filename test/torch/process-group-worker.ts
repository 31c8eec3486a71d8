// One rank of the multi-process collective tests (run as a child process by process-group.test.ts).
import * as torch from '../../src/torch/index.js';
import { ProcessGroup } from '../../src/torch/distributed/index.js';

const rank = Number(process.env.RANK);
const worldSize = Number(process.env.WORLD_SIZE);
const scenario = process.env.SCENARIO ?? 'collectives';
const out = (obj: unknown): void => void process.stdout.write(JSON.stringify(obj) + '\n');

const pg = await ProcessGroup.init({
  rank,
  worldSize,
  masterAddr: '127.0.0.1',
  masterPort: Number(process.env.MASTER_PORT),
  timeoutMs: Number(process.env.TIMEOUT_MS ?? 20_000),
});

if (scenario === 'collectives') {
  // Several tensors of different shapes through one flat buffer; a non-contiguous one included.
  const a = torch.full([2, 3], rank + 1);
  const b = torch.tensor([rank * 10, 1]);
  const c = torch.arange(6, undefined, 1, { dtype: 'float32' }).view(2, 3).mul(rank).transpose(0, 1);
  await pg.allreduce([a, b, c], 'sum');
  const avg = torch.tensor([rank]);
  await pg.allreduce(avg, 'avg');
  const mx = torch.tensor([rank * 2]);
  await pg.allreduce(mx, 'max');
  const bc = torch.full([3], rank === 1 ? 42 : -1);
  await pg.broadcast(bc, 1);
  const ticks: number[] = [];
  // The event loop keeps running while this rank waits in the barrier for a slow peer.
  const timer = setInterval(() => ticks.push(Date.now()), 10);
  if (rank === 2) await new Promise((r) => setTimeout(r, 300));
  await pg.barrier();
  clearInterval(timer);
  const gathered = await pg.allgather(torch.tensor([rank, rank * rank], { dtype: 'int64' }));
  // Collectives issued without awaiting still run in order.
  const x = torch.ones([4]);
  const y = torch.ones([4]).mul(2);
  const p1 = pg.allreduce(x);
  const p2 = pg.allreduce(y);
  await Promise.all([p1, p2]);
  out({
    rank,
    a: a.toArray(),
    b: b.toArray(),
    c: c.toArray(),
    avg: avg.item(),
    max: mx.item(),
    bc: bc.toArray(),
    ticks: ticks.length,
    gathered: gathered.map((g) => g.toArray()),
    x: x.toArray(),
    y: y.toArray(),
  });
  await pg.destroy();
} else if (scenario === 'dies') {
  await pg.barrier();
  if (rank === worldSize - 1) process.exit(3); // this rank vanishes mid-training
  await new Promise((r) => setTimeout(r, 200));
  const t0 = Date.now();
  // Several collectives queued at once, as the overlapped gradient buckets are: all must fail, within one timeout.
  const settled = await Promise.allSettled(Array.from({ length: 5 }, () => pg.allreduce(torch.ones([1000]))));
  const failed = settled.filter((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed.length === 0) out({ rank, error: null });
  else {
    const err = failed[0]!.reason as Error & { missingRanks?: number[] };
    out({ rank, error: err.message, ms: Date.now() - t0, failed: failed.length, missing: err.missingRanks });
  }
  process.exit(0);
}
