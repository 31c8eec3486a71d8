// Finite-difference gradient checking in float64: the analytic gradient from autograd must match central
// differences of the scalar function within tolerance.
import * as torch from '../../src/torch/index.js';

export interface GradcheckResult {
  maxAbsError: number;
  worst: string;
}

export function gradcheck(f: (xs: torch.Tensor[]) => torch.Tensor, inputs: torch.Tensor[], eps = 1e-6): GradcheckResult {
  return torch.scope(() => {
    const xs = inputs.map((x) => x.detach().clone().requiresGrad_(true));
    const out = f(xs);
    out.backward();
    let maxAbsError = 0;
    let worst = '';
    xs.forEach((x, k) => {
      const analytic = x.grad!.toTypedArray() as Float64Array;
      const base = x.detach().toTypedArray() as Float64Array;
      for (let i = 0; i < base.length; i++) {
        const value = (delta: number): number =>
          torch.scope(() =>
            torch.noGrad(() => {
              const moved = Float64Array.from(base);
              moved[i]! += delta;
              const inputsNow = xs.map((y, j) => (j === k ? torch.tensor(moved, { shape: x.shape, dtype: 'float64' }) : y.detach()));
              return f(inputsNow).item();
            }),
          );
        const numeric = (value(eps) - value(-eps)) / (2 * eps);
        const err = Math.abs(numeric - analytic[i]!) / Math.max(1, Math.abs(numeric));
        if (err > maxAbsError) {
          maxAbsError = err;
          worst = `input ${k} element ${i}: numeric ${numeric}, autograd ${analytic[i]}`;
        }
      }
    });
    return { maxAbsError, worst };
  });
}
