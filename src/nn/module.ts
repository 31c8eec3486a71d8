// Module: a tree of named parameters and submodules, as torch.nn.Module. Names are dotted paths
// ("transformer.h.0.attn.c_attn.weight"), which is what state dicts and checkpoints use.
import * as torch from '../torch/index.js';

export class Module {
  training = true;
  readonly #params = new Map<string, torch.Tensor>();
  readonly #children = new Map<string, Module>();

  /** Registers a parameter (a leaf tensor that requires grad) under `name`; the module owns it. */
  protected param(name: string, t: torch.Tensor): torch.Tensor {
    const leaf = torch.keep(t.requiresGrad ? t : t.requiresGrad_(true));
    this.#params.set(name, leaf);
    return leaf;
  }

  /** Registers a submodule under `name`. */
  protected child<M extends Module>(name: string, m: M): M {
    this.#children.set(name, m);
    return m;
  }

  /** Replaces a parameter by another module's tensor (weight tying): both names then share one storage. */
  protected tie(name: string, t: torch.Tensor): void {
    if (!this.#params.has(name)) throw new Error(`no parameter '${name}' to tie`);
    this.#params.set(name, t);
  }

  *namedParameters(prefix = ''): Generator<[string, torch.Tensor]> {
    for (const [n, p] of this.#params) yield [prefix + n, p];
    for (const [n, m] of this.#children) yield* m.namedParameters(`${prefix}${n}.`);
  }

  /** Distinct parameters (a tied tensor appears once, under its first name). */
  uniqueNamedParameters(): [string, torch.Tensor][] {
    const seen = new Set<torch.Tensor>();
    const out: [string, torch.Tensor][] = [];
    for (const [n, p] of this.namedParameters()) {
      if (seen.has(p)) continue;
      seen.add(p);
      out.push([n, p]);
    }
    return out;
  }

  parameters(): torch.Tensor[] {
    return this.uniqueNamedParameters().map(([, p]) => p);
  }

  numParameters(): number {
    return this.parameters().reduce((n, p) => n + p.numel, 0);
  }

  *modules(): Generator<Module> {
    yield this;
    for (const m of this.#children.values()) yield* m.modules();
  }

  train(mode = true): this {
    for (const m of this.modules()) m.training = mode;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** Name → parameter tensor (the live tensors, not copies); tied parameters appear once. */
  stateDict(): Map<string, torch.Tensor> {
    return new Map(this.uniqueNamedParameters());
  }

  /**
   * Copies values into the parameters. Strict (the default): every parameter must be present and no extra
   * names may appear. Shapes must match exactly; dtypes are converted.
   */
  loadStateDict(state: ReadonlyMap<string, torch.Tensor>, opts: { strict?: boolean; source?: string } = {}): void {
    const strict = opts.strict ?? true;
    const own = this.stateDict();
    const where = opts.source ? ` (${opts.source})` : '';
    if (strict) {
      const missing = [...own.keys()].filter((k) => !state.has(k));
      const unexpected = [...state.keys()].filter((k) => !own.has(k));
      if (missing.length || unexpected.length) {
        const parts: string[] = [];
        if (missing.length) parts.push(`missing ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ` and ${missing.length - 5} more` : ''}`);
        if (unexpected.length) parts.push(`unexpected ${unexpected.slice(0, 5).join(', ')}${unexpected.length > 5 ? ` and ${unexpected.length - 5} more` : ''}`);
        throw new Error(`state dict does not match the model${where}: ${parts.join('; ')}`);
      }
    }
    torch.noGrad(() => {
      for (const [name, p] of own) {
        const src = state.get(name);
        if (!src) continue;
        const a = p.shape;
        const b = src.shape;
        if (a.length !== b.length || a.some((d, i) => d !== b[i])) {
          throw new Error(`shape mismatch for ${name}${where}: model has [${a.join(', ')}], state has [${b.join(', ')}]`);
        }
        p.copy_(src);
      }
    });
  }

  /** Frees every parameter's native memory. */
  dispose(): void {
    for (const p of this.parameters()) p.dispose();
  }
}
