// A model ready to serve: the model thread (engine.ts), the GPT-2 codec on this thread, and where the weights came
// from. This is what the library's loadModel returns and what the HTTP server serves.
import * as path from 'node:path';
import { TextCodec } from '../data/text-codec.js';
import type { GPTConfig } from '../gpt/config.js';
import { PRETRAINED } from '../gpt/config.js';
import { UserError } from '../util/errors.js';
import { Engine } from './engine.js';
import type { ModelInfo, WeightsSource } from './protocol.js';

export type ModelSource = string | { ckptPath: string } | { initFrom: string } | { randomInit: GPTConfig; seed?: number };

export interface LoadOptions {
  /** Most sequences decoded together (default 16); more wait for a free slot. */
  maxBatch?: number;
  /** bf16 autocast (faster on CPUs with bf16 units). Default false: float32. */
  bf16?: boolean;
  /** libtorch intra-op threads (default: libtorch's choice). */
  threads?: number;
  /** Progress lines (downloads, notes); default: stderr. */
  log?: (line: string) => void;
}

export class ServedModel {
  private constructor(
    readonly engine: Engine,
    readonly codec: TextCodec,
  ) {}

  get info(): ModelInfo {
    return this.engine.info;
  }

  static async load(source: ModelSource, opts: LoadOptions = {}): Promise<ServedModel> {
    const log = opts.log ?? ((s: string) => void process.stderr.write(s + '\n'));
    return ServedModel.start(await locateWeights(source, log), opts);
  }

  /** Starts the model thread on weights already located (see locateWeights). */
  static async start(weights: WeightsSource, opts: LoadOptions = {}): Promise<ServedModel> {
    const codec = await TextCodec.open();
    try {
      const engine = await Engine.start({ source: weights, maxBatch: opts.maxBatch ?? 16, bf16: opts.bf16 ?? false, threads: opts.threads });
      return new ServedModel(engine, codec);
    } catch (err) {
      codec.free();
      throw err;
    }
  }

  /** Cancels whatever is being generated and frees the model (its thread) and the codec. */
  async close(): Promise<void> {
    await this.engine.close();
    this.codec.free();
  }
}

/** The weights file to load (a pretrained one downloaded on first use), checked to exist before any thread starts. */
export async function locateWeights(source: ModelSource, log: (s: string) => void): Promise<WeightsSource> {
  const src = typeof source === 'string' ? { ckptPath: source } : source;
  if ('randomInit' in src) return { randomInit: src.randomInit, seed: src.seed ?? 0, id: 'random-init' };
  if ('initFrom' in src) {
    if (!(PRETRAINED as readonly string[]).includes(src.initFrom)) {
      throw new UserError(`'${src.initFrom}' is not a pretrained model`, `use one of ${PRETRAINED.join(', ')}, or a checkpoint file`);
    }
    const { pretrainedWeightsFile } = await import('../gpt/pretrained.js');
    return { file: await pretrainedWeightsFile(src.initFrom, log), id: src.initFrom };
  }
  const { pathExists, resolveCheckpointArg } = await import('../train/checkpoint.js');
  if (!(await pathExists(src.ckptPath))) {
    throw new UserError(`no checkpoint at ${src.ckptPath}`, 'train a model first (nanogpt train), or pass --ckpt_path FILE, or --init_from gpt2 for pretrained GPT-2');
  }
  const { file, note } = resolveCheckpointArg(src.ckptPath);
  if (note) log(note);
  return { file, id: modelId(src.ckptPath) };
}

/** The model's name in the API: the checkpoint's file name, or its folder's for a folder. */
function modelId(ckptPath: string): string {
  return path.basename(ckptPath.replace(/[/\\]+$/, '')) || 'model';
}
