import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, promises as fs, mkdtempSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import * as torch from '../../src/torch/index.js';
import { pretrainedWeightsFile } from '../../src/gpt/pretrained.js';
import { writeSafetensors } from '../../src/io/safetensors.js';
import { loadModel } from '../../src/train/checkpoint.js';
import { UserError } from '../../src/util/errors.js';
import { sha256, startHubServer, type HubServer } from '../helpers/hub-server.js';
import { mulberry32 } from '../helpers/random.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'nanogpt-pretrained-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

// ---------------------------------------------------------------------------------------------------------------
// A synthetic Hugging Face GPT-2 file, laid out as OpenAI's original upload is: names without the `transformer.`
// prefix, Conv1D weights [in, out], the causal-mask buffers `attn.bias` / `attn.masked_bias`, no lm_head.

const cfg = { nLayer: 2, nHead: 2, nEmbd: 8, vocab: 11, block: 6 };

/** Deterministic uniform numbers in [-0.5, 0.5), so the file is the same on every run. */
function rng(seed: number): () => number {
  const next = mulberry32(seed);
  return () => next() - 0.5;
}

interface HfTensor {
  shape: number[];
  data: Float32Array;
}

function syntheticHfWeights(): Map<string, HfTensor> {
  const rand = rng(1234);
  const { nLayer, nEmbd: C, vocab, block } = cfg;
  const w = new Map<string, HfTensor>();
  const put = (name: string, shape: number[], f: () => number): void => {
    const n = shape.reduce((a, b) => a * b, 1);
    w.set(name, { shape, data: Float32Array.from({ length: n }, f) });
  };
  // Weights large enough that activations reach GELU's curved region, where tanh-GELU and erf-GELU differ.
  const mat = (): number => rand() * 1.6;
  const gain = (): number => 1 + rand() * 0.4;
  put('wte.weight', [vocab, C], mat);
  put('wpe.weight', [block, C], mat);
  for (let l = 0; l < nLayer; l++) {
    const p = `h.${l}.`;
    put(`${p}ln_1.weight`, [C], gain);
    put(`${p}ln_1.bias`, [C], mat);
    // The causal mask buffer older transformers versions saved: [1, 1, n_ctx, n_ctx] lower-triangular ones.
    let k = 0;
    put(`${p}attn.bias`, [1, 1, block, block], () => {
      const i = Math.floor(k / block);
      const j = k++ % block;
      return j <= i ? 1 : 0;
    });
    put(`${p}attn.masked_bias`, [], () => -1e4);
    put(`${p}attn.c_attn.weight`, [C, 3 * C], mat);
    put(`${p}attn.c_attn.bias`, [3 * C], mat);
    put(`${p}attn.c_proj.weight`, [C, C], mat);
    put(`${p}attn.c_proj.bias`, [C], mat);
    put(`${p}ln_2.weight`, [C], gain);
    put(`${p}ln_2.bias`, [C], mat);
    put(`${p}mlp.c_fc.weight`, [C, 4 * C], mat);
    put(`${p}mlp.c_fc.bias`, [4 * C], mat);
    put(`${p}mlp.c_proj.weight`, [4 * C, C], mat);
    put(`${p}mlp.c_proj.bias`, [C], mat);
  }
  put('ln_f.weight', [C], gain);
  put('ln_f.bias', [C], mat);
  return w;
}

const hfConfig = {
  architectures: ['GPT2LMHeadModel'],
  model_type: 'gpt2',
  vocab_size: cfg.vocab,
  n_positions: cfg.block,
  n_ctx: cfg.block,
  n_embd: cfg.nEmbd,
  n_layer: cfg.nLayer,
  n_head: cfg.nHead,
  activation_function: 'gelu_new',
  layer_norm_epsilon: 1e-5,
};

async function writeHfFolder(dir: string, weights: Map<string, HfTensor>): Promise<string> {
  await fs.mkdir(dir, { recursive: true });
  const file = path.join(dir, 'model.safetensors');
  await writeSafetensors(
    file,
    [...weights].map(([name, t]) => ({ name, dtype: 'F32' as const, shape: t.shape, data: new Uint8Array(t.data.buffer) })),
    { format: 'pt' },
  );
  await fs.writeFile(path.join(dir, 'config.json'), JSON.stringify(hfConfig));
  return file;
}

// ---------------------------------------------------------------------------------------------------------------
// The reference: GPT-2's forward pass written out in loops over float64, straight from the HF tensors (x·W with
// W [in, out]), sharing no code with the model or the tensor engine.

function referenceLogits(w: Map<string, HfTensor>, ids: number[]): Float64Array[] {
  const { nLayer, nHead, nEmbd: C, vocab } = cfg;
  const T = ids.length;
  const D = C / nHead;
  const get = (n: string): Float32Array => w.get(n)!.data;
  /** x [C_in] times W [C_in, C_out] plus b. */
  const affine = (x: Float64Array, W: Float32Array, b: Float32Array): Float64Array => {
    const out = Float64Array.from(b);
    const nOut = b.length;
    for (let i = 0; i < x.length; i++) for (let o = 0; o < nOut; o++) out[o]! += x[i]! * W[i * nOut + o]!;
    return out;
  };
  const layerNorm = (x: Float64Array, g: Float32Array, b: Float32Array): Float64Array => {
    let mean = 0;
    for (const v of x) mean += v / x.length;
    let variance = 0;
    for (const v of x) variance += (v - mean) ** 2 / x.length;
    return x.map((v, i) => ((v - mean) / Math.sqrt(variance + 1e-5)) * g[i]! + b[i]!);
  };
  const gelu = (v: number): number => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));

  const wte = get('wte.weight');
  const wpe = get('wpe.weight');
  let x = ids.map((id, t) => Float64Array.from({ length: C }, (_, c) => wte[id * C + c]! + wpe[t * C + c]!));
  for (let l = 0; l < nLayer; l++) {
    const p = (n: string): Float32Array => get(`h.${l}.${n}`);
    const qkv = x.map((xt) => affine(layerNorm(xt, p('ln_1.weight'), p('ln_1.bias')), p('attn.c_attn.weight'), p('attn.c_attn.bias')));
    const y = x.map(() => new Float64Array(C));
    for (let h = 0; h < nHead; h++) {
      for (let i = 0; i < T; i++) {
        // Causal: position i attends to positions 0..i only.
        const scores: number[] = [];
        for (let j = 0; j <= i; j++) {
          let s = 0;
          for (let d = 0; d < D; d++) s += qkv[i]![h * D + d]! * qkv[j]![C + h * D + d]!;
          scores.push(s / Math.sqrt(D));
        }
        const max = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - max));
        const z = e.reduce((a, b) => a + b, 0);
        for (let j = 0; j <= i; j++) for (let d = 0; d < D; d++) y[i]![h * D + d]! += (e[j]! / z) * qkv[j]![2 * C + h * D + d]!;
      }
    }
    x = x.map((xt, t) => {
      const a = affine(y[t]!, p('attn.c_proj.weight'), p('attn.c_proj.bias'));
      const h1 = xt.map((v, c) => v + a[c]!);
      const m = affine(layerNorm(h1, p('ln_2.weight'), p('ln_2.bias')), p('mlp.c_fc.weight'), p('mlp.c_fc.bias')).map(gelu);
      const o = affine(m, p('mlp.c_proj.weight'), p('mlp.c_proj.bias'));
      return h1.map((v, c) => v + o[c]!);
    });
  }
  // Final LayerNorm, then the head tied to the token embedding: logits[v] = x · wte[v].
  return x.map((xt) => {
    const f = layerNorm(xt, get('ln_f.weight'), get('ln_f.bias'));
    return Float64Array.from({ length: vocab }, (_, v) => f.reduce((s, fc, c) => s + fc * wte[v * C + c]!, 0));
  });
}

const ids = [3, 0, 10, 7, 7, 1];
const weights = syntheticHfWeights();
let hfFile: string;

/** The synthetic file, written once (the Hub server below serves the same bytes). */
async function synthetic(): Promise<string> {
  hfFile ??= await writeHfFolder(path.join(tmp, 'hf-synthetic'), weights);
  return hfFile;
}

async function modelLogits(file: string): Promise<{ logits: number[][]; kind: string; nHead: number }> {
  const loaded = await loadModel(file);
  await loaded.reader.close();
  loaded.model.eval();
  const flat = torch.scope(() =>
    torch.noGrad(() => {
      const idx = torch.tensor([ids], { dtype: 'int64' });
      return loaded.model.allLogits(idx).toTypedArray() as Float32Array;
    }),
  );
  const nHead = loaded.model.config.nHead;
  loaded.model.dispose();
  return { logits: ids.map((_, t) => [...flat.subarray(t * cfg.vocab, (t + 1) * cfg.vocab)]), kind: loaded.kind, nHead };
}

function assertClose(got: ArrayLike<number>[], want: ArrayLike<number>[], tol: number, what: string): void {
  let worst = 0;
  for (let t = 0; t < want.length; t++) for (let v = 0; v < want[t]!.length; v++) worst = Math.max(worst, Math.abs(got[t]![v]! - want[t]![v]!));
  assert.ok(worst < tol, `${what}: max |Δ| = ${worst} ≥ ${tol}`);
}

test('a model loaded from a Hugging Face-layout file gives the logits of an independent float64 computation', async () => {
  const ref = referenceLogits(weights, ids);
  const { logits, kind, nHead } = await modelLogits(hfFile);
  assert.equal(kind, 'huggingface');
  assert.equal(nHead, 2, 'n_head read from the config.json beside the weights');
  // Sanity of the reference itself: logits are O(1) and differ between positions (a broken mask or a missing
  // transpose would still give numbers, so the comparison below is what matters).
  assert.ok(ref.some((r) => r.some((v) => Math.abs(v) > 0.5)));
  // float32 against float64 differs by ~1e-6 here; 1e-5 is tighter than the 1e-4 the issue asks for, and still
  // far from the ~4e-4 that the erf GELU instead of the tanh one would give.
  assertClose(logits, ref, 1e-5, 'model vs float64 reference');
});

test('the same logits from PyTorch, computed from the raw file with torch ops', async (t) => {
  const python = '/usr/bin/python3';
  if (!existsSync(python) || spawnSync(python, ['-c', 'import torch'], { stdio: 'ignore' }).status !== 0) {
    t.skip('python3 with torch is not installed');
    return;
  }
  // Reads the safetensors file by hand (8-byte header length, JSON header, raw little-endian data) so nothing
  // beyond torch is needed, and runs GPT-2 in float64 from the HF tensors as transformers' GPT2 does.
  const script = String.raw`
import json, math, os, struct, sys
import torch
import torch.nn.functional as F
path, ids = sys.argv[1], json.loads(sys.argv[2])
raw = open(path, 'rb').read()
n = struct.unpack('<Q', raw[:8])[0]
header = json.loads(raw[8:8 + n])
base = 8 + n
def get(name):
    e = header[name]
    a, b = e['data_offsets']
    assert e['dtype'] == 'F32'
    return torch.frombuffer(bytearray(raw[base + a:base + b]), dtype=torch.float32).reshape(e['shape']).double()
cfg = json.load(open(os.path.join(os.path.dirname(path), 'config.json')))
C, H, eps = cfg['n_embd'], cfg['n_head'], cfg['layer_norm_epsilon']
idx = torch.tensor([ids])
B, T = idx.shape
x = get('wte.weight')[idx] + get('wpe.weight')[:T]
for l in range(cfg['n_layer']):
    p = lambda s: get('h.%d.%s' % (l, s))
    h = F.layer_norm(x, (C,), p('ln_1.weight'), p('ln_1.bias'), eps)
    q, k, v = (h @ p('attn.c_attn.weight') + p('attn.c_attn.bias')).split(C, dim=2)
    q, k, v = [z.view(B, T, H, C // H).transpose(1, 2) for z in (q, k, v)]
    att = (q @ k.transpose(-2, -1)) / math.sqrt(C // H)
    att = att.masked_fill(p('attn.bias')[:, :, :T, :T] == 0, float('-inf')).softmax(-1)
    y = (att @ v).transpose(1, 2).reshape(B, T, C)
    x = x + y @ p('attn.c_proj.weight') + p('attn.c_proj.bias')
    h = F.layer_norm(x, (C,), p('ln_2.weight'), p('ln_2.bias'), eps)
    x = x + F.gelu(h @ p('mlp.c_fc.weight') + p('mlp.c_fc.bias'), approximate='tanh') @ p('mlp.c_proj.weight') + p('mlp.c_proj.bias')
x = F.layer_norm(x, (C,), get('ln_f.weight'), get('ln_f.bias'), eps)
print(json.dumps((x @ get('wte.weight').T)[0].tolist()))
`;
  const scriptPath = path.join(tmp, 'reference.py');
  await fs.writeFile(scriptPath, script);
  const { stdout } = await promisify(execFile)(python, [scriptPath, hfFile, JSON.stringify(ids)], { timeout: 60_000 });
  const torchLogits = JSON.parse(stdout) as number[][];
  assertClose(torchLogits, referenceLogits(weights, ids), 1e-9, 'PyTorch vs float64 reference');
  assertClose((await modelLogits(hfFile)).logits, torchLogits, 1e-5, 'model vs PyTorch');
});

// ---------------------------------------------------------------------------------------------------------------
// Downloading from a Hub-shaped local server into a temporary HF_HOME.

const REPO = 'openai-community/gpt2';
let server: HubServer;
let weightsBytes: Uint8Array;

before(async () => {
  // One hook only: root-level hooks are not awaited one after another, so this one writes the file itself.
  weightsBytes = new Uint8Array(await fs.readFile(await synthetic()));
  server = await startHubServer({
    [REPO]: {
      type: 'model',
      revisions: {
        main: {
          files: {
            'model.safetensors': weightsBytes,
            'config.json': new TextEncoder().encode(JSON.stringify(hfConfig)),
            'README.md': new TextEncoder().encode('# gpt2\n'),
            // Other formats of the same weights, as the real repo has: never downloaded.
            'pytorch_model.bin': new Uint8Array(4096),
            'onnx/decoder_model.onnx': new Uint8Array(2048),
          },
        },
      },
    },
  });
});
after(async () => {
  await server?.close();
});

const HF_VARS = ['HF_HOME', 'HF_HUB_CACHE', 'HUGGINGFACE_HUB_CACHE', 'HF_ENDPOINT', 'HF_TOKEN', 'HUGGING_FACE_HUB_TOKEN', 'HF_HUB_OFFLINE', 'HF_TOKEN_PATH'];

/** Runs `fn` with exactly these Hugging Face variables set (the client reads them as Python's does). */
async function withEnv<T>(vars: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries(HF_VARS.map((k) => [k, process.env[k]]));
  for (const k of HF_VARS) delete process.env[k];
  Object.assign(process.env, vars);
  try {
    return await fn();
  } finally {
    for (const k of HF_VARS) delete process.env[k];
    for (const [k, v] of Object.entries(saved)) if (v !== undefined) process.env[k] = v;
  }
}

const fast = { hub: { retryDelayMs: 1 } };
const downloads = (): string[] => server.requests.filter((r) => r.url.includes('/resolve/')).map((r) => r.url);

test('gpt2 weights: downloaded into the HF cache layout, a cut connection resumed, loadable', async () => {
  const home = path.join(tmp, 'home-download');
  server.requests.length = 0;
  server.cutNext('model.safetensors', 1000);
  const lines: string[] = [];
  const file = await withEnv({ HF_HOME: home, HF_ENDPOINT: server.endpoint }, () => pretrainedWeightsFile('gpt2', (s) => lines.push(s), fast));

  const commit = server.commitOf(REPO, 'main');
  const repoDir = path.join(home, 'hub', 'models--openai-community--gpt2');
  assert.equal(file, path.join(repoDir, 'snapshots', commit, 'model.safetensors'));
  assert.deepEqual(new Uint8Array(readFileSync(file)), weightsBytes);
  // As huggingface_hub lays it out: content in blobs/ under its sha256, a relative link in snapshots/, refs/main.
  assert.equal(readlinkSync(file), path.join('..', '..', 'blobs', sha256(weightsBytes)));
  assert.equal(readFileSync(path.join(repoDir, 'refs', 'main'), 'utf8'), commit);
  assert.ok(existsSync(path.join(path.dirname(file), 'config.json')), 'config.json beside the weights');
  // The model API routes (no /datasets/ prefix), only the two needed files, and a ranged request after the cut.
  assert.ok(server.requests.some((r) => r.url.startsWith(`/api/models/${REPO}/revision/main`)));
  assert.deepEqual(downloads().sort(), [`/${REPO}/resolve/${commit}/config.json`, `/${REPO}/resolve/${commit}/model.safetensors`, `/${REPO}/resolve/${commit}/model.safetensors`]);
  assert.ok(server.requests.some((r) => r.url.endsWith('/model.safetensors') && r.range === 'bytes=1000-'), 'resumed at byte 1000');
  assert.ok(lines.some((l) => /gpt2: downloading model\.safetensors/.test(l)), lines.join('\n'));
  assert.ok(lines.some((l) => /gpt2: model\.safetensors downloaded/.test(l)), lines.join('\n'));

  const { logits, nHead } = await modelLogits(file);
  assert.equal(nHead, 2);
  assertClose(logits, referenceLogits(weights, ids), 1e-5, 'downloaded model vs reference');
});

test('gpt2 weights: a partial download left by an earlier run is resumed, not restarted', async () => {
  const home = path.join(tmp, 'home-resume');
  const blobs = path.join(home, 'hub', 'models--openai-community--gpt2', 'blobs');
  await fs.mkdir(blobs, { recursive: true });
  await fs.writeFile(path.join(blobs, `${sha256(weightsBytes)}.incomplete`), weightsBytes.subarray(0, 1500));
  server.requests.length = 0;
  const lines: string[] = [];
  const file = await withEnv({ HF_HOME: home, HF_ENDPOINT: server.endpoint }, () => pretrainedWeightsFile('gpt2', (s) => lines.push(s), fast));
  assert.deepEqual(new Uint8Array(readFileSync(file)), weightsBytes);
  const weightRequests = server.requests.filter((r) => r.url.endsWith('/model.safetensors'));
  assert.deepEqual(weightRequests.map((r) => r.range), ['bytes=1500-']);
  assert.ok(lines.some((l) => /resuming at 1\.5 kB/.test(l)), lines.join('\n'));
});

test('gpt2 weights: a complete cache is used without the network, and with HF_HUB_OFFLINE=1', async () => {
  const home = path.join(tmp, 'home-download'); // filled by the first download test
  const commit = server.commitOf(REPO, 'main');
  const expected = path.join(home, 'hub', 'models--openai-community--gpt2', 'snapshots', commit, 'model.safetensors');
  server.requests.length = 0;
  const lines: string[] = [];
  const online = await withEnv({ HF_HOME: home, HF_ENDPOINT: server.endpoint }, () => pretrainedWeightsFile('gpt2', (s) => lines.push(s)));
  assert.equal(online, expected);
  // An unreachable endpoint proves no request is even attempted offline.
  const offline = await withEnv({ HF_HOME: home, HF_ENDPOINT: 'http://127.0.0.1:9', HF_HUB_OFFLINE: '1' }, () => pretrainedWeightsFile('gpt2', (s) => lines.push(s)));
  assert.equal(offline, expected);
  assert.equal(server.requests.length, 0, 'no request for a complete cache');
  assert.ok(lines.every((l) => /using cached weights/.test(l)), lines.join('\n'));
});

test('gpt2 weights missing offline or unreachable: the error says where to put the file, and that place works', async () => {
  const home = path.join(tmp, 'home-empty');
  const snapshots = path.join(home, 'hub', 'models--openai-community--gpt2', 'snapshots');
  const wantDir = path.join(snapshots, 'local');
  const offline = await withEnv({ HF_HOME: home, HF_ENDPOINT: server.endpoint, HF_HUB_OFFLINE: '1' }, () => pretrainedWeightsFile('gpt2', () => undefined).then(
    () => assert.fail('expected an error'),
    (e: unknown) => e,
  ));
  assert.ok(offline instanceof UserError);
  assert.match(offline.message, /the gpt2 weights are not available: HF_HUB_OFFLINE is set/);
  assert.ok(offline.message.includes(`into ${wantDir}${path.sep}`), offline.message);
  assert.match(offline.message, /init_from: \/path\/to\/model\.safetensors/);
  assert.match(offline.message, /https:\/\/huggingface\.co\/openai-community\/gpt2/);

  const unreachable = await withEnv({ HF_HOME: home, HF_ENDPOINT: 'http://127.0.0.1:9' }, () => pretrainedWeightsFile('gpt2-medium', () => undefined, fast).then(
    () => assert.fail('expected an error'),
    (e: unknown) => e,
  ));
  assert.ok(unreachable instanceof UserError);
  assert.match(unreachable.message, /the gpt2-medium weights are not available: cannot reach the Hugging Face Hub at http:\/\/127\.0\.0\.1:9/);
  assert.ok(unreachable.message.includes(path.join(home, 'hub', 'models--openai-community--gpt2-medium', 'snapshots', 'local')), unreachable.message);

  // Following the advice: files copied into that folder by hand are found offline.
  await writeHfFolder(wantDir, weights);
  const found = await withEnv({ HF_HOME: home, HF_HUB_OFFLINE: '1' }, () => pretrainedWeightsFile('gpt2', () => undefined));
  assert.equal(found, path.join(wantDir, 'model.safetensors'));
});

test('pretrained: a repo missing on the Hub says "model", and unknown sizes are rejected', async () => {
  const home = path.join(tmp, 'home-404');
  await assert.rejects(
    withEnv({ HF_HOME: home, HF_ENDPOINT: server.endpoint }, () => pretrainedWeightsFile('gpt2-xl', () => undefined)),
    (e: unknown) => e instanceof UserError && /model 'openai-community\/gpt2-xl' not found on http/.test(e.message) && /private model/.test(e.message),
  );
  await assert.rejects(pretrainedWeightsFile('gpt3', () => undefined), (e: unknown) => e instanceof UserError && /'gpt3' is not a released GPT-2 size/.test(e.message));
});
