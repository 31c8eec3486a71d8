// The fused kernels' GEMM has two backends (native/kernels.cc): oneDNN's, looked up in the loaded libtorch, and an
// ATen fallback for libtorch builds that do not export it. NANOGPT_GEMM=aten forces the fallback; the attention and
// linear suites must pass on it too.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as torch from '../../src/torch/index.js';
import { runNode } from '../helpers/children.js';

test('the GEMM backend is one of the two known ones', () => {
  assert.match(torch.fusedGemmBackend(), /^(onednn|aten)$/);
});

test('with NANOGPT_GEMM=aten the fused attention and linear suites pass on the ATen fallback', async () => {
  const files = ['./fused-attention.test.js', './fused-linear.test.js'].map((f) => fileURLToPath(new URL(f, import.meta.url)));
  const probe = "import('" + new URL('../../src/torch/index.js', import.meta.url).href + "').then((t) => console.log(t.fusedGemmBackend()))";
  const backend = await runNode(['--input-type=module', '-e', probe], { NANOGPT_GEMM: 'aten' }, 60_000);
  assert.equal(backend.stdout.trim(), 'aten', backend.stderr);
  // NODE_TEST_CONTEXT would make the child report to this runner instead of printing its own summary.
  const r = await runNode(['--test', '--test-reporter=tap', ...files], { NANOGPT_GEMM: 'aten', NODE_TEST_CONTEXT: undefined }, 300_000);
  assert.equal(r.code, 0, r.stdout.slice(-3000) + r.stderr.slice(-2000));
  assert.match(r.stdout, /# fail 0/);
});
