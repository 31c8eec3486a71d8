// Where the model's first weights come from: a fresh GPT-2 shape, pretrained Hugging Face weights, or a file.
import * as torch from '../torch/index.js';
import { UserError } from '../util/errors.js';
import { GPT } from '../gpt/model.js';
import { checkModelConfig, PRESETS, PRETRAINED, TRAIN_CONFIG_NAMES, type GPTConfig } from '../gpt/config.js';
import { loadModel } from './checkpoint.js';
import type { TrainConfig } from './config-schema.js';

export function scratchConfig(c: TrainConfig): GPTConfig {
  const preset = PRESETS[c.model.preset];
  if (!preset) throw new UserError(`unknown model.preset '${c.model.preset}'`, `use one of ${Object.keys(PRESETS).join(', ')}`);
  // 0 means "the preset's"; anything else, negative included, is the user's value and is checked as given.
  const pick = (own: number, fromPreset: number): number => (own === 0 ? fromPreset : own);
  return checkModelConfig(
    {
      nLayer: pick(c.model.n_layer, preset.nLayer),
      nHead: pick(c.model.n_head, preset.nHead),
      nEmbd: pick(c.model.n_embd, preset.nEmbd),
      blockSize: c.block_size,
      vocabSize: c.model.vocab_size,
      dropout: c.model.dropout,
      bias: c.model.bias,
    },
    { source: 'the training config', names: TRAIN_CONFIG_NAMES, fix: `fix that setting (for model.n_layer, n_head and n_embd, 0 keeps the ${c.model.preset} preset's value)` },
  );
}

/** Builds the initial model for a run that does not resume from a snapshot. */
export async function initialModel(c: TrainConfig, log: (s: string) => void): Promise<GPT> {
  const from = c.init_from;
  if (from === 'scratch') {
    const cfg = scratchConfig(c);
    log(`initialising a new ${c.model.preset}-shaped model: ${cfg.nLayer} layers, ${cfg.nHead} heads, ${cfg.nEmbd} dims, block ${cfg.blockSize}`);
    return new GPT(cfg);
  }
  let file = from;
  if ((PRETRAINED as readonly string[]).includes(from)) {
    const { pretrainedWeightsFile } = await import('../gpt/pretrained.js');
    file = await pretrainedWeightsFile(from, log);
  }
  const loaded = await loadModel(file, { dropout: c.model.dropout });
  await loaded.reader.close();
  const model = loaded.model;
  if (c.block_size > model.config.blockSize) {
    model.dispose();
    throw new UserError(`block_size ${c.block_size} exceeds the model's context of ${model.config.blockSize} tokens (${from})`, `set block_size to at most ${model.config.blockSize}`);
  }
  log(`initialised from ${from} (${loaded.kind}): ${model.config.nLayer} layers, ${model.config.nEmbd} dims, ${(model.countParameters() / 1e6).toFixed(2)}M parameters`);
  return model;
}

/** AdamW with weight decay on matrices and embeddings (≥ 2-D) only, as GPT-2 training does. */
export function makeOptimizer(model: GPT, c: TrainConfig): torch.AdamW {
  const params = model.parameters();
  const decay = params.filter((p) => p.ndim >= 2);
  const noDecay = params.filter((p) => p.ndim < 2);
  const o = c.optimizer_config;
  const opt = new torch.AdamW(
    [
      { params: decay, weightDecay: o.weight_decay },
      { params: noDecay, weightDecay: 0 },
    ],
    { lr: c.trainer_config.decay_lr ? c.trainer_config.max_lr : o.learning_rate, betas: [o.beta1, o.beta2], eps: o.eps },
  );
  return opt;
}
