import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as torch from '../../src/torch/index.js';

test('autocast runs matmuls in bfloat16 and keeps the loss in float32', () => {
  torch.scope(() => {
    const x = torch.randn([4, 8]);
    const w = torch.randn([3, 8], { requiresGrad: true });
    const target = torch.tensor([0, 1, 2, 0], { dtype: 'int64' });
    const { logits, loss } = torch.autocast(() => {
      const logits = torch.linear(x, w);
      return { logits, loss: torch.crossEntropy(logits, target) };
    });
    assert.equal(logits.dtype, 'bfloat16');
    assert.equal(loss.dtype, 'float32');
    assert.equal(torch.isAutocastEnabled(), false);
    loss.backward();
    assert.equal(w.grad!.dtype, 'float32'); // gradients land in the parameter's dtype
    // Close to the float32 result, but not identical (bf16 has an 8-bit mantissa).
    const ref = torch.crossEntropy(torch.linear(x, w), target).item();
    assert.ok(Math.abs(ref - loss.item()) < 0.1 * Math.max(1, Math.abs(ref)));
  });
});

test('autocast restores state after an exception and nests', () => {
  assert.throws(() => torch.autocast(() => {
    throw new Error('boom');
  }), /boom/);
  assert.equal(torch.isAutocastEnabled(), false);
  torch.autocast(() => {
    torch.autocast(() => assert.equal(torch.isAutocastEnabled(), false), { enabled: false });
    assert.equal(torch.isAutocastEnabled(), true);
  });
  assert.throws(() => torch.autocast(() => 1, { dtype: 'int32' }), /bfloat16 or float16/);
});

test('noGrad records no graph and restores grad mode', () => {
  torch.scope(() => {
    const w = torch.ones([2], { requiresGrad: true });
    const y = torch.noGrad(() => w.mul(2));
    assert.equal(y.requiresGrad, false);
    assert.equal(torch.isGradEnabled(), true);
    assert.equal(w.mul(2).requiresGrad, true);
  });
});

test('RNG state round trip repeats the same draws exactly', () => {
  torch.scope(() => {
    torch.manualSeed(123);
    const a = torch.randn([5]).toArray();
    torch.manualSeed(123);
    assert.deepEqual(torch.randn([5]).toArray(), a);
    const state = torch.getRngState();
    const b = [torch.randn([7]).toArray(), torch.rand([3]).toArray(), torch.randint(0, 100, [4]).toArray(), torch.dropout(torch.ones([16]), 0.5, true).toArray()];
    torch.randn([100]); // advance
    torch.setRngState(state);
    const c = [torch.randn([7]).toArray(), torch.rand([3]).toArray(), torch.randint(0, 100, [4]).toArray(), torch.dropout(torch.ones([16]), 0.5, true).toArray()];
    assert.deepEqual(c, b);
    assert.throws(() => torch.setRngState(new Uint8Array(10)), /RNG state|size/i);
  });
});

test('thread settings and engine information', () => {
  const n = torch.getNumThreads();
  torch.setNumThreads(1);
  assert.equal(torch.getNumThreads(), 1);
  torch.setNumThreads(n);
  assert.ok(torch.getNumInteropThreads() >= 1);
  assert.throws(() => torch.setNumThreads(0), /thread count must be >= 1/);
  assert.match(torch.version().torch, /^\d+\.\d+\.\d+$/);
  assert.match(torch.parallelInfo(), /ATen/);
});

test('scope disposes what it created, keeps what it returns, and survives exceptions', async () => {
  const before = torch.memory().tensors;
  const kept = torch.scope(() => {
    const a = torch.ones([3]);
    const b = a.mul(2);
    torch.zeros([10]);
    return { b, list: [a.add(1)] };
  });
  assert.equal(torch.memory().tensors, before + 2);
  assert.equal(kept.b.disposed, false);
  kept.b.dispose();
  kept.list[0]!.dispose();
  assert.equal(torch.memory().tensors, before);
  assert.throws(() => torch.scope(() => {
    torch.ones([5]);
    throw new Error('inside');
  }), /inside/);
  assert.equal(torch.memory().tensors, before);
  const asyncKept = await torch.scope(async () => {
    const a = torch.ones([3]);
    await new Promise((r) => setTimeout(r, 5));
    torch.ones([4]);
    return a.add(1);
  });
  assert.equal(torch.memory().tensors, before + 1);
  asyncKept.dispose();
  // nested: the inner result moves to the outer scope, which then frees it
  torch.scope(() => {
    const inner = torch.scope(() => torch.ones([2]).add(1));
    assert.equal(inner.disposed, false);
  });
  assert.equal(torch.memory().tensors, before);
  {
    using t = torch.ones([8]);
    assert.equal(t.numel, 8);
  }
  assert.equal(torch.memory().tensors, before);
  const k = torch.scope(() => torch.keep(torch.ones([1])));
  assert.equal(k.disposed, false);
  k.dispose();
});

test('backwardAsync does not block the event loop and produces the same gradients', async () => {
  await torch.scope(async () => {
    const w = torch.randn([256, 256], { requiresGrad: true });
    const x = torch.randn([64, 256]);
    const loss = () => torch.gelu(x.matmul(w)).matmul(w).pow(2).mean();
    loss().backward();
    const expected = w.grad!.clone();
    w.grad = null;
    let ticks = 0;
    const timer = setInterval(() => ticks++, 0);
    await loss().backwardAsync();
    clearInterval(timer);
    assert.ok(w.grad!.allclose(expected, 1e-5, 1e-6));
  });
});
