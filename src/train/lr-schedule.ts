import type { TrainConfig } from './config-schema.js';

/**
 * Learning rate at optimizer step `it` (0-based), as nanoGPT: linear warmup over warmup_iters, cosine decay to
 * min_lr at lr_decay_iters, min_lr after. With decay_lr off, the constant learning_rate.
 */
export function learningRate(it: number, c: TrainConfig['trainer_config'], constant: number): number {
  if (!c.decay_lr) return constant;
  if (it < c.warmup_iters) return (c.max_lr * (it + 1)) / (c.warmup_iters + 1);
  if (it > c.lr_decay_iters) return c.min_lr;
  const span = c.lr_decay_iters - c.warmup_iters;
  const ratio = span > 0 ? (it - c.warmup_iters) / span : 1;
  const coeff = 0.5 * (1 + Math.cos(Math.PI * ratio));
  return c.min_lr + coeff * (c.max_lr - c.min_lr);
}
