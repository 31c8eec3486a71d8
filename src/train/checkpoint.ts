// Checkpoints (the best model) and snapshots (everything needed to resume) as safetensors files: tensors plus
// JSON metadata. No pickle: loading a file never runs code. Paths may be local or s3://.
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import * as torch from '../torch/index.js';
import { isUserError, UserError } from '../util/errors.js';
import { GPT } from '../gpt/model.js';
import type { GPTConfig } from '../gpt/config.js';
import { convertLayout, fromHfName, inferConfig, isHfGpt2 } from '../gpt/hf-layout.js';
import { isRemote, saveTensors, TensorReader } from '../io/tensor-file.js';
import { exists as s3Exists } from '../io/object-store.js';
import { readBoundedFileSync, READ_LIMITS } from '../io/bounded-read.js';
import type { SamplerState } from './data.js';

export const MODEL_FORMAT = 'nanogpt-ts/model/1';
export const SNAPSHOT_FORMAT = 'nanogpt-ts/snapshot/1';

export interface TrainState {
  /** Next iteration to run. */
  iter: number;
  /** Optimizer steps taken (AdamW bias correction). */
  optimizerStep: number;
  bestValLoss: number;
  /** Tokens consumed so far across all ranks. */
  tokens: number;
  sampler: SamplerState;
  /** libtorch CPU generator state, base64. */
  rng: string;
  worldSize: number;
}

export async function pathExists(p: string): Promise<boolean> {
  return isRemote(p) ? s3Exists(p) : existsSync(p);
}

/** Writes the model weights (Hugging Face names, our Linear layout) and its shape. */
export async function saveModel(dest: string, model: GPT, extra: Record<string, unknown> = {}): Promise<void> {
  await saveTensors(dest, model.stateDict(), {
    format: MODEL_FORMAT,
    model_config: JSON.stringify(model.config),
    ...Object.fromEntries(Object.entries(extra).map(([k, v]) => [k, JSON.stringify(v)])),
  });
}

export async function saveSnapshot(dest: string, model: GPT, opt: torch.AdamW, state: TrainState, trainConfig: unknown, extra: Record<string, string> = {}): Promise<void> {
  const names = optimizerParamNames(model, opt);
  const entries: [string, torch.Tensor][] = [...model.stateDict()];
  opt.expAvg.forEach((t, i) => entries.push([`optimizer.exp_avg.${names[i]}`, t]));
  opt.expAvgSq.forEach((t, i) => entries.push([`optimizer.exp_avg_sq.${names[i]}`, t]));
  await saveTensors(dest, entries, {
    format: SNAPSHOT_FORMAT,
    model_config: JSON.stringify(model.config),
    train_state: JSON.stringify(state),
    train_config: JSON.stringify(trainConfig),
    ...extra,
  });
}

/** The parameter name of each of the optimizer's parameters, in the optimizer's order. */
function optimizerParamNames(model: GPT, opt: torch.AdamW): string[] {
  const byTensor = new Map([...model.stateDict()].map(([n, t]) => [t, n]));
  return opt.params.map((p) => {
    const n = byTensor.get(p);
    if (n === undefined) throw new Error('optimizer holds a tensor that is not a model parameter');
    return n;
  });
}

export interface LoadedModel {
  model: GPT;
  /** What the file was: one of our checkpoints/snapshots, or a Hugging Face GPT-2 file. */
  kind: 'model' | 'snapshot' | 'huggingface';
  reader: TensorReader;
}

function parseJson<T>(reader: TensorReader, key: string): T {
  const raw = reader.metadata[key];
  if (raw === undefined) throw new UserError(`${reader.source} has no '${key}' in its metadata`, 'the file is not a complete nanogpt-ts checkpoint; use another file');
  try {
    return JSON.parse(raw) as T;
  } catch {
    throw new UserError(`${reader.source}: metadata '${key}' is not valid JSON`, 'the file is damaged; use another checkpoint');
  }
}

function readHfConfig(file: string): { n_head?: number } | undefined {
  if (isRemote(file)) return undefined;
  const cfgPath = path.join(path.dirname(file), 'config.json');
  if (!existsSync(cfgPath)) return undefined;
  try {
    return JSON.parse(readBoundedFileSync(cfgPath, READ_LIMITS.config, 'Hugging Face config').toString('utf8')) as { n_head?: number };
  } catch (err) {
    // A FIFO, device or huge file under that name is refused; an unreadable or malformed one is ignored (the
    // shape is inferred from the weights).
    if (isUserError(err)) throw err;
    return undefined;
  }
}

/**
 * Loads a model from our checkpoint or snapshot, or from a Hugging Face GPT-2 safetensors file (Conv1D weights
 * transposed). The reader stays open (for a snapshot's optimizer state); close it when done.
 */
export async function loadModel(src: string, overrides: Partial<GPTConfig> = {}): Promise<LoadedModel> {
  const reader = await TensorReader.open(src);
  try {
    const format = reader.metadata.format;
    if (format === MODEL_FORMAT || format === SNAPSHOT_FORMAT) {
      const config = { ...parseJson<GPTConfig>(reader, 'model_config'), ...overrides };
      const model = new GPT(config);
      await loadWeights(model, reader, (n) => n);
      return { model, kind: format === MODEL_FORMAT ? 'model' : 'snapshot', reader };
    }
    if (isHfGpt2(reader.names)) {
      const shapes = new Map(reader.names.map((n) => [n, reader.shape(n)]));
      const config = { ...inferConfig(shapes, readHfConfig(src)), ...overrides };
      const model = new GPT(config);
      const byOurName = new Map<string, string>();
      for (const n of reader.names) {
        const ours = fromHfName(n);
        if (ours) byOurName.set(ours, n);
      }
      await loadWeights(model, reader, (ours) => byOurName.get(ours), true);
      return { model, kind: 'huggingface', reader };
    }
    throw new UserError(`${src} is neither a nanogpt-ts checkpoint nor a Hugging Face GPT-2 file`, 'pass a file written by `nanogpt train` or a GPT-2 model.safetensors');
  } catch (err) {
    await reader.close();
    throw err;
  }
}

/** Copies every parameter from the file, one tensor at a time (peak memory: the model plus one tensor). */
async function loadWeights(model: GPT, reader: TensorReader, fileName: (ours: string) => string | undefined, hfLayout = false): Promise<void> {
  for (const [name, param] of model.stateDict()) {
    const src = fileName(name);
    if (src === undefined || !reader.has(src)) {
      throw new UserError(`${reader.source} lacks tensor ${name}`, 'the file does not match this model shape; check init_from / the model settings');
    }
    const t = await reader.get(src);
    await torch.scope(async () => {
      const value = hfLayout ? convertLayout(name, t) : t;
      const want = param.shape;
      const got = value.shape;
      if (want.length !== got.length || want.some((d, i) => d !== got[i])) {
        throw new UserError(`${reader.source}: ${name} has shape [${got.join(', ')}], the model needs [${want.join(', ')}]`, 'the checkpoint was made for another model shape');
      }
      torch.noGrad(() => param.copy_(value));
    });
    t.dispose();
  }
}

/** Restores AdamW moments and returns the training state stored in a snapshot. */
export async function restoreOptimizer(reader: TensorReader, model: GPT, opt: torch.AdamW): Promise<TrainState> {
  const names = optimizerParamNames(model, opt);
  for (const [i, name] of names.entries()) {
    for (const [kind, list] of [['exp_avg', opt.expAvg], ['exp_avg_sq', opt.expAvgSq]] as const) {
      const key = `optimizer.${kind}.${name}`;
      if (!reader.has(key)) throw new UserError(`${reader.source} lacks ${key}`, 'the snapshot is incomplete; delete it to start over');
      const t = await reader.get(key);
      torch.noGrad(() => list[i]!.copy_(t));
      t.dispose();
    }
  }
  return parseJson<TrainState>(reader, 'train_state');
}
