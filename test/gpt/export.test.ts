import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import * as torch from '../../src/torch/index.js';
import { GPT } from '../../src/gpt/model.js';
import type { GPTConfig } from '../../src/gpt/config.js';
import { exportHuggingFace } from '../../src/gpt/export.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { loadModel, saveModel } from '../../src/train/checkpoint.js';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../../../', import.meta.url));
const bin = path.join(root, 'bin', 'nanogpt');

const tmp = mkdtempSync(path.join(os.tmpdir(), 'nanogpt-export-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const tiny: GPTConfig = { nLayer: 2, nHead: 2, nEmbd: 16, blockSize: 8, vocabSize: 37, dropout: 0, bias: true };

/** A tiny GPT whose every parameter (biases and LayerNorm gains included) is random, so nothing round-trips by luck. */
function randomModel(seed: number): GPT {
  torch.manualSeed(seed);
  const model = new GPT(tiny);
  model.eval();
  torch.noGrad(() => {
    for (const p of model.parameters()) torch.scope(() => p.copy_(torch.randn(p.shape).mul(0.3)));
  });
  return model;
}

function logitsOf(model: GPT, ids: number[][]): Float32Array {
  return torch.scope(() =>
    torch.noGrad(() => {
      const idx = torch.tensor(ids, { dtype: 'int64' });
      const logits = model.allLogits(idx);
      return logits.toTypedArray() as Float32Array;
    }),
  );
}

const ids = [
  [1, 5, 9, 36, 0, 2, 7, 7],
  [3, 3, 14, 15, 9, 26, 5, 35],
];

test('export writes GPT2LMHeadModel names, Conv1D [in, out] layout, float32, format=pt, no tied head', async () => {
  const model = randomModel(1);
  const out = path.join(tmp, 'layout');
  const r = await exportHuggingFace(model, out);
  assert.equal(r.weights, path.join(out, 'model.safetensors'));
  const file = await SafetensorsFile.open(r.weights);
  try {
    assert.deepEqual(file.metadata, { format: 'pt' });
    const byName = new Map(file.tensors.map((t) => [t.name, t]));
    assert.ok(!byName.has('lm_head.weight'), 'the tied head is not written');
    assert.ok([...byName.keys()].every((n) => n.startsWith('transformer.')), 'every name has the transformer. prefix');
    assert.ok(![...byName.keys()].some((n) => /\.attn\.(masked_)?bias$/.test(n)), 'no causal-mask buffers');
    assert.ok([...byName.values()].every((t) => t.dtype === 'F32'));
    // 2 embeddings + final LN (2) + per layer: 2 LNs (4), c_attn, attn c_proj, c_fc, mlp c_proj (8).
    assert.equal(byName.size, 2 + 2 + tiny.nLayer * 12);
    const C = tiny.nEmbd;
    assert.deepEqual(byName.get('transformer.wte.weight')!.shape, [tiny.vocabSize, C]);
    assert.deepEqual(byName.get('transformer.wpe.weight')!.shape, [tiny.blockSize, C]);
    assert.deepEqual(byName.get('transformer.h.0.attn.c_attn.weight')!.shape, [C, 3 * C]);
    assert.deepEqual(byName.get('transformer.h.0.attn.c_proj.weight')!.shape, [C, C]);
    assert.deepEqual(byName.get('transformer.h.1.mlp.c_fc.weight')!.shape, [C, 4 * C]);
    assert.deepEqual(byName.get('transformer.h.1.mlp.c_proj.weight')!.shape, [4 * C, C]);
    assert.deepEqual(byName.get('transformer.h.0.attn.c_attn.bias')!.shape, [3 * C]);

    // The values: the file's c_fc weight [in, out] is the transpose of our Linear weight [out, in].
    const ours = model.stateDict().get('transformer.h.1.mlp.c_fc.weight')!.toTypedArray() as Float32Array; // [4C, C]
    const bytes = await file.read('transformer.h.1.mlp.c_fc.weight');
    const theirs = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)); // [C, 4C]
    for (let o = 0; o < 4 * C; o++) for (let i = 0; i < C; i++) assert.equal(theirs[i * 4 * C + o], ours[o * C + i]);
  } finally {
    await file.close();
  }
  const cfg = JSON.parse(readFileSync(r.config, 'utf8')) as Record<string, unknown>;
  assert.deepEqual(cfg.architectures, ['GPT2LMHeadModel']);
  assert.equal(cfg.model_type, 'gpt2');
  assert.deepEqual([cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.n_positions, cfg.vocab_size], [2, 2, 16, 8, 37]);
  assert.equal(cfg.tie_word_embeddings, true);
  assert.equal(cfg.activation_function, 'gelu_new');
  assert.deepEqual(
    readdirSync(out).sort(),
    ['config.json', 'model.safetensors'],
    'no temp files left behind',
  );
  model.dispose();
});

test('HF weight mapping round trip: export → loadModel gives identical parameters and logits', async () => {
  const model = randomModel(2);
  const out = path.join(tmp, 'roundtrip');
  await exportHuggingFace(model, out);
  const loaded = await loadModel(path.join(out, 'model.safetensors'));
  await loaded.reader.close();
  assert.equal(loaded.kind, 'huggingface');
  assert.deepEqual(loaded.model.config, tiny, 'shape (n_head from config.json) recovered');
  const a = model.stateDict();
  const b = loaded.model.stateDict();
  assert.deepEqual([...b.keys()].sort(), [...a.keys()].sort());
  for (const [name, t] of a) assert.ok(t.equal(b.get(name)!), `${name} identical`);
  loaded.model.eval();
  assert.deepEqual(logitsOf(loaded.model, ids), logitsOf(model, ids));
  // The head is still tied after loading: one tensor serves as embedding and output matrix.
  assert.equal(loaded.model.lm_head.weight, loaded.model.transformer.wte.weight);
  model.dispose();
  loaded.model.dispose();
});

test('a model without biases exports explicit zero biases (transformers GPT-2 always has them)', async () => {
  torch.manualSeed(4);
  const noBias = new GPT({ ...tiny, bias: false });
  noBias.eval();
  torch.noGrad(() => {
    for (const p of noBias.parameters()) torch.scope(() => p.copy_(torch.randn(p.shape).mul(0.3)));
  });
  const out = path.join(tmp, 'nobias');
  await exportHuggingFace(noBias, out);
  const file = await SafetensorsFile.open(path.join(out, 'model.safetensors'));
  const names = file.tensors.map((t) => t.name);
  await file.close();
  assert.equal(names.length, 2 + 2 + tiny.nLayer * 12, 'the same tensors as a model with biases');
  assert.ok(names.includes('transformer.h.1.mlp.c_fc.bias') && names.includes('transformer.ln_f.bias'));
  const loaded = await loadModel(path.join(out, 'model.safetensors'));
  await loaded.reader.close();
  loaded.model.eval();
  assert.equal(loaded.model.config.bias, true);
  assert.deepEqual(logitsOf(loaded.model, ids), logitsOf(noBias, ids));
  noBias.dispose();
  loaded.model.dispose();
});

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [bin, ...args], { cwd: tmp });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

test('nanogpt export end to end: checkpoint → HF folder that loads back with the same logits', async () => {
  const model = randomModel(3);
  const ckpt = path.join(tmp, 'run', 'ckpt.safetensors');
  await saveModel(ckpt, model);
  const out = path.join(tmp, 'cli-out', 'hf');
  const r = await cli(['export', '--ckpt_path', ckpt, '--out_dir', out]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /loaded .*ckpt\.safetensors \(model\): 2 layers, 2 heads, 16 dims/);
  assert.match(r.stderr, /wrote .*model\.safetensors \(28 tensors/);
  const loaded = await loadModel(path.join(out, 'model.safetensors'));
  await loaded.reader.close();
  loaded.model.eval();
  assert.deepEqual(logitsOf(loaded.model, ids), logitsOf(model, ids));
  model.dispose();
  loaded.model.dispose();
});

test('nanogpt export --help shows usage and an example', async () => {
  const r = await cli(['export', '--help']);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /Usage: nanogpt export --ckpt_path FILE --out_dir DIR/);
  assert.match(r.stdout, /Examples:\n\s+nanogpt export --ckpt_path \S+ --out_dir \S+/);
});

test('nanogpt export: bad input is a clear error with exit code 2', async () => {
  const garbage = path.join(tmp, 'garbage.safetensors');
  writeFileSync(garbage, 'this is not a safetensors file at all');
  const notGpt = path.join(tmp, 'not-gpt.safetensors');
  const { writeSafetensors } = await import('../../src/io/safetensors.js');
  await writeSafetensors(notGpt, [{ name: 'x', dtype: 'F32', shape: [2], data: new Uint8Array(8) }]);
  const aFile = path.join(tmp, 'a-file');
  writeFileSync(aFile, '');
  const cases: [string[], RegExp][] = [
    [['export', '--out_dir', 'o'], /--ckpt_path is required/],
    [['export', '--ckpt_path', 'x.safetensors'], /--out_dir is required/],
    [['export', '--ckpt_path', path.join(tmp, 'missing.safetensors'), '--out_dir', 'o'], /checkpoint .*missing\.safetensors not found/],
    [['export', '--ckpt_path', tmp, '--out_dir', 'o'], /is a folder/],
    [['export', '--ckpt_path', garbage, '--out_dir', 'o'], /garbage\.safetensors/],
    [['export', '--ckpt_path', notGpt, '--out_dir', 'o'], /neither a nanogpt-ts checkpoint nor a Hugging Face GPT-2 file/],
    [['export', '--ckpt_path', notGpt, '--out_dir', aFile], /exists and is not a folder/],
    [['export', '--ckpt_path', notGpt, '--out_dir', 's3://bucket/x'], /must be a local folder/],
    [['export', '--ckpt', notGpt], /unknown option --ckpt for 'nanogpt export'[\s\S]*--ckpt_path/],
  ];
  for (const [args, message] of cases) {
    const r = await cli(args);
    assert.equal(r.code, 2, `${args.join(' ')}: exit 2, got ${r.code}\n${r.stderr}`);
    assert.match(r.stderr, /^error: /, args.join(' '));
    assert.match(r.stderr, message, args.join(' '));
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  }
  assert.ok(!existsSync(path.join(tmp, 'o')), 'nothing written on error');
});
