import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as torch from '../../src/torch/index.js';

const close = (a: number[] | number, b: number[] | number, tol = 1e-5): void => {
  const xs = ([] as number[]).concat(a as number[]);
  const ys = ([] as number[]).concat(b as number[]);
  assert.equal(xs.length, ys.length);
  xs.forEach((x, i) => assert.ok(Math.abs(x - ys[i]!) <= tol, `element ${i}: ${x} vs ${ys[i]}`));
};
const flat = (t: torch.Tensor): number[] => Array.from(t.toTypedArray() as Float32Array, Number);

test('creation: nested arrays, typed arrays, factories', () => {
  torch.scope(() => {
    const a = torch.tensor([[1, 2, 3], [4, 5, 6]]);
    assert.deepEqual(a.shape, [2, 3]);
    assert.equal(a.dtype, 'float32');
    assert.deepEqual(a.toArray(), [[1, 2, 3], [4, 5, 6]]);
    assert.equal(torch.tensor([true, false]).dtype, 'bool');
    assert.deepEqual(torch.tensor([1, 2], { dtype: 'int64' }).toArray(), [1, 2]);
    // A uint16 token window becomes int64 with values above 32767 intact.
    const tokens = torch.tensor(new Uint16Array([0, 50256, 65535]));
    assert.equal(tokens.dtype, 'int64');
    assert.deepEqual(tokens.toArray(), [0, 50256, 65535]);
    assert.deepEqual(torch.tensor(new Float32Array([1, 2, 3, 4]), { shape: [2, 2] }).shape, [2, 2]);
    assert.deepEqual(torch.zeros([2, 2]).toArray(), [[0, 0], [0, 0]]);
    assert.deepEqual(torch.ones([3], { dtype: 'int32' }).toArray(), [1, 1, 1]);
    assert.deepEqual(torch.full([2], 7).toArray(), [7, 7]);
    assert.deepEqual(torch.arange(4).toArray(), [0, 1, 2, 3]);
    assert.equal(torch.arange(4).dtype, 'int64');
    assert.deepEqual(torch.arange(1, 2, 0.5).toArray(), [1, 1.5]);
    assert.deepEqual(torch.empty([3, 0]).shape, [3, 0]);
    const r = torch.rand([1000]);
    assert.ok(r.min().item() >= 0 && r.max().item() < 1);
    const n = torch.randn([10000]);
    assert.ok(Math.abs(n.mean().item()) < 0.05);
    const ri = torch.randint(3, 7, [1000]);
    assert.equal(ri.dtype, 'int64');
    assert.ok(ri.min().item() >= 3 && ri.max().item() <= 6);
    assert.ok(Math.abs(torch.empty([5000]).normal_(2, 0.5).mean().item() - 2) < 0.05);
    assert.ok(torch.empty([100]).uniform_(-1, 1).abs().max().item() <= 1);
    assert.deepEqual(torch.ones([2]).zero_().toArray(), [0, 0]);
    assert.deepEqual(torch.zeros([2]).fill_(3).toArray(), [3, 3]);
    for (const d of torch.DTYPES) assert.equal(torch.zeros([2], { dtype: d }).dtype, d);
  });
});

test('conversion: to, contiguous, clone, detach, item, 16-bit floats', () => {
  torch.scope(() => {
    const a = torch.tensor([1.5, -2.25]);
    assert.deepEqual(a.to('int64').toArray(), [1, -2]);
    const b = a.to('bfloat16');
    assert.equal(b.dtype, 'bfloat16');
    assert.ok(b.toTypedArray() instanceof Uint16Array);
    assert.deepEqual(b.toArray(), [1.5, -2.25]);
    assert.deepEqual(a.to({ dtype: 'float16' }).toArray(), [1.5, -2.25]);
    assert.equal(a.to('cpu').device, 'cpu');
    const t = torch.arange(6).view(2, 3).transpose(0, 1);
    assert.equal(t.isContiguous, false);
    assert.equal(t.contiguous().isContiguous, true);
    assert.deepEqual(t.contiguous().toArray(), [[0, 3], [1, 4], [2, 5]]);
    const c = a.clone();
    c.add_(1);
    assert.deepEqual(a.toArray(), [1.5, -2.25]);
    assert.equal(torch.tensor([42]).item(), 42);
    assert.equal(a.requiresGrad_(true).detach().requiresGrad, false);
  });
});

test('shape ops', () => {
  torch.scope(() => {
    const x = torch.arange(24).view(2, 3, 4);
    assert.deepEqual(x.reshape([6, 4]).shape, [6, 4]);
    assert.deepEqual(x.view(-1, 4).shape, [6, 4]);
    assert.deepEqual(x.permute(2, 0, 1).shape, [4, 2, 3]);
    assert.deepEqual(x.unsqueeze(0).shape, [1, 2, 3, 4]);
    assert.deepEqual(x.unsqueeze(0).squeeze(0).shape, [2, 3, 4]);
    assert.deepEqual(torch.zeros([1, 3]).expand(4, 3).shape, [4, 3]);
    assert.deepEqual(x.narrow(2, 1, 2).select(0, 1).select(0, 0).toArray(), [13, 14]);
    assert.deepEqual(x.flatten().shape, [24]);
    assert.deepEqual(x.flatten(1).shape, [2, 12]);
    assert.deepEqual(x.split(2, 2).map((t) => t.shape), [[2, 3, 2], [2, 3, 2]]);
    assert.deepEqual(x.split([1, 3], 2).map((t) => t.shape), [[2, 3, 1], [2, 3, 3]]);
    assert.equal(x.chunk(3, 1).length, 3);
    assert.deepEqual(torch.cat([torch.ones([2, 1]), torch.zeros([2, 2])], 1).toArray(), [[1, 0, 0], [1, 0, 0]]);
    assert.deepEqual(torch.stack([torch.ones([2]), torch.zeros([2])]).shape, [2, 2]);
    assert.deepEqual(torch.arange(5).indexSelect(0, torch.tensor([4, 0], { dtype: 'int64' })).toArray(), [4, 0]);
    assert.deepEqual(x.size(-1), 4);
  });
});

test('elementwise math with broadcasting and scalars', () => {
  torch.scope(() => {
    const a = torch.tensor([[1, 2], [3, 4]]);
    const row = torch.tensor([10, 20]);
    assert.deepEqual(a.add(row).toArray(), [[11, 22], [13, 24]]);
    assert.deepEqual(a.sub(1).toArray(), [[0, 1], [2, 3]]);
    assert.deepEqual(a.mul(row).toArray(), [[10, 40], [30, 80]]);
    assert.deepEqual(a.div(2).toArray(), [[0.5, 1], [1.5, 2]]);
    assert.deepEqual(a.pow(2).toArray(), [[1, 4], [9, 16]]);
    close(flat(a.sqrt()), [1, Math.SQRT2, Math.sqrt(3), 2]);
    close(flat(a.rsqrt()), [1, 1 / Math.SQRT2, 1 / Math.sqrt(3), 0.5]);
    close(flat(a.exp()), [1, 2, 3, 4].map(Math.exp), 1e-4);
    close(flat(a.log()), [1, 2, 3, 4].map(Math.log));
    close(flat(a.tanh()), [1, 2, 3, 4].map(Math.tanh));
    assert.deepEqual(a.neg().abs().toArray(), [[1, 2], [3, 4]]);
    assert.deepEqual(a.clamp(2, 3).toArray(), [[2, 2], [3, 3]]);
    assert.deepEqual(a.gt(2).toArray(), [[false, false], [true, true]]);
    assert.deepEqual(a.eq(row.div(10)).toArray(), [[true, true], [false, false]]);
    assert.deepEqual(a.le(2).logicalNot().toArray(), [[false, false], [true, true]]);
    assert.deepEqual(torch.where(a.lt(3), a, 0).toArray(), [[1, 2], [0, 0]]);
    assert.deepEqual(a.maskedFill(a.ge(3), -1).toArray(), [[1, 2], [-1, -1]]);
    assert.deepEqual(torch.ones([3, 3]).tril().toArray(), [[1, 0, 0], [1, 1, 0], [1, 1, 1]]);
    assert.deepEqual(torch.ones([2, 2]).triu(1).toArray(), [[0, 1], [0, 0]]);
    assert.deepEqual(a.maximum(2.5).toArray(), [[2.5, 2.5], [3, 4]]);
  });
});

test('linear algebra and reductions against hand-computed values', () => {
  torch.scope(() => {
    const a = torch.tensor([[1, 2], [3, 4]]);
    const b = torch.tensor([[5, 6], [7, 8]]);
    assert.deepEqual(a.matmul(b).toArray(), [[19, 22], [43, 50]]);
    assert.deepEqual(torch.stack([a, b]).bmm(torch.stack([b, a])).toArray(), [[[19, 22], [43, 50]], [[23, 34], [31, 46]]]);
    // linear: x Wᵀ + b
    assert.deepEqual(torch.linear(torch.tensor([[1, 1]]), a, torch.tensor([0.5, -0.5])).toArray(), [[3.5, 6.5]]);
    assert.equal(a.sum().item(), 10);
    assert.deepEqual(a.sum(0).toArray(), [4, 6]);
    assert.deepEqual(a.sum(1, true).toArray(), [[3], [7]]);
    assert.deepEqual(a.mean([0, 1]).toArray(), 2.5);
    const m = a.max(1);
    assert.deepEqual(m.values.toArray(), [2, 4]);
    assert.deepEqual(m.indices.toArray(), [1, 1]);
    assert.deepEqual(a.min(0).values.toArray(), [1, 2]);
    assert.equal(a.max().item(), 4);
    assert.deepEqual(a.argmax(0).toArray(), [1, 1]);
    close(a.norm().item(), Math.sqrt(30));
    close(flat(a.norm(2, 1)), [Math.sqrt(5), 5]);
    assert.deepEqual(torch.tensor([1, 2, 3]).cumsum(0).toArray(), [1, 3, 6]);
    assert.deepEqual(a.gather(1, torch.tensor([[1], [0]], { dtype: 'int64' })).toArray(), [[2], [3]]);
  });
});

test('neural-network functions against hand-computed values', () => {
  torch.scope(() => {
    const w = torch.tensor([[0, 0], [1, 1], [2, 2]]);
    assert.deepEqual(torch.embedding(w, torch.tensor([2, 0], { dtype: 'int64' })).toArray(), [[2, 2], [0, 0]]);
    const x = torch.tensor([[1, 2, 3]]);
    // layer norm: mean 2, var 2/3
    const s = Math.sqrt(2 / 3 + 1e-5);
    close(flat(torch.layerNorm(x, [3])), [-1 / s, 0, 1 / s]);
    const g = torch.tensor([-1, 0, 1]);
    const erfGelu = (v: number): number => 0.5 * v * (1 + erf(v / Math.SQRT2));
    const tanhGelu = (v: number): number => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));
    close(flat(torch.gelu(g)), [-1, 0, 1].map(erfGelu), 1e-4);
    close(flat(torch.gelu(g, 'tanh')), [-1, 0, 1].map(tanhGelu), 1e-5);
    const e = [1, 2, 3].map(Math.exp);
    const z = e.reduce((p, q) => p + q);
    close(flat(torch.softmax(x, -1)), e.map((v) => v / z));
    close(flat(torch.logSoftmax(x, -1)), e.map((v) => Math.log(v / z)));
    // cross-entropy of logits [[1,2,3]] vs class 2 = -log softmax[2]
    const logits = torch.tensor([[1, 2, 3], [1, 2, 3]]);
    const target = torch.tensor([2, -100], { dtype: 'int64' });
    close(torch.crossEntropy(logits, target).item(), -Math.log(e[2]! / z));
    close(torch.crossEntropy(logits, torch.tensor([2, 0], { dtype: 'int64' }), { reduction: 'sum' }).item(), -Math.log(e[2]! / z) - Math.log(e[0]! / z));
    assert.deepEqual(torch.crossEntropy(logits, torch.tensor([0, 1], { dtype: 'int64' }), { reduction: 'none' }).shape, [2]);
    assert.deepEqual(torch.crossEntropy(logits, target, { ignoreIndex: -100 }).shape, []);
    const d = torch.dropout(torch.ones([10000]), 0.5, true);
    const kept = d.gt(0).sum().item();
    assert.ok(kept > 4500 && kept < 5500);
    assert.equal(d.max().item(), 2); // survivors are scaled by 1/(1-p)
    assert.deepEqual(torch.dropout(torch.ones([3]), 0.5, false).toArray(), [1, 1, 1]);
    const tk = torch.topk(torch.tensor([3, 1, 4, 1, 5]), 2);
    assert.deepEqual(tk.values.toArray(), [5, 4]);
    assert.deepEqual(tk.indices.toArray(), [4, 2]);
    assert.deepEqual(torch.sort(torch.tensor([3, 1, 2])).values.toArray(), [1, 2, 3]);
    assert.deepEqual(torch.sort(torch.tensor([3, 1, 2]), -1, true).indices.toArray(), [0, 2, 1]);
    const draws = torch.multinomial(torch.tensor([0, 0, 1, 0]), 5, true);
    assert.deepEqual(draws.toArray(), [2, 2, 2, 2, 2]);
  });
});

test('in-place optimizer ops', () => {
  torch.scope(() => {
    const p = torch.tensor([1, 2]);
    p.add_(torch.tensor([1, 1]), 0.5).mul_(2).sub_(1).div_(2);
    assert.deepEqual(p.toArray(), [1, 2]);
    p.addcmul_(torch.tensor([2, 2]), torch.tensor([3, 3]), 0.5);
    assert.deepEqual(p.toArray(), [4, 5]);
    p.addcdiv_(torch.tensor([4, 4]), torch.tensor([2, 4]), -1);
    assert.deepEqual(p.toArray(), [2, 4]);
    p.lerp_(torch.tensor([4, 4]), 0.5);
    assert.deepEqual(p.toArray(), [3, 4]);
    p.copy_(torch.tensor([9, 9])).clamp_(undefined, 5);
    assert.deepEqual(p.toArray(), [5, 5]);
    assert.ok(p.equal(torch.tensor([5, 5])));
  });
});

test('bad calls throw Errors carrying libtorch messages; the process survives', () => {
  torch.scope(() => {
    const a = torch.zeros([2, 3]);
    assert.throws(() => a.matmul(torch.zeros([2, 3])), /mat1 and mat2 shapes cannot be multiplied/);
    assert.throws(() => a.view(4, 4), /shape '\[4, 4\]' is invalid for input of size 6/);
    assert.throws(() => a.add(torch.zeros([4])), /size of tensor a \(3\) must match/);
    assert.throws(() => a.select(0, 5), /out of range/);
    assert.throws(() => a.transpose(0, 7), /Dimension out of range/);
    assert.throws(() => torch.embedding(torch.zeros([3, 2]), torch.tensor([5], { dtype: 'int64' })), /index out of range/i);
    assert.throws(() => torch.crossEntropy(torch.zeros([2, 3]), torch.tensor([0, 7], { dtype: 'int64' })), /Target 7 is out of bounds/);
    assert.throws(() => torch.zeros([2], { dtype: 'float8' as torch.DType }), /unknown dtype 'float8'/);
    assert.throws(() => torch.zeros([-1]), /negative/);
    assert.throws(() => torch.tensor([[1, 2], [3]]), /ragged/);
    assert.throws(() => torch.tensor(new Float32Array(3), { shape: [2, 2] }), /buffer holds 12 bytes but shape and dtype need 16/);
    assert.throws(() => a.to('gpu9'), /device/i);
    const d = torch.ones([2]);
    d.dispose();
    assert.throws(() => d.add(1), /used after dispose/);
    assert.throws(() => a.add(d), /used after dispose/);
    assert.throws(() => torch.ones([2]).backward(), /grad can be implicitly created only for scalar outputs|does not require grad/);
    assert.throws(() => torch.multinomial(torch.tensor([-1, 1]), 1), /probability tensor contains either `inf`, `nan` or element < 0/);
  });
});

function erf(x: number): number {
  // Abramowitz–Stegun 7.1.26 is only 1e-7 accurate; integrate instead (Simpson) for a trustworthy reference.
  const n = 2000;
  const f = (t: number): number => Math.exp(-t * t);
  let s = f(0) + f(x);
  for (let i = 1; i < n; i++) s += f((x * i) / n) * (i % 2 ? 4 : 2);
  return ((2 / Math.sqrt(Math.PI)) * s * (x / n)) / 3;
}
