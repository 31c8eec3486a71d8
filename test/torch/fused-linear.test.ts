// Linear layers through native/linear.cc (oneDNN GEMMs, bf16 weight copies cached per weight version) and the LM
// head fused with cross-entropy, against float64 references; and bias + GELU (native/gelu.cc).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as torch from '../../src/torch/index.js';

function relErr(a: torch.Tensor, b: torch.Tensor): number {
  return torch.scope(() => a.to('float64').sub(b.to('float64')).abs().max().item() / Math.max(1e-30, b.to('float64').abs().max().item()));
}
const f64 = (t: torch.Tensor): torch.Tensor => t.detach().to('float64').requiresGrad_(true);

for (const bf16 of [false, true]) {
  for (const withBias of [true, false]) {
    test(`linear ${bf16 ? 'under bf16 autocast' : 'in float32'}${withBias ? '' : ' without bias'}: value and gradients match float64`, () => {
      torch.scope(() => {
        torch.manualSeed(bf16 ? 2 : 1);
        const x = torch.randn([3, 37, 64], { requiresGrad: true });
        const w = torch.randn([50, 64]).mul(0.1).requiresGrad_(true);
        const b = withBias ? torch.randn([50], { requiresGrad: true }) : null;
        const y = bf16 ? torch.autocast(() => torch.linear(x, w, b)) : torch.linear(x, w, b);
        assert.deepEqual(y.shape, [3, 37, 50]);
        assert.equal(y.dtype, bf16 ? 'bfloat16' : 'float32');
        const [xr, wr] = [f64(x), f64(w)];
        const br = b ? f64(b) : null;
        let yr = xr.matmul(wr.transpose(0, 1));
        if (br) yr = yr.add(br);
        const g = torch.randn([3, 37, 50]);
        y.backward(g.to(y.dtype));
        yr.backward(g.to('float64'));
        const tol = bf16 ? 1e-2 : 1e-6;
        assert.ok(relErr(y, yr) < tol, `y ${relErr(y, yr)}`);
        // float32 parameters and inputs get float32 gradients, whatever the compute dtype.
        assert.equal(x.grad!.dtype, 'float32');
        assert.equal(w.grad!.dtype, 'float32');
        assert.ok(relErr(x.grad!, xr.grad!) < tol, `dx ${relErr(x.grad!, xr.grad!)}`);
        assert.ok(relErr(w.grad!, wr.grad!) < tol, `dW ${relErr(w.grad!, wr.grad!)}`);
        if (b) assert.ok(relErr(b.grad!, br!.grad!) < tol, `db ${relErr(b.grad!, br!.grad!)}`);
      });
    });
  }
}

test('a bf16 input under autocast gets a bf16 gradient', () => {
  torch.scope(() => {
    const x = torch.randn([4, 16]).to('bfloat16').requiresGrad_(true);
    const w = torch.randn([8, 16], { requiresGrad: true });
    torch.autocast(() => torch.linear(x, w)).sum().backward();
    assert.equal(x.grad!.dtype, 'bfloat16');
    assert.equal(w.grad!.dtype, 'float32');
  });
});

test('the cached bf16 weight copy follows every change of the weight (optimizer step, copy_)', () => {
  torch.scope(() => {
    torch.manualSeed(4);
    const x = torch.randn([8, 32]);
    const w = torch.keep(torch.randn([16, 32], { requiresGrad: true }));
    const fresh = (): torch.Tensor => torch.noGrad(() => x.to('bfloat16').matmul(w.detach().to('bfloat16').transpose(0, 1)).float());
    const viaCache = (): torch.Tensor => torch.noGrad(() => torch.autocast(() => torch.linear(x, w)).float());
    assert.ok(relErr(viaCache(), fresh()) < 1e-2);
    const before = viaCache();
    // An AdamW step writes the weight in place through the fused loop.
    torch.autocast(() => torch.linear(x, w)).float().sum().backward();
    const opt = new torch.AdamW([{ params: [w], weightDecay: 0 }], { lr: 0.5 });
    opt.stepWith();
    const afterStep = viaCache();
    assert.ok(relErr(afterStep, before) > 1e-2, 'the step changed the weight, so the output must change');
    assert.ok(relErr(afterStep, fresh()) < 1e-2, 'and match a fresh cast of the new weight');
    torch.noGrad(() => w.copy_(torch.zeros([16, 32])));
    assert.equal(viaCache().abs().max().item(), 0, 'copy_ into the weight is seen too');
    opt.dispose();
    w.dispose();
    torch.clearCastCache();
  });
});

for (const bf16 of [false, true]) {
  test(`linearCrossEntropy equals crossEntropy(linear) ${bf16 ? 'under bf16 autocast' : 'in float32'}: value, gradients, ignored rows, several chunks`, () => {
    torch.scope(() => {
      torch.manualSeed(bf16 ? 8 : 7);
      // 2 × 600 rows: more than one 1024-row chunk.
      const [B, T, C, V] = [2, 600, 32, 97];
      const x = torch.randn([B, T, C], { requiresGrad: true });
      const w = torch.randn([V, C]).mul(0.2).requiresGrad_(true);
      const targets = torch.randint(0, V, [B, T]);
      torch.noGrad(() => targets.narrow(1, 5, 3).copy_(torch.full([B, 3], -1, { dtype: 'int64' })));
      const loss = bf16 ? torch.autocast(() => torch.linearCrossEntropy(x, w, targets, { ignoreIndex: -1 })) : torch.linearCrossEntropy(x, w, targets, { ignoreIndex: -1 });
      assert.equal(loss.dtype, 'float32');
      const [xr, wr] = [f64(x), f64(w)];
      const want = torch.crossEntropy(xr.matmul(wr.transpose(0, 1)).reshape(-1, V), targets.reshape(-1), { ignoreIndex: -1 });
      loss.mul(3).backward();
      want.mul(3).backward();
      const tol = bf16 ? 1e-2 : 1e-6;
      assert.ok(Math.abs(loss.item() - want.item()) / want.item() < (bf16 ? 1e-3 : 1e-6), `${loss.item()} vs ${want.item()}`);
      assert.ok(relErr(x.grad!, xr.grad!) < tol, `dx ${relErr(x.grad!, xr.grad!)}`);
      assert.ok(relErr(w.grad!, wr.grad!) < tol, `dW ${relErr(w.grad!, wr.grad!)}`);
      assert.equal(x.grad!.narrow(1, 5, 3).abs().sum().item(), 0, 'ignored rows get no gradient');
      // Without gradients (evaluation) the same loss.
      const evalLoss = torch.noGrad(() => (bf16 ? torch.autocast(() => torch.linearCrossEntropy(x, w, targets, { ignoreIndex: -1 })) : torch.linearCrossEntropy(x, w, targets, { ignoreIndex: -1 })));
      assert.equal(evalLoss.item(), loss.item());
    });
  });
}

test('linearCrossEntropy names bad targets and refuses a second backward', () => {
  torch.scope(() => {
    const x = torch.randn([4, 8], { requiresGrad: true });
    const w = torch.randn([10, 8], { requiresGrad: true });
    assert.throws(() => torch.linearCrossEntropy(x, w, torch.tensor([1, 2, 10, 3], { dtype: 'int64' })), /target 10 at row 2 is not a class index in \[0, 10\)/);
    assert.throws(() => torch.linearCrossEntropy(x, w, torch.tensor([1, 2, 3], { dtype: 'int64' })), /one per row/);
    assert.throws(() => torch.linearCrossEntropy(x, torch.randn([10, 7]), torch.tensor([1, 2, 3, 4], { dtype: 'int64' })), /x \[\.\.\., C\] and weight \[V, C\]/);
    const loss = torch.linearCrossEntropy(x, w, torch.tensor([1, 2, 3, 4], { dtype: 'int64' }));
    loss.backward(undefined, true);
    assert.throws(() => loss.backward(), /backward through the same loss twice/);
  });
});

for (const dtype of ['float32', 'bfloat16'] as const) {
  test(`biasGelu equals gelu_tanh(x + bias) in float64, value and gradients (${dtype})`, () => {
    torch.scope(() => {
      torch.manualSeed(12);
      const x = torch.randn([37, 301]).mul(3).to(dtype).detach().requiresGrad_(true);
      const b = torch.randn([301], { requiresGrad: true });
      const y = torch.biasGelu(x, b);
      assert.equal(y.dtype, dtype);
      const [xr, br] = [f64(x), f64(b)];
      const yr = torch.gelu(xr.add(br), 'tanh');
      const g = torch.randn([37, 301]);
      y.backward(g.to(dtype));
      yr.backward(g.to('float64'));
      const tol = dtype === 'bfloat16' ? 1e-2 : 1e-6;
      assert.ok(relErr(y, yr) < tol, `y ${relErr(y, yr)}`);
      assert.equal(x.grad!.dtype, dtype);
      assert.equal(b.grad!.dtype, 'float32');
      assert.ok(relErr(x.grad!, xr.grad!) < tol, `dx ${relErr(x.grad!, xr.grad!)}`);
      assert.ok(relErr(b.grad!, br.grad!) < tol, `db ${relErr(b.grad!, br.grad!)}`);
      // Large |x| saturates cleanly (no NaN from exp overflow).
      const edge = torch.biasGelu(torch.tensor([-200, -20, 0, 20, 200]), null).toTypedArray() as Float32Array;
      assert.deepEqual([...edge].map((v) => Math.round(v * 1e4) / 1e4), [-0, -0, 0, 20, 200]);
    });
  });
}

test('biasGelu: the bias gradient does not depend on the thread count', () => {
  torch.scope(() => {
    torch.manualSeed(13);
    const x = torch.randn([1000, 64]);
    const g = torch.randn([1000, 64]);
    const biasGrad = (threads: number): Float32Array => {
      const before = torch.getNumThreads();
      torch.setNumThreads(threads);
      try {
        const b = torch.zeros([64], { requiresGrad: true });
        torch.biasGelu(x, b).backward(g);
        return b.grad!.toTypedArray() as Float32Array;
      } finally {
        torch.setNumThreads(before);
      }
    };
    assert.deepEqual(biasGrad(1), biasGrad(2));
  });
});

test('linear on 1-8 rows (the decoding path that streams the weights once) matches float64, any inner size', () => {
  torch.scope(() => {
    torch.manualSeed(14);
    for (const K of [16, 70, 96]) {
      const w = torch.randn([300, K]).mul(0.1);
      const b = torch.randn([300]);
      for (let M = 1; M <= 9; M++) {
        const x = torch.randn([M, K]);
        const want = x.to('float64').matmul(w.to('float64').transpose(0, 1)).add(b.to('float64'));
        assert.ok(relErr(torch.linear(x, w, b), want) < 1e-6, `float32, ${M} rows, K ${K}`);
        assert.ok(relErr(torch.autocast(() => torch.linear(x, w, b)), want) < 1.5e-2, `bf16, ${M} rows, K ${K}`);
      }
    }
  });
});
