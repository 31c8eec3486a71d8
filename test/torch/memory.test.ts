import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import * as torch from '../../src/torch/index.js';
import { native } from '../../src/torch/native.js';

test('disposing in a loop that never yields leaves nothing behind: RSS flat over 200,000 handles', () => {
  // Node runs napi finalizers from setImmediate. When each handle carried one, a disposed handle still left its
  // finalizer record (~250 bytes) queued until the event loop turned: 200,000 ops grew RSS by ~50 MiB, and a
  // generation loop, which never yields, grew without bound.
  const x = torch.keep(torch.zeros([4]));
  const churn = (n: number): void => {
    for (let i = 0; i < n; i++) x.add(1).dispose();
  };
  churn(20_000);
  const tensors = torch.memory().tensors;
  const rss0 = process.memoryUsage().rss;
  churn(200_000);
  const growth = (process.memoryUsage().rss - rss0) / 2 ** 20;
  assert.equal(torch.memory().tensors, tensors);
  assert.ok(growth < 12, `RSS grew by ${growth.toFixed(1)} MiB over 200,000 created and disposed tensors`);
  x.dispose();
});

test('a raw handle: disposed once, then refused by every op; one never disposed is freed by the GC', async () => {
  const t = torch.tensor([1, 2, 3]);
  const handle = t.handle;
  t.dispose();
  assert.equal(native.isDisposed(handle), true);
  native.dispose(handle); // a second dispose is a no-op
  assert.throws(() => native.add(handle, 1), /argument 0 is not a tensor \(or is a disposed one\)/);
  assert.throws(() => native.add({}, 1), /argument 0 is not a tensor/);

  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const before = torch.memory().tensors;
  (() => {
    for (let i = 0; i < 100; i++) torch.keep(torch.zeros([8]));
  })();
  assert.equal(torch.memory().tensors, before + 100);
  for (let i = 0; i < 5 && torch.memory().tensors > before; i++) {
    gc();
    await new Promise((resolve) => setImmediate(resolve));
  }
  assert.equal(torch.memory().tensors, before, 'forgotten handles are released by their finalizers');
});

test('2,000 forward/backward/AdamW iterations keep tensor count constant and RSS flat', () => {
  torch.manualSeed(0);
  const params = [torch.randn([32, 16]).mul(0.1), torch.zeros([32]), torch.randn([4, 32]).mul(0.1), torch.zeros([4])].map((p) =>
    torch.keep(p.requiresGrad_(true)),
  );
  // requiresGrad_ on the results of mul(): make them leaves first
  const leaves = params.map((p) => torch.keep(p.detach().requiresGrad_(true)));
  params.forEach((p) => p.dispose());
  const opt = new torch.AdamW([{ params: [leaves[0]!, leaves[2]!], weightDecay: 0.1 }, { params: [leaves[1]!, leaves[3]!], weightDecay: 0 }], { lr: 1e-2 });
  const x = torch.keep(torch.randn([64, 16]));
  const y = torch.keep(torch.randint(0, 4, [64]));
  const step = (): number =>
    torch.scope(() => {
      const h = torch.gelu(torch.linear(x, leaves[0]!, leaves[1]!));
      const loss = torch.crossEntropy(torch.linear(h, leaves[2]!, leaves[3]!), y);
      loss.backward();
      torch.clipGradNorm(leaves, 1.0);
      opt.stepWith();
      opt.zeroGrad();
      return loss.item();
    });
  const first = step();
  for (let i = 0; i < 200; i++) step();
  const tensors = torch.memory().tensors;
  const rss0 = process.memoryUsage().rss;
  let last = 0;
  for (let i = 0; i < 2000; i++) {
    last = step();
    if (i % 500 === 0) assert.equal(torch.memory().tensors, tensors, `live tensors changed at iteration ${i}`);
  }
  const growth = (process.memoryUsage().rss - rss0) / 2 ** 20;
  assert.equal(torch.memory().tensors, tensors);
  assert.ok(growth < 20, `RSS grew by ${growth.toFixed(1)} MiB over 2,000 iterations`);
  assert.ok(last < first * 0.5, `the MLP should learn the fixed batch: ${first} → ${last}`);
  opt.dispose();
  for (const t of [...leaves, x, y]) t.dispose();
});

test('AdamW matches the reference update computed by hand (fused and composed paths)', () => {
  for (const fused of [true, false]) {
    torch.scope(() => {
      const p = torch.tensor([1, -2, 3]).requiresGrad_(true);
      const opt = new torch.AdamW([p], { lr: 0.1, betas: [0.9, 0.99], eps: 1e-8, weightDecay: 0.5, fused });
      const grads = [[0.5, -1, 2], [0.1, 0.2, -0.3]];
      const ref = { p: [1, -2, 3], m: [0, 0, 0], v: [0, 0, 0] };
      grads.forEach((g, t) => {
        p.grad = torch.tensor(g);
        opt.stepWith();
        const step = t + 1;
        for (let i = 0; i < 3; i++) {
          ref.p[i]! *= 1 - 0.1 * 0.5;
          ref.m[i] = 0.9 * ref.m[i]! + 0.1 * g[i]!;
          ref.v[i] = 0.99 * ref.v[i]! + 0.01 * g[i]! ** 2;
          const mh = ref.m[i]! / (1 - 0.9 ** step);
          const vh = ref.v[i]! / (1 - 0.99 ** step);
          ref.p[i]! -= (0.1 * mh) / (Math.sqrt(vh) + 1e-8);
        }
      });
      const got = p.toArray() as number[];
      got.forEach((v, i) => assert.ok(Math.abs(v - ref.p[i]!) < 1e-5, `fused=${fused} element ${i}: ${v} vs ${ref.p[i]}`));
      opt.dispose();
    });
  }
});

test('clipGradNorm scales gradients to the max norm and reports the original norm', () => {
  torch.scope(() => {
    const a = torch.zeros([2]).requiresGrad_(true);
    const b = torch.zeros([1]).requiresGrad_(true);
    a.grad = torch.tensor([3, 0]);
    b.grad = torch.tensor([4]);
    assert.ok(Math.abs(torch.gradNorm([a, b]) - 5) < 1e-6);
    const norm = torch.clipGradNorm([a, b], 1);
    assert.ok(Math.abs(norm - 5) < 1e-6);
    assert.ok(Math.abs(torch.gradNorm([a, b]) - 1) < 1e-4);
    assert.throws(() => torch.clipGradNorm([a], 0), /maxNorm must be positive/);
  });
});
