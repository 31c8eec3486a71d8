import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as torch from '../../src/torch/index.js';
import { gradcheck } from '../helpers/gradcheck.js';

const f64 = (shape: number[]): torch.Tensor => torch.randn(shape, { dtype: 'float64' });
const TOL = 1e-6;

function check(name: string, f: (xs: torch.Tensor[]) => torch.Tensor, inputs: () => torch.Tensor[]): void {
  test(`gradient of ${name} matches finite differences`, () => {
    torch.manualSeed(1);
    torch.scope(() => {
      const r = gradcheck(f, inputs());
      assert.ok(r.maxAbsError < TOL, `${name}: ${r.maxAbsError} (${r.worst})`);
    });
  });
}

check('linear (x, W, b)', ([x, w, b]) => torch.linear(x!, w!, b!).pow(2).sum(), () => [f64([3, 4]), f64([5, 4]), f64([5])]);
check('matmul', ([a, b]) => a!.matmul(b!).tanh().sum(), () => [f64([2, 3, 4]), f64([4, 2])]);
check('layerNorm (x, weight, bias)', ([x, w, b]) => torch.layerNorm(x!, [6], w!, b!).mul(torch.arange(6, undefined, 1, { dtype: 'float64' })).sum(), () => [f64([3, 6]), f64([6]), f64([6])]);
check('gelu (exact)', ([x]) => torch.gelu(x!).sum(), () => [f64([10])]);
check('gelu (tanh)', ([x]) => torch.gelu(x!, 'tanh').pow(2).sum(), () => [f64([10])]);
check('softmax', ([x]) => torch.softmax(x!, -1).mul(torch.arange(5, undefined, 1, { dtype: 'float64' })).sum(), () => [f64([3, 5])]);
check('embedding (weight)', ([w]) => torch.embedding(w!, torch.tensor([0, 2, 2, 3], { dtype: 'int64' })).pow(2).sum(), () => [f64([4, 3])]);
check('crossEntropy (logits, with ignore index)', ([l]) => torch.crossEntropy(l!, torch.tensor([1, -100, 4, 0], { dtype: 'int64' })), () => [f64([4, 5])]);
check(
  'masked causal self-attention (q, k, v)',
  ([q, k, v]) => {
    const T = q!.size(1);
    const scores = q!.matmul(k!.transpose(-2, -1)).div(Math.sqrt(q!.size(-1)));
    const mask = torch.ones([T, T], { dtype: 'bool' }).triu(1);
    const att = torch.softmax(scores.maskedFill(mask, -Infinity), -1);
    return att.matmul(v!).pow(2).sum();
  },
  () => [f64([2, 4, 3]), f64([2, 4, 3]), f64([2, 4, 3])],
);
check('sum/mean/sqrt/exp/log chain', ([x]) => x!.abs().add(1).log().exp().sqrt().mean(), () => [f64([7])]);
