// The native flash-style attention (native/attention.cc) against the composite path in float64: outputs and
// gradients, odd sizes (T across tile boundaries, T = 1, head sizes 32/64/128), keys cached before the queries,
// bf16 within its rounding, a finite-difference check, and clear errors.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as torch from '../../src/torch/index.js';
import { causalAttention } from '../../src/gpt/attention.js';

/** max |a − b| / max |b|. */
function relErr(a: torch.Tensor, b: torch.Tensor): number {
  return torch.scope(() => a.to('float64').sub(b.to('float64')).abs().max().item() / Math.max(1e-30, b.to('float64').abs().max().item()));
}

/** Reference: float64 composite attention of q over k, v ([B, T, H, D] each), queries at the last Tq positions. */
function reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor): torch.Tensor {
  const [, Tq] = q.shape as [number, number];
  const Tk = k.shape[1]!;
  const heads = (t: torch.Tensor) => t.to('float64').transpose(1, 2);
  const mask = Tq === 1 ? null : torch.ones([Tq, Tk], { dtype: 'bool' }).triu(Tk - Tq + 1);
  return causalAttention(heads(q), heads(k), heads(v), mask, (w) => w, 1);
}

const shapes: [number, number, number, number][] = [
  // B, T, H, D
  [2, 5, 3, 8],
  [1, 1, 2, 64],
  [2, 127, 2, 32],
  [1, 129, 2, 64],
  [1, 600, 1, 64],
  [1, 1030, 1, 32],
  [2, 70, 2, 128],
];

for (const [B, T, H, D] of shapes) {
  test(`fused attention equals float64 attention, forward and backward (B ${B}, T ${T}, H ${H}, D ${D}, float32)`, () => {
    torch.scope(() => {
      torch.manualSeed(T * 31 + D);
      const C = H * D;
      const qkv = torch.randn([B, T, 3 * C], { requiresGrad: true });
      const ref = qkv.detach().to('float64').requiresGrad_(true);
      const upstream = torch.randn([B, T, C]);
      const y = torch.causalAttentionQKV(qkv, H);
      assert.deepEqual(y.shape, [B, T, C]);
      assert.equal(y.dtype, 'float32');
      const [q, k, v] = ref.split(C, 2).map((t) => t.reshape(B, T, H, D));
      const want = reference(q!, k!, v!).reshape(B, T, C);
      y.mul(upstream).sum().backward();
      want.mul(upstream.to('float64')).sum().backward();
      assert.ok(relErr(y, want) < 1e-5, `output: ${relErr(y, want)}`);
      assert.ok(relErr(qkv.grad!, ref.grad!) < 1e-5, `gradient: ${relErr(qkv.grad!, ref.grad!)}`);
    });
  });
}

test('fused attention in bfloat16 stays within bf16 rounding of float64, and returns bf16', () => {
  torch.scope(() => {
    torch.manualSeed(5);
    const [B, T, H, D] = [2, 300, 3, 64];
    const C = H * D;
    const base = torch.randn([B, T, 3 * C]);
    const qkv = base.to('bfloat16').detach().requiresGrad_(true);
    const ref = qkv.detach().to('float64').requiresGrad_(true);
    const upstream = torch.randn([B, T, C]).to('bfloat16');
    const y = torch.causalAttentionQKV(qkv, H);
    assert.equal(y.dtype, 'bfloat16');
    const [q, k, v] = ref.split(C, 2).map((t) => t.reshape(B, T, H, D));
    const want = reference(q!, k!, v!).reshape(B, T, C);
    y.mul(upstream).sum().backward();
    want.mul(upstream.to('float64')).sum().backward();
    assert.equal(qkv.grad!.dtype, 'bfloat16');
    // bf16 keeps 8 significant bits: a few units of 2^-8 relative to the largest value.
    assert.ok(relErr(y, want) < 2e-2, `output: ${relErr(y, want)}`);
    assert.ok(relErr(qkv.grad!, ref.grad!) < 2e-2, `gradient: ${relErr(qkv.grad!, ref.grad!)}`);
  });
});

for (const [Tq, cached] of [[1, 40], [7, 40], [1, 700], [5, 0]] as const) {
  for (const dtype of ['float32', 'bfloat16'] as const) {
    test(`attention against cached keys: ${Tq} queries after ${cached} cached positions (${dtype})`, () => {
      torch.scope(() => {
        torch.manualSeed(Tq + cached);
        const [B, H, D] = [2, 3, 32];
        const Tk = cached + Tq;
        // Keys and values as a KV cache holds them: [B, block, C] buffers read through a narrowed view.
        const cacheK = torch.randn([B, Tk + 9, H * D]).to(dtype);
        const cacheV = torch.randn([B, Tk + 9, H * D]).to(dtype);
        const k = cacheK.narrow(1, 0, Tk).view(B, Tk, H, D);
        const v = cacheV.narrow(1, 0, Tk).view(B, Tk, H, D);
        const q = torch.randn([B, Tq, H, D]).to(dtype);
        const got = torch.causalAttention(q, k, v);
        assert.deepEqual(got.shape, [B, Tq, H, D]);
        const want = reference(q, k, v);
        assert.ok(relErr(got, want) < (dtype === 'float32' ? 1e-5 : 2e-2), `${relErr(got, want)}`);
      });
    });
  }
}

test('fused attention gradients match central differences (float32, tiny shape)', () => {
  torch.scope(() => {
    torch.manualSeed(9);
    const [B, T, H, D] = [1, 4, 2, 4];
    const C = H * D;
    const qkv = torch.randn([B, T, 3 * C]);
    const w = torch.randn([B, T, C]);
    const f = (x: torch.Tensor): number => torch.scope(() => torch.causalAttentionQKV(x, H).mul(w).sum().item());
    const x = qkv.detach().requiresGrad_(true);
    torch.causalAttentionQKV(x, H).mul(w).sum().backward();
    const analytic = x.grad!.toTypedArray() as Float32Array;
    const base = qkv.toTypedArray() as Float32Array;
    const eps = 1e-2;
    let worst = 0;
    for (let i = 0; i < base.length; i++) {
      const moved = (d: number) => {
        const a = Float32Array.from(base);
        a[i]! += d;
        return f(torch.tensor(a, { shape: qkv.shape }));
      };
      const numeric = (moved(eps) - moved(-eps)) / (2 * eps);
      worst = Math.max(worst, Math.abs(numeric - analytic[i]!) / Math.max(1, Math.abs(numeric)));
    }
    assert.ok(worst < 2e-3, `worst relative error ${worst}`);
  });
});

test('fused attention rejects what it cannot compute, with a message naming the problem', () => {
  torch.scope(() => {
    assert.throws(() => torch.causalAttentionQKV(torch.randn([2, 5, 10]), 4), /qkv \[B, T, 3·C\] with C divisible by the head count/);
    assert.throws(() => torch.causalAttentionQKV(torch.randn([2, 5, 12]).to('float64'), 2), /float32 or bfloat16/);
    const q = torch.randn([1, 3, 2, 8]);
    assert.throws(() => torch.causalAttention(q, torch.randn([1, 2, 2, 8]), torch.randn([1, 2, 2, 8])), /fewer keys \(2\) than queries \(3\)/);
    assert.throws(() => torch.causalAttention(q, torch.randn([1, 4, 2, 8]), torch.randn([1, 5, 2, 8])), /k and v differ in shape/);
    assert.throws(() => torch.causalAttention(q, torch.randn([1, 4, 3, 8]), torch.randn([1, 4, 3, 8])), /does not match k/);
    const needsGrad = torch.randn([1, 3, 2, 8], { requiresGrad: true });
    assert.throws(() => torch.causalAttention(needsGrad, needsGrad, needsGrad), /inference-only/);
  });
});
