// Data parallelism: gradients averaged across ranks once per optimizer step, through flat buckets (a few large
// collectives instead of one per parameter), and a checksum that proves every rank holds the same weights.
import * as torch from '../torch/index.js';
import type { ProcessGroup } from '../torch/dist/index.js';
import type { Module } from '../nn/module.js';

/** ~25 MB per bucket: large enough to amortise per-collective latency, small enough to bound the copy buffer. */
const BUCKET_BYTES = 25 * 2 ** 20;

export class GradientSync {
  readonly buckets: torch.Tensor[][];

  constructor(
    private readonly pg: ProcessGroup,
    params: readonly torch.Tensor[],
    bucketBytes = BUCKET_BYTES,
  ) {
    this.buckets = [];
    let current: torch.Tensor[] = [];
    let bytes = 0;
    // Reverse order: the last layers' gradients are ready first in backward (useful once overlap is added).
    for (const p of [...params].reverse()) {
      const b = p.numel * 4;
      if (current.length && bytes + b > bucketBytes) {
        this.buckets.push(current);
        current = [];
        bytes = 0;
      }
      current.push(p);
      bytes += b;
    }
    if (current.length) this.buckets.push(current);
  }

  /** Replaces every gradient with its mean over all ranks. */
  async averageGradients(): Promise<void> {
    for (const bucket of this.buckets) {
      const grads = bucket.map((p) => {
        let g = p.grad;
        if (g === null) {
          // A parameter unused on this rank still takes part, with a zero gradient, so buckets line up.
          const zero = torch.zeros(p.shape, { dtype: p.dtype, device: p.device });
          p.grad = zero;
          zero.dispose();
          g = p.grad;
        }
        return g!;
      });
      try {
        await this.pg.allreduce(grads, 'avg');
      } finally {
        for (const g of grads) g.dispose();
      }
    }
  }
}

/** A float64 sum of all parameter values: equal on all ranks iff (in practice) the weights are identical. */
export function parameterChecksum(model: Module): number {
  return torch.scope(() =>
    torch.noGrad(() => {
      let total = 0;
      for (const p of model.parameters()) total += p.to('float64').sum().item() * 1 + p.to('float64').abs().sum().item() * 1e-7;
      return total;
    }),
  );
}
