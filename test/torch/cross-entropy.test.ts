import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as torch from '../../src/torch/index.js';

function maxDiff(a: torch.Tensor, b: torch.Tensor): number {
  return torch.scope(() => a.float().sub(b.float()).abs().max().item());
}

for (const dtype of ['float32', 'bfloat16', 'float64'] as const) {
  test(`meanCrossEntropy equals crossEntropy on float32 logits, value and gradient (${dtype} logits, ignored rows)`, () => {
    torch.scope(() => {
      torch.manualSeed(11);
      const [N, V] = [37, 501];
      const base = torch.randn([N, V]).mul(3);
      // Rows 3 and 20 are padding.
      const target = torch.tensor(Array.from({ length: N }, (_, i) => (i === 3 || i === 20 ? -1 : (i * 7919) % V)), { dtype: 'int64' });
      const a = base.to(dtype).detach();
      a.requiresGrad_(true);
      const b = base.to(dtype).detach();
      b.requiresGrad_(true);
      const fused = torch.meanCrossEntropy(a, target, { ignoreIndex: -1 });
      const plain = torch.crossEntropy(b.float(), target, { ignoreIndex: -1 });
      fused.mul(2.5).backward();
      plain.mul(2.5).backward();
      assert.equal(fused.dtype, 'float32');
      assert.ok(Math.abs(fused.item() - plain.item()) < 1e-5 * Math.max(1, plain.item()), `${fused.item()} vs ${plain.item()}`);
      assert.equal(a.grad!.dtype, dtype, 'the gradient comes back in the logits dtype');
      const tol = dtype === 'bfloat16' ? 1e-3 : 1e-6;
      assert.ok(maxDiff(a.grad!, b.grad!) < tol, `gradient differs by ${maxDiff(a.grad!, b.grad!)}`);
      assert.equal(a.grad!.narrow(0, 3, 1).abs().sum().item(), 0, 'ignored rows get no gradient');
    });
  });
}

test('meanCrossEntropy rejects bad shapes and dtypes with clear errors', () => {
  torch.scope(() => {
    const logits = torch.randn([4, 5]);
    assert.throws(() => torch.meanCrossEntropy(logits, torch.randint(0, 5, [3])), /expects logits \[N, V\] and targets \[N\]/);
    assert.throws(() => torch.meanCrossEntropy(logits, torch.randint(0, 5, [4]).to('int32')), /targets must be int64/);
    assert.throws(() => torch.meanCrossEntropy(torch.randint(0, 5, [4, 5]), torch.randint(0, 5, [4])), /logits must be floating point/);
  });
});
