import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as torch from '../../src/torch/index.js';
import { causalAttention } from '../../src/gpt/attention.js';

function maxDiff(a: torch.Tensor, b: torch.Tensor): number {
  return torch.scope(() => a.sub(b).abs().max().item());
}

for (const offset of [0, 40]) {
  test(`query-blocked causal attention equals the full masked matrix, forward and backward (offset ${offset})`, () => {
    torch.scope(() => {
      torch.manualSeed(3);
      const [B, H, T, D] = [2, 3, 300, 16];
      const Tk = offset + T;
      const q = torch.randn([B, H, T, D], { requiresGrad: true });
      const k = torch.randn([B, H, Tk, D], { requiresGrad: true });
      const v = torch.randn([B, H, Tk, D], { requiresGrad: true });
      const mask = torch.ones([T, Tk], { dtype: 'bool' }).triu(offset + 1);
      const upstream = torch.randn([B, T, H, D]);
      const run = (blocks: number) => {
        for (const t of [q, k, v]) t.grad = null;
        const y = causalAttention(q, k, v, mask, (w) => w, blocks);
        y.mul(upstream).sum().backward();
        return { y, gq: q.grad!, gk: k.grad!, gv: v.grad! };
      };
      const full = run(1);
      assert.deepEqual(full.y.shape, [B, T, H, D]);
      for (const blocks of [2, 3]) {
        const got = run(blocks);
        assert.ok(maxDiff(got.y, full.y) < 1e-5, `output, ${blocks} blocks`);
        assert.ok(maxDiff(got.gq, full.gq) < 1e-4, `dq, ${blocks} blocks`);
        assert.ok(maxDiff(got.gk, full.gk) < 1e-4, `dk, ${blocks} blocks`);
        assert.ok(maxDiff(got.gv, full.gv) < 1e-4, `dv, ${blocks} blocks`);
      }
      // And the full path is softmax(QKᵀ/√d)V with blocked keys removed: check one query row by hand.
      const row = 7;
      const keys = offset + row + 1;
      const s = torch.softmax(q.narrow(2, row, 1).matmul(k.narrow(2, 0, keys).transpose(-2, -1)).mul(1 / Math.sqrt(D)), -1);
      const want = s.matmul(v.narrow(2, 0, keys)).transpose(1, 2);
      assert.ok(maxDiff(full.y.narrow(1, row, 1), want) < 1e-5);
    });
  });
}

test('short sequences and unmasked attention run in one block', () => {
  torch.scope(() => {
    const q = torch.randn([1, 2, 100, 8]);
    const k = torch.randn([1, 2, 100, 8]);
    const v = torch.randn([1, 2, 100, 8]);
    const mask = torch.ones([100, 100], { dtype: 'bool' }).triu(1);
    assert.ok(maxDiff(causalAttention(q, k, v, mask, (w) => w, 2), causalAttention(q, k, v, mask, (w) => w, 1)) === 0);
    const one = causalAttention(q.narrow(2, 99, 1), k, v, null, (w) => w, 2);
    assert.deepEqual(one.shape, [1, 1, 2, 8]);
  });
});
