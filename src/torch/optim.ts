// Gradient clipping and AdamW over parameter lists, each one native call per step.
import { native } from './native.js';
import { zeros } from './creation.js';
import { keep } from './scope.js';
import type { Tensor } from './tensor.js';

/** Scales all gradients so their global L2 norm is at most `maxNorm`; returns the norm before clipping. */
export function clipGradNorm(params: readonly Tensor[], maxNorm: number): number {
  if (!(maxNorm > 0)) throw new RangeError(`maxNorm must be positive, got ${maxNorm}`);
  return native.clipGradNorm(params.map((p) => p.handle), maxNorm) as number;
}

export function gradNorm(params: readonly Tensor[]): number {
  return native.gradNorm(params.map((p) => p.handle)) as number;
}

/** Drops every gradient (set to none), so the next backward writes fresh ones. */
export function zeroGrad(params: readonly Tensor[]): void {
  native.zeroGrads(params.map((p) => p.handle));
}

export interface ParamGroup {
  params: Tensor[];
  weightDecay: number;
}

export interface AdamWOptions {
  lr: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
  /** Allow the fused float32 CPU kernel (default true); off uses the composed ATen ops. */
  fused?: boolean;
}

/**
 * AdamW as torch.optim.AdamW: decoupled weight decay p ← p·(1 − lr·wd), then the bias-corrected Adam update.
 * Per-group weight decay (GPT-2 decays matrices, not biases or norms). The moment buffers are exposed so a
 * checkpoint can save and restore them.
 */
export class AdamW {
  readonly groups: ParamGroup[];
  lr: number;
  readonly betas: [number, number];
  readonly eps: number;
  readonly fused: boolean;
  step = 0;
  readonly expAvg: Tensor[];
  readonly expAvgSq: Tensor[];
  #params: Tensor[];
  #wds: number[];

  constructor(groups: ParamGroup[] | Tensor[], opts: AdamWOptions) {
    const wd = opts.weightDecay ?? 0.01;
    this.groups = isGroupList(groups) ? groups : [{ params: groups, weightDecay: wd }];
    this.lr = opts.lr;
    this.betas = opts.betas ?? [0.9, 0.999];
    this.eps = opts.eps ?? 1e-8;
    this.fused = opts.fused ?? true;
    this.#params = this.groups.flatMap((g) => g.params);
    this.#wds = this.groups.flatMap((g) => g.params.map(() => g.weightDecay));
    this.expAvg = this.#params.map((p) => keep(zeros(p.shape, { dtype: p.dtype, device: p.device })));
    this.expAvgSq = this.#params.map((p) => keep(zeros(p.shape, { dtype: p.dtype, device: p.device })));
  }

  get params(): readonly Tensor[] {
    return this.#params;
  }

  /** One update of every parameter that has a gradient, at learning rate `lr` (default: this.lr). */
  stepWith(lr = this.lr): void {
    this.step += 1;
    const lrs = this.#params.map(() => lr);
    native.adamwStep(
      this.#params.map((p) => p.handle),
      this.expAvg.map((t) => t.handle),
      this.expAvgSq.map((t) => t.handle),
      lrs,
      this.#wds,
      this.betas[0],
      this.betas[1],
      this.eps,
      this.step,
      this.fused,
    );
  }

  zeroGrad(): void {
    zeroGrad(this.#params);
  }

  dispose(): void {
    for (const t of [...this.expAvg, ...this.expAvgSq]) t.dispose();
  }
}

function isGroupList(g: ParamGroup[] | Tensor[]): g is ParamGroup[] {
  return g.length > 0 && 'params' in (g[0] as object);
}
