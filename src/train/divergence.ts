// Stopping a run whose numbers stopped being numbers. A NaN or infinite loss or gradient norm means the next
// optimizer step would write NaN into every weight, and every checkpoint after it would hold them; the run stops
// before that step instead, with what went wrong, where, and what usually fixes it.
import * as torch from '../torch/index.js';
import { UserError } from '../util/errors.js';
import type { GPT } from '../gpt/model.js';

export interface DivergenceContext {
  bf16: boolean;
  modelPath: string;
  snapshotPath: string;
  /** Iteration of the last snapshot this run wrote or resumed from; null when there is none yet. */
  lastSnapshotIter: number | null;
}

export function formatNumber(x: number): string {
  return Number.isNaN(x) ? 'NaN' : x === Infinity ? 'infinite' : x === -Infinity ? '-infinite' : x.toPrecision(4);
}

/** The error that ends a diverged run: `what` says which number went bad and where. */
export function divergedError(what: string, ctx: DivergenceContext): UserError {
  const kept =
    ctx.lastSnapshotIter === null
      ? `nothing was saved from the diverged weights (${ctx.modelPath} and ${ctx.snapshotPath}, if present, are unchanged)`
      : `nothing was saved from the diverged weights: the snapshot ${ctx.snapshotPath} (iteration ${ctx.lastSnapshotIter}) and ${ctx.modelPath} are unchanged, and the same command resumes from that snapshot`;
  const fixes = [
    'lower the learning rate (optimizer_config.learning_rate, or trainer_config.max_lr with decay_lr)',
    'keep gradient clipping on (trainer_config.grad_clip, e.g. 1.0)',
    ...(ctx.bf16 ? ['train in float32 (trainer_config.mixed_precision: fp32)'] : []),
    'check the data (data_dir) and the initial weights (init_from)',
  ];
  return new UserError(`training diverged: ${what}; ${kept}`, fixes.join('; '));
}

/** The name of the first parameter holding NaN or infinity, or null when all are finite (one sum per tensor). */
export function firstNonFiniteParameter(model: GPT): string | null {
  for (const [name, p] of model.stateDict()) if (torch.nonFiniteCount(p) > 0) return name;
  return null;
}
