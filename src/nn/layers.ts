// The layers a GPT needs, with PyTorch's parameter names and layouts.
import * as torch from '../torch/index.js';
import { Module } from './module.js';

/** y = x Wᵀ + b with W of shape [out, in]. Initialised N(0, 0.02) as GPT-2 (the model may re-initialise). */
export class Linear extends Module {
  weight: torch.Tensor;
  readonly bias: torch.Tensor | null;
  constructor(readonly inFeatures: number, readonly outFeatures: number, bias = true, std = 0.02) {
    super();
    this.weight = this.param('weight', torch.empty([outFeatures, inFeatures]).normal_(0, std));
    this.bias = bias ? this.param('bias', torch.zeros([outFeatures])) : null;
  }
  forward(x: torch.Tensor): torch.Tensor {
    return torch.linear(x, this.weight, this.bias);
  }
  /** Makes this layer use `w` as its weight (weight tying); its own weight is freed. */
  tieWeight(w: torch.Tensor): void {
    if (w === this.weight) return;
    this.weight.dispose();
    this.weight = w;
    this.tie('weight', w);
  }
}

export class LayerNorm extends Module {
  readonly weight: torch.Tensor;
  readonly bias: torch.Tensor | null;
  constructor(readonly dim: number, bias = true, readonly eps = 1e-5) {
    super();
    this.weight = this.param('weight', torch.ones([dim]));
    this.bias = bias ? this.param('bias', torch.zeros([dim])) : null;
  }
  forward(x: torch.Tensor): torch.Tensor {
    return torch.layerNorm(x, [this.dim], this.weight, this.bias, this.eps);
  }
}

export class Embedding extends Module {
  readonly weight: torch.Tensor;
  constructor(readonly num: number, readonly dim: number, std = 0.02) {
    super();
    this.weight = this.param('weight', torch.empty([num, dim]).normal_(0, std));
  }
  forward(indices: torch.Tensor): torch.Tensor {
    return torch.embedding(this.weight, indices);
  }
}

export class Dropout extends Module {
  constructor(readonly p: number) {
    super();
  }
  forward(x: torch.Tensor): torch.Tensor {
    if (this.p === 0 || !this.training) return x;
    return torch.dropout(x, this.p, true);
  }
}

/** A list of submodules named 0, 1, 2, … (torch.nn.ModuleList). */
export class ModuleList<M extends Module> extends Module {
  readonly items: M[];
  constructor(items: M[]) {
    super();
    this.items = items.map((m, i) => this.child(String(i), m));
  }
}
