import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as torch from '../../src/torch/index.js';
import { GPT } from '../../src/gpt/model.js';
import { GPT2_VOCAB_SIZE } from '../../src/gpt/config.js';
import { loadModel, saveModel, saveSnapshot } from '../../src/train/checkpoint.js';
import { convertLayout, hfConfigJson } from '../../src/gpt/hf-layout.js';
import { saveTensors } from '../../src/io/tensor-file.js';
import { GENERATED_BANNER, SAMPLE_SEPARATOR, samplesPerBatch } from '../../src/cli/sample.js';
import { generateBatch } from '../../src/gpt/generate.js';

// Compiled to dist/test/cli/: the repository root is three levels up.
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const bin = path.join(root, 'bin', 'nanogpt');

let dir = '';
let ckpt = '';
let snapshot = '';
let hfFile = '';

before(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'nanogpt-sample-'));
  ckpt = path.join(dir, 'tiny.pt');
  torch.manualSeed(0);
  // GPT-2's vocabulary (the prompt is GPT-2 BPE), everything else tiny; block 16 so 5-token runs fit and longer
  // prompts slide.
  const model = new GPT({ nLayer: 1, nHead: 2, nEmbd: 16, blockSize: 16, vocabSize: GPT2_VOCAB_SIZE, dropout: 0, bias: true });
  torch.noGrad(() => {
    for (const p of model.parameters()) if (p.ndim >= 2) p.normal_(0, 0.3);
  });
  await saveModel(ckpt, model);
  // The same weights as a training snapshot (with optimizer state) and as a Hugging Face GPT-2 file: HF names
  // without the "transformer." prefix, Conv1D matrices stored transposed, config.json beside it.
  snapshot = path.join(dir, 'snapshot.pt');
  const opt = new torch.AdamW(model.parameters(), { lr: 1e-3 });
  await saveSnapshot(snapshot, model, opt, { iter: 1, optimizerStep: 1, bestValLoss: 9, tokens: 0, sampler: { train: [], val: [] }, rng: '', worldSize: 1 }, {});
  opt.dispose();
  mkdirSync(path.join(dir, 'hf'));
  hfFile = path.join(dir, 'hf', 'model.safetensors');
  await torch.scope(async () => {
    const entries: [string, torch.Tensor][] = [...model.stateDict()].map(([name, t]) => [name.replace(/^transformer\./, ''), convertLayout(name, t)]);
    await saveTensors(hfFile, entries, { format: 'pt' });
  });
  writeFileSync(path.join(dir, 'hf', 'config.json'), JSON.stringify(hfConfigJson(model.config)));
  model.dispose();
});

after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function nanogpt(args: string[], cwd = dir): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [bin, ...args], { cwd, encoding: 'utf8', timeout: 60_000, env: { ...process.env, OMP_NUM_THREADS: '1' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function assertUserError(r: ReturnType<typeof nanogpt>, pattern: RegExp): void {
  assert.equal(r.code, 2, `exit code; stderr: ${r.stderr}`);
  assert.match(r.stderr, pattern);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  assert.doesNotMatch(r.stderr, /internal error/);
}

test('prints the original banners and each sample, exit 0', () => {
  const r = nanogpt(['sample', '--ckpt_path', ckpt, '--max_new_tokens', '5', '--num_samples', '2', '--threads', '1']);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.split('\n');
  assert.equal(lines[0], 'Input Prompt: It is interesting ');
  assert.equal(lines[1], GENERATED_BANNER);
  assert.equal(GENERATED_BANNER, '--------------- Generated Text ---------------');
  assert.equal(r.stdout.split(`\n${SAMPLE_SEPARATOR}\n`).length, 3, r.stdout);
  const body = r.stdout.slice(lines[0]!.length + lines[1]!.length + 2);
  for (const sample of body.split(`${SAMPLE_SEPARATOR}\n`).slice(0, 2)) assert.ok(sample.startsWith('It is interesting '), sample);
  assert.match(r.stderr, /loaded .*tiny\.pt \(model\)/);
});

test('--json prints one parsable object; same seed, same tokens; greedy with and without the cache agree', () => {
  const run = (extra: string[]) => {
    const r = nanogpt(['sample', '--ckpt_path', ckpt, '--max_new_tokens', '5', '--num_samples', '2', '--json', ...extra]);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as { prompt: string; prompt_tokens: number[]; samples: { text: string; tokens: number[] }[]; settings: Record<string, unknown> };
  };
  const a = run([]);
  assert.equal(a.prompt, 'It is interesting ');
  assert.deepEqual(a.settings, { num_samples: 2, max_new_tokens: 5, temperature: 0.6, top_k: 200, top_p: null, seed: 1337, stop_at_eot: false, kv_cache: true, dtype: 'fp32' });
  assert.equal(a.samples.length, 2);
  for (const s of a.samples) {
    assert.equal(s.tokens.length, 5);
    assert.ok(s.text.startsWith('It is interesting '));
  }
  assert.deepEqual(run([]).samples.map((s) => s.tokens), a.samples.map((s) => s.tokens));
  // The --no_cache flag is a boolean with a negative spelling: the cache is off, the greedy tokens are the same.
  const greedy = run(['--temperature', '0', '--seed', '7', '--prompt', 'Once upon a time, in a land far away, there lived a']);
  const greedyNoCache = run(['--temperature', '0', '--no_cache', '--prompt', 'Once upon a time, in a land far away, there lived a']);
  assert.equal(greedyNoCache.settings.kv_cache, false);
  assert.deepEqual(greedyNoCache.samples[0]!.tokens, greedy.samples[0]!.tokens);
});

test('more samples than one batch holds: later batches continue the per-sample seeds', async () => {
  const cfg = { nLayer: 1, blockSize: 16, nEmbd: 16 };
  assert.equal(samplesPerBatch(cfg), 256);
  assert.equal(samplesPerBatch({ nLayer: 12, blockSize: 1024, nEmbd: 768 }), 28); // GPT-2 small: 75 MB each in 2 GiB
  assert.equal(samplesPerBatch({ nLayer: 1000, blockSize: 1 << 20, nEmbd: 4096 }), 1);
  const r = nanogpt(['sample', '--ckpt_path', ckpt, '--max_new_tokens', '3', '--num_samples', '258', '--seed', '5', '--json']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /256 samples decoded together \(1–256 of 258\)/);
  assert.match(r.stderr, /2 samples decoded together \(257–258 of 258\)/);
  const doc = JSON.parse(r.stdout) as { prompt_tokens: number[]; samples: { tokens: number[] }[] };
  assert.equal(doc.samples.length, 258);
  // Sample i draws from the generator seeded (seed, i) whatever batch it is in: the last two, decoded alone here.
  const loaded = await loadModel(ckpt, { dropout: 0 });
  await loaded.reader.close();
  try {
    const alone = generateBatch(loaded.model, doc.prompt_tokens, 2, { maxNewTokens: 3, temperature: 0.6, topK: 200, seed: 5, firstSample: 256 });
    assert.deepEqual(alone, doc.samples.slice(256).map((x) => x.tokens));
  } finally {
    loaded.model.dispose();
  }
});

test('--stream prints the same text as the batch output', () => {
  const common = ['sample', '--ckpt_path', ckpt, '--max_new_tokens', '8', '--num_samples', '1', '--seed', '3', '--top_p', '0.9'];
  const plain = nanogpt(common);
  const streamed = nanogpt([...common, '--stream']);
  assert.equal(plain.code, 0, plain.stderr);
  assert.equal(streamed.code, 0, streamed.stderr);
  assert.equal(streamed.stdout, plain.stdout);
});

test('an empty prompt, a prompt file and the default checkpoint location', () => {
  const empty = nanogpt(['sample', '--ckpt_path', ckpt, '--prompt', '', '--max_new_tokens', '3', '--num_samples', '1', '--json']);
  assert.equal(empty.code, 0, empty.stderr);
  const doc = JSON.parse(empty.stdout) as { prompt_tokens: number[]; samples: { tokens: number[] }[] };
  assert.deepEqual(doc.prompt_tokens, []);
  assert.equal(doc.samples[0]!.tokens.length, 3);

  const promptFile = path.join(dir, 'prompt.txt');
  writeFileSync(promptFile, 'Hello from a file');
  const fromFile = nanogpt(['sample', '--ckpt_path', ckpt, '--prompt_file', promptFile, '--max_new_tokens', '2', '--num_samples', '1']);
  assert.equal(fromFile.code, 0, fromFile.stderr);
  assert.ok(fromFile.stdout.startsWith('Input Prompt: Hello from a file\n'));

  // Without --ckpt_path: out/ckpt.pt, where `nanogpt train` writes it by default; the message says what to do.
  const runDir = path.join(dir, 'run');
  mkdirSync(runDir);
  assertUserError(nanogpt(['sample'], runDir), /no checkpoint at out\/ckpt\.pt[\s\S]*nanogpt train[\s\S]*--ckpt_path/);
  mkdirSync(path.join(runDir, 'out'));
  copyFileSync(ckpt, path.join(runDir, 'out', 'ckpt.pt'));
  const byDefault = nanogpt(['sample', '--max_new_tokens', '2', '--num_samples', '1'], runDir);
  assert.equal(byDefault.code, 0, byDefault.stderr);
  assert.match(byDefault.stderr, /loaded out\/ckpt\.pt/);
});

test('our checkpoints, our snapshots and Hugging Face GPT-2 files give the same text', () => {
  const greedy = (file: string) => {
    const r = nanogpt(['sample', '--ckpt_path', file, '--max_new_tokens', '6', '--num_samples', '1', '--temperature', '0', '--json']);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as { source: { kind: string }; samples: { tokens: number[] }[] };
  };
  const fromCkpt = greedy(ckpt);
  const fromSnapshot = greedy(snapshot);
  const fromHf = greedy(hfFile);
  assert.deepEqual([fromCkpt.source.kind, fromSnapshot.source.kind, fromHf.source.kind], ['model', 'snapshot', 'huggingface']);
  assert.deepEqual(fromSnapshot.samples[0]!.tokens, fromCkpt.samples[0]!.tokens);
  assert.deepEqual(fromHf.samples[0]!.tokens, fromCkpt.samples[0]!.tokens);
  // Folders as users pass them: a run directory (here without ckpt.pt, so its snapshot.pt) and a model folder.
  const fromRunDir = greedy(dir);
  const fromHfDir = greedy(path.join(dir, 'hf'));
  assert.deepEqual([fromRunDir.source.kind, fromHfDir.source.kind], ['snapshot', 'huggingface']);
  assert.deepEqual(fromRunDir.samples[0]!.tokens, fromCkpt.samples[0]!.tokens);
  assert.deepEqual(fromHfDir.samples[0]!.tokens, fromCkpt.samples[0]!.tokens);
});

test('a prompt longer than block_size slides', () => {
  const long = Array.from({ length: 40 }, (_, i) => `word${i}`).join(' ');
  const r = nanogpt(['sample', '--ckpt_path', ckpt, '--prompt', long, '--max_new_tokens', '20', '--num_samples', '1', '--temperature', '0', '--json']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /more than the block size of 16/);
  assert.equal((JSON.parse(r.stdout) as { samples: { tokens: number[] }[] }).samples[0]!.tokens.length, 20);
});

test('bad inputs exit 2 with a clear message and no stack trace', () => {
  assertUserError(nanogpt(['sample', '--ckpt_path', path.join(dir, 'nope.pt')]), /no checkpoint at .*nope\.pt[\s\S]*train a model first/);
  assertUserError(nanogpt(['sample', '--ckpt_path', ckpt, '--temperature', '-1']), /--temperature must be >= 0/);
  assertUserError(nanogpt(['sample', '--ckpt_path', ckpt, '--top_k', '0']), /--top_k must be an integer >= 1/);
  assertUserError(nanogpt(['sample', '--ckpt_path', ckpt, '--top_p', '1.5']), /--top_p must be in \(0, 1\]/);
  assertUserError(nanogpt(['sample', '--ckpt_path', ckpt, '--num_samples', '0']), /--num_samples must be >= 1/);
  assertUserError(nanogpt(['sample', '--ckpt_path', ckpt, '--init_from', 'gpt2']), /both given/);
  assertUserError(nanogpt(['sample', '--init_from', 'gpt5']), /not a pretrained model/);
  assertUserError(nanogpt(['sample', '--ckpt_path', ckpt, '--bogus']), /unknown option --bogus/);
  assertUserError(nanogpt(['sample', '--ckpt_path', ckpt, '--dtype', 'fp16']), /--dtype must be fp32 or bf16/);
});

test('--dtype bf16 samples under bf16 autocast', () => {
  const common = ['sample', '--ckpt_path', ckpt, '--max_new_tokens', '6', '--num_samples', '2', '--dtype', 'bf16'];
  const r = nanogpt([...common, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const doc = JSON.parse(r.stdout) as { settings: { dtype: string }; samples: { tokens: number[] }[] };
  assert.equal(doc.settings.dtype, 'bf16');
  assert.equal(doc.samples.length, 2);
  for (const s of doc.samples) assert.equal(s.tokens.length, 6);
  assert.equal(nanogpt([...common, '--stream']).code, 0);
});
