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

/**
 * Warnings for a schedule that does not fit the run: most of it at min_lr, a cosine that never reaches min_lr,
 * or a run that ends inside its warmup. (lr_decay_iters left unset follows max_iters, and fits.)
 */
export function scheduleWarnings(c: TrainConfig['trainer_config']): string[] {
  if (!c.decay_lr || c.max_iters === 0) return [];
  const out: string[] = [];
  const n = c.max_iters;
  if (c.warmup_iters >= n) {
    out.push(`warmup_iters (${c.warmup_iters}) is not below max_iters (${n}): the whole run is warmup and the learning rate never reaches max_lr`);
  } else if (c.lr_decay_iters < n) {
    const atMin = n - Math.max(c.lr_decay_iters, c.warmup_iters);
    if (atMin / n > 0.1) out.push(`lr_decay_iters (${c.lr_decay_iters}) is below max_iters (${n}): the last ${atMin} steps (${Math.round((100 * atMin) / n)}%) run at min_lr; leave lr_decay_iters unset to decay over the whole run`);
  } else if (c.lr_decay_iters > n * 1.1) {
    const last = learningRate(n - 1, c, c.max_lr);
    out.push(`lr_decay_iters (${c.lr_decay_iters}) is beyond max_iters (${n}): the run ends before the cosine reaches min_lr (its last step at ${last.toExponential(2)}); leave lr_decay_iters unset to decay over the whole run`);
  }
  return out;
}
