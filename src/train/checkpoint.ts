// Checkpoints (the best model) and snapshots (everything needed to resume) as safetensors files: tensors plus
// JSON metadata. No pickle: loading a file never runs code. Paths may be local or s3://.
import { existsSync, readdirSync, statSync } from 'node:fs';
import * as path from 'node:path';
import * as torch from '../torch/index.js';
import { isUserError, UserError } from '../util/errors.js';
import { describeValue } from '../util/format.js';
import { GPT } from '../gpt/model.js';
import { checkModelConfig, type GPTConfig, type ModelConfigNames } from '../gpt/config.js';
import { convertLayout, fromHfName, HF_SHAPE_NAMES, inferConfig, isHfGpt2, needsTranspose } from '../gpt/hf-layout.js';
import { isRemote, saveTensors, TensorReader } from '../io/tensor-file.js';
import { formatShape, type SafetensorsDtype } from '../io/safetensors-header.js';
import { exists as s3Exists } from '../io/object-store.js';
import { parseRankStates, parseTrainState, SNAPSHOT_FIX, type RankStates, type TrainState } from './snapshot-state.js';

export type { RankStates, TrainState } from './snapshot-state.js';
import { readBoundedFileSync, READ_LIMITS } from '../io/bounded-read.js';

export const MODEL_FORMAT = 'nanogpt-ts/model/1';
export const SNAPSHOT_FORMAT = 'nanogpt-ts/snapshot/1';

export async function pathExists(p: string): Promise<boolean> {
  return isRemote(p) ? s3Exists(p) : existsSync(p);
}

/** What a run directory or model folder holds that --ckpt_path can mean, in the order it is preferred. */
const IN_FOLDER = [
  ['ckpt.pt', "the run's best model"],
  ['model.safetensors', 'a Hugging Face GPT-2 model folder'],
  ['snapshot.pt', "the run's latest snapshot"],
] as const;

/**
 * A --ckpt_path as users pass it: a file as it is, or a folder — a training run's out_dir or an exported model
 * folder — resolved to the checkpoint inside it (`note` says which). A folder without one is a UserError naming the
 * checkpoint-like files it does hold. s3:// paths are objects, taken as they are.
 */
export function resolveCheckpointArg(p: string, flag = '--ckpt_path'): { file: string; note?: string } {
  if (isRemote(p) || !existsSync(p) || !statSync(p).isDirectory()) return { file: p };
  for (const [name, what] of IN_FOLDER) {
    const f = path.join(p, name);
    if (existsSync(f) && statSync(f).isFile()) return { file: f, note: `${flag} ${p} is a folder: using ${f} (${what})` };
  }
  let candidates: string[] = [];
  try {
    candidates = readdirSync(p).filter((n) => /\.(pt|safetensors)$/.test(n)).sort().slice(0, 5);
  } catch {
    // unreadable: the generic fix below still applies
  }
  throw new UserError(
    `${flag} ${p} is a folder without ckpt.pt, model.safetensors or snapshot.pt`,
    candidates.length ? `pass one of its checkpoint files, e.g. ${flag} ${path.join(p, candidates[0]!)} (it holds ${candidates.join(', ')})` : `pass a checkpoint file, e.g. ${flag} out/ckpt.pt (what nanogpt train writes)`,
  );
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

/** The dtypes weights and optimizer moments may be stored in; they are converted to float32 on loading. */
const FLOAT_DTYPES: readonly SafetensorsDtype[] = ['F32', 'BF16', 'F16', 'F64'];

/** model_config's fields as the metadata spells them (JSON.stringify of a GPTConfig). */
const METADATA_NAMES: ModelConfigNames = {
  nLayer: 'model_config.nLayer',
  nHead: 'model_config.nHead',
  nEmbd: 'model_config.nEmbd',
  blockSize: 'model_config.blockSize',
  vocabSize: 'model_config.vocabSize',
  dropout: 'model_config.dropout',
  bias: 'model_config.bias',
};

function parseJson(reader: TensorReader, key: string, fix = 'the file is damaged; use another checkpoint'): unknown {
  const raw = reader.metadata[key];
  if (raw === undefined) throw new UserError(`${reader.source} has no '${key}' in its metadata`, 'the file is not a complete nanogpt-ts checkpoint; use another file');
  try {
    return JSON.parse(raw);
  } catch (err) {
    throw new UserError(`${reader.source}: metadata '${key}' is not valid JSON (${(err as Error).message.split('\n')[0]})`, fix);
  }
}

/** The model shape a checkpoint states, checked before anything is allocated for it. */
function metadataModelConfig(reader: TensorReader, overrides: Partial<GPTConfig>): GPTConfig {
  const raw = parseJson(reader, 'model_config');
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new UserError(`${reader.source}: model_config is ${describeValue(raw)}; expected a JSON object`, 'the file is damaged; use another checkpoint');
  }
  const r = raw as Record<string, unknown>;
  const candidate = { nLayer: r.nLayer, nHead: r.nHead, nEmbd: r.nEmbd, blockSize: r.blockSize, vocabSize: r.vocabSize, dropout: r.dropout, bias: r.bias };
  const context = { source: reader.source, names: METADATA_NAMES, fix: 'the checkpoint is damaged or was edited; use another checkpoint (or put back a good copy)' };
  // The file's own values first: an override (sample sets dropout 0) must not hide a field the file lies about.
  checkModelConfig(candidate, context);
  return checkModelConfig({ ...candidate, ...overrides }, context);
}

/** config.json beside a local Hugging Face weights file: its path and its JSON object, or undefined when absent. */
function readHfConfig(file: string): { path: string; json: Record<string, unknown> } | undefined {
  if (isRemote(file)) return undefined;
  const cfgPath = path.join(path.dirname(file), 'config.json');
  if (!existsSync(cfgPath)) return undefined;
  const fix = `repair or delete ${cfgPath} (without it the shape is read from the tensors, with GPT-2's head size of 64)`;
  let json: unknown;
  try {
    json = JSON.parse(readBoundedFileSync(cfgPath, READ_LIMITS.config, 'Hugging Face config').toString('utf8'));
  } catch (err) {
    // A FIFO, device or huge file under that name is refused with its own message.
    if (isUserError(err)) throw err;
    throw new UserError(`${cfgPath} is not valid JSON (${(err as Error).message.split('\n')[0]})`, fix);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new UserError(`${cfgPath} is ${describeValue(json)}; expected a JSON object`, fix);
  return { path: cfgPath, json: json as Record<string, unknown> };
}

/**
 * Loads a model from our checkpoint or snapshot, or from a Hugging Face GPT-2 safetensors file (Conv1D weights
 * transposed). The shape is validated before the model is built, every tensor's dtype and shape before any is
 * read, and every weight is checked for NaN and infinity as it is copied. The reader stays open (for a snapshot's
 * optimizer state); close it when done.
 */
export async function loadModel(src: string, overrides: Partial<GPTConfig> = {}): Promise<LoadedModel> {
  const reader = await TensorReader.open(src);
  try {
    const format = reader.metadata.format;
    if (format === MODEL_FORMAT || format === SNAPSHOT_FORMAT) {
      const config = metadataModelConfig(reader, overrides);
      const model = new GPT(config);
      try {
        const expected = new Set(model.stateDict().keys());
        const isOptimizerState = (n: string): boolean => format === SNAPSHOT_FORMAT && n.startsWith('optimizer.');
        const unexpected = reader.names.find((n) => !expected.has(n) && !isOptimizerState(n));
        if (unexpected !== undefined) {
          throw new UserError(
            `${src} holds tensor ${unexpected}, which a model of its model_config (${config.nLayer} layer${config.nLayer === 1 ? '' : 's'}, ${config.nEmbd} dims) does not have`,
            'the checkpoint is damaged or its model_config was edited; use another checkpoint',
          );
        }
        await loadWeights(model, reader, (n) => n);
      } catch (err) {
        model.dispose();
        throw err;
      }
      return { model, kind: format === MODEL_FORMAT ? 'model' : 'snapshot', reader };
    }
    if (isHfGpt2(reader.names)) {
      const shapes = new Map(reader.names.map((n) => [n, reader.shape(n)]));
      const hf = readHfConfig(src);
      const names = { ...HF_SHAPE_NAMES, ...(hf ? { nHead: `n_head in ${hf.path}` } : {}) };
      const config = checkModelConfig(
        { ...inferConfig(shapes, src, hf?.json), ...overrides },
        { source: src, names, fix: 'the file does not hold a usable GPT-2 model; re-download it (and its config.json)' },
      );
      const model = new GPT(config);
      try {
        const byOurName = new Map<string, string>();
        for (const n of reader.names) {
          const ours = fromHfName(n);
          if (ours) byOurName.set(ours, n);
        }
        await loadWeights(model, reader, (ours) => byOurName.get(ours), true);
      } catch (err) {
        model.dispose();
        throw err;
      }
      return { model, kind: 'huggingface', reader };
    }
    throw new UserError(`${src} is neither a nanogpt-ts checkpoint nor a Hugging Face GPT-2 file`, 'pass a file written by `nanogpt train` or a GPT-2 model.safetensors');
  } catch (err) {
    await reader.close();
    throw err;
  }
}

/**
 * Checks that `fileName` names a tensor of a float dtype whose shape is `want` (`transposed`: the file holds it as
 * [want[1], want[0]]), before any of its bytes are read.
 */
function checkTensorEntry(reader: TensorReader, name: string, fileName: string | undefined, want: readonly number[], transposed: boolean, fix: string): string {
  if (fileName === undefined || !reader.has(fileName)) {
    throw new UserError(`${reader.source} lacks tensor ${name}`, fix);
  }
  const dtype = reader.dtype(fileName);
  if (!FLOAT_DTYPES.includes(dtype)) {
    throw new UserError(`${reader.source}: tensor ${fileName} has dtype ${dtype}; weights must be one of ${FLOAT_DTYPES.join(', ')}`, 'the file does not hold model weights; use another file');
  }
  const expected = transposed ? [want[1]!, want[0]!] : [...want];
  const found = reader.shape(fileName);
  if (expected.length !== found.length || expected.some((d, i) => d !== found[i])) {
    throw new UserError(`${reader.source}: tensor ${fileName} has shape ${formatShape(found)}; the model described by the file needs ${formatShape(expected)}`, fix);
  }
  return fileName;
}

/** Throws when a just-loaded tensor holds NaN or infinity (also catches F64 values too large for float32). */
function checkFinite(reader: TensorReader, fileName: string, t: torch.Tensor): void {
  const bad = torch.nonFiniteCount(t);
  if (bad > 0) {
    throw new UserError(
      `${reader.source}: tensor ${fileName} holds ${bad} NaN or infinite value${bad === 1 ? '' : 's'} (of ${t.numel})`,
      'the weights were saved after training diverged, or the file is damaged; use an earlier checkpoint',
    );
  }
}

/** Copies every parameter from the file, one tensor at a time (peak memory: the model plus one tensor). */
async function loadWeights(model: GPT, reader: TensorReader, fileName: (ours: string) => string | undefined, hfLayout = false): Promise<void> {
  const fix = 'the file does not match the model shape it describes; it is damaged, or not a GPT-2 model';
  const params = [...model.stateDict()];
  // Every entry first, so a bad one is reported before a byte of tensor data is read.
  const sources = params.map(([name, param]) => checkTensorEntry(reader, name, fileName(name), param.shape, hfLayout && needsTranspose(name), fix));
  for (const [i, [name, param]] of params.entries()) {
    const src = sources[i]!;
    const t = await reader.get(src);
    try {
      torch.scope(() => {
        const value = hfLayout ? convertLayout(name, t) : t;
        torch.noGrad(() => param.copy_(value));
      });
    } finally {
      t.dispose();
    }
    checkFinite(reader, src, param);
  }
}

/** Restores AdamW moments and returns the training state stored in a snapshot, every field checked. */
export async function restoreOptimizer(reader: TensorReader, model: GPT, opt: torch.AdamW): Promise<TrainState> {
  // The state first: it is small, and a damaged one should be reported before moments are read.
  const state = parseTrainState(parseJson(reader, 'train_state', SNAPSHOT_FIX), reader.source);
  const names = optimizerParamNames(model, opt);
  const fix = 'the snapshot is incomplete or damaged; move it away to start over';
  const entries = names.flatMap((name, i) =>
    (['exp_avg', 'exp_avg_sq'] as const).map((kind) => {
      const list = kind === 'exp_avg' ? opt.expAvg : opt.expAvgSq;
      const key = `optimizer.${kind}.${name}`;
      if (!reader.has(key)) throw new UserError(`${reader.source} lacks ${key}`, fix);
      return { key, moment: list[i]!, src: checkTensorEntry(reader, key, key, list[i]!.shape, false, fix) };
    }),
  );
  for (const { moment, src } of entries) {
    const t = await reader.get(src);
    try {
      torch.noGrad(() => moment.copy_(t));
    } finally {
      t.dispose();
    }
    checkFinite(reader, src, moment);
  }
  return state;
}

/**
 * The training config a snapshot was written with (as stored), or undefined when it has none: snapshots from
 * before it was recorded resume without the comparison of settings.
 */
export function savedTrainConfig(reader: TensorReader): unknown {
  if (reader.metadata.train_config === undefined) return undefined;
  return parseJson(reader, 'train_config', 'the snapshot is damaged: start over with --fresh, or use another out_dir');
}

/** Every rank's sampler and RNG state from a snapshot (null when it has none: the run re-seeds them). */
export function readRankStates(reader: TensorReader, state: TrainState): RankStates | null {
  if (reader.metadata.rank_states === undefined) return null;
  return parseRankStates(parseJson(reader, 'rank_states', SNAPSHOT_FIX), reader.source, state.worldSize);
}
