// The GPT runs attention two ways: the native fused kernel (CPU, float32/bf16, no attention dropout) and the
// composite path (other devices and dtypes, attention dropout while training). A dropout of 1e-9 keeps the model in
// the composite path in training mode while changing nothing measurable, so the two paths can be compared: same
// loss and gradients, and the same logits when decoding against a KV cache.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as torch from '../../src/torch/index.js';
import { GPT } from '../../src/gpt/model.js';

function model(): GPT {
  torch.manualSeed(21);
  const m = new GPT({ nLayer: 2, nHead: 4, nEmbd: 32, blockSize: 24, vocabSize: 50, dropout: 1e-9, bias: true });
  torch.noGrad(() => {
    for (const p of m.parameters()) if (p.ndim >= 2) p.normal_(0, 0.2);
  });
  return m;
}

function relErr(a: torch.Tensor, b: torch.Tensor): number {
  return torch.scope(() => a.sub(b).abs().max().item() / Math.max(1e-30, b.abs().max().item()));
}

test('composite and fused attention paths give the same loss and gradients', () => {
  const m = model();
  const idx = torch.keep(torch.randint(0, 50, [3, 20]));
  const targets = torch.keep(torch.randint(0, 50, [3, 20]));
  const run = (training: boolean): { loss: number; grads: torch.Tensor[] } => {
    m.train(training);
    for (const p of m.parameters()) p.grad = null;
    const loss = torch.scope(() => {
      const l = m.forward(idx, targets).loss;
      l.backward();
      return l.item();
    });
    return { loss, grads: m.parameters().map((p) => torch.keep(p.grad!.clone())) };
  };
  const composite = run(true);
  const fused = run(false);
  assert.ok(Math.abs(composite.loss - fused.loss) < 1e-5, `${composite.loss} vs ${fused.loss}`);
  composite.grads.forEach((g, i) => assert.ok(relErr(g, fused.grads[i]!) < 1e-4, `parameter ${i}: ${relErr(g, fused.grads[i]!)}`));
  for (const g of [...composite.grads, ...fused.grads]) g.dispose();
  idx.dispose();
  targets.dispose();
  m.dispose();
});

test('composite and fused attention paths decode the same logits against the KV cache', () => {
  const m = model();
  torch.noGrad(() => {
    const steps = (training: boolean): torch.Tensor[] => {
      m.train(training);
      const cache = m.newCache();
      const out = [torch.keep(m.forward(torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8]], { dtype: 'int64' }), null, cache).logits)];
      for (const t of [9, 10, 11]) out.push(torch.keep(m.forward(torch.tensor([[t], [t + 1]], { dtype: 'int64' }), null, cache).logits));
      GPT.disposeCache(cache);
      return out;
    };
    const composite = steps(true);
    const fused = steps(false);
    composite.forEach((l, i) => assert.ok(relErr(l, fused[i]!) < 1e-5, `step ${i}: ${relErr(l, fused[i]!)}`));
    for (const t of [...composite, ...fused]) t.dispose();
  });
  m.dispose();
});
