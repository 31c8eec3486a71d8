import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as torch from '../../src/torch/index.js';

test('onGradReady reports each leaf once per backward, after its gradient is accumulated', async () => {
  const a = torch.keep(torch.ones([3], { requiresGrad: true }));
  const b = torch.keep(torch.ones([2, 2], { requiresGrad: true }));
  const seen: { i: number; grad: number[] }[] = [];
  const hooks = torch.onGradReady([a, b], (i) => seen.push({ i, grad: Array.from((i === 0 ? a : b).grad!.toTypedArray() as Float32Array) }));
  try {
    for (let pass = 1; pass <= 2; pass++) {
      seen.length = 0;
      const loss = torch.scope(() => torch.keep(a.mul(2).sum().add(b.mul(3).sum())));
      await loss.backwardAsync();
      loss.dispose();
      await new Promise((r) => setImmediate(r)); // deliveries queued just before the promise settled
      assert.deepEqual(seen.map((s) => s.i).sort(), [0, 1]);
      // The callback sees the accumulated value: 2 then 4 for a (gradients add up across passes).
      assert.deepEqual(seen.find((s) => s.i === 0)!.grad, [2 * pass, 2 * pass, 2 * pass]);
      assert.deepEqual(seen.find((s) => s.i === 1)!.grad, [3 * pass, 3 * pass, 3 * pass, 3 * pass]);
    }
    hooks.dispose();
    seen.length = 0;
    const loss = torch.scope(() => torch.keep(a.sum().add(b.sum())));
    await loss.backwardAsync();
    loss.dispose();
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(seen, [], 'no calls after dispose');
  } finally {
    hooks.dispose();
    a.dispose();
    b.dispose();
  }
});

test('onGradReady calls arrive while a long backward is still running', async () => {
  // `early` joins the graph at the very end, so its gradient is final long before the deep chain through `deep`
  // has been differentiated.
  const deep = torch.keep(torch.randn([256, 256], { requiresGrad: true }));
  const early = torch.keep(torch.randn([256, 256], { requiresGrad: true }));
  const events: string[] = [];
  const hooks = torch.onGradReady([deep, early], (i) => events.push(i === 0 ? 'deep' : 'early'));
  try {
    const loss = torch.scope(() => {
      let h = deep;
      for (let i = 0; i < 200; i++) h = torch.gelu(h.matmul(deep)).mul(0.05);
      const s = h.add(early);
      return torch.keep(s.mul(s).mean());
    });
    const done = loss.backwardAsync().then(() => events.push('backward done'));
    await done;
    loss.dispose();
    await new Promise((r) => setImmediate(r));
    assert.ok(events.indexOf('early') < events.indexOf('backward done'), `order: ${events.join(', ')}`);
    assert.ok(events.includes('deep'));
  } finally {
    hooks.dispose();
    deep.dispose();
    early.dispose();
  }
});

test('each notification carries the tag set before its backward, even when delivered later', async () => {
  const w = torch.keep(torch.ones([4], { requiresGrad: true }));
  const seen: number[] = [];
  const hooks = torch.onGradReady([w], (_i, tag) => seen.push(tag));
  try {
    hooks.setTag(1);
    torch.scope(() => w.mul(2).sum().backward()); // synchronous: its notification waits in the queue
    hooks.setTag(2);
    torch.scope(() => w.mul(3).sum().backward());
    assert.deepEqual(seen, [], 'nothing is delivered while JavaScript runs');
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(seen, [1, 2]);
    assert.throws(() => hooks.setTag(1.5), /must be an integer/);
  } finally {
    hooks.dispose();
    w.dispose();
  }
});

test('onGradReady rejects tensors that are not leaves requiring grad', () => {
  torch.scope(() => {
    const x = torch.ones([2]);
    assert.throws(() => torch.onGradReady([x], () => undefined), /tensor 0 is not a leaf that requires grad/);
    const w = torch.ones([2], { requiresGrad: true });
    assert.throws(() => torch.onGradReady([w, w.mul(2)], () => undefined), /tensor 1 is not a leaf/);
  });
});
