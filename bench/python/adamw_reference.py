#!/usr/bin/python3
"""python3-torch side of `npm run bench -- adamw`.

Times torch.optim.AdamW.step() on the parameter shapes bench/adamw.ts passes in (GPT-2 124M), with the same
decay / no-decay groups and hyperparameters, for each `foreach` setting this torch accepts. Gradients are fixed
random tensors: only the optimizer step is timed. Prints progress on stderr and one JSON object as the last line
of stdout.
"""
import argparse
import inspect
import json
import statistics
import sys
import time

try:
    import torch
except ImportError as e:  # report through the JSON channel so the TypeScript side can print why
    print(json.dumps({"error": f"python3-torch is not importable by {sys.executable} ({e}); apt-get install -y python3-torch"}))
    sys.exit(3)

p = argparse.ArgumentParser()
p.add_argument("--shapes", required=True, help="JSON list of shapes")
p.add_argument("--threads", type=int, default=0, help="0 = torch's default")
p.add_argument("--lr", type=float, default=6e-4)
p.add_argument("--beta1", type=float, default=0.9)
p.add_argument("--beta2", type=float, default=0.95)
p.add_argument("--eps", type=float, default=1e-8)
p.add_argument("--weight-decay", type=float, default=0.1)
p.add_argument("--warmup", type=int, default=1)
p.add_argument("--runs", type=int, default=5)
a = p.parse_args()

if a.threads:
    torch.set_num_threads(a.threads)
torch.manual_seed(0)

shapes = json.loads(a.shapes)
params = []
for s in shapes:
    t = torch.nn.Parameter(torch.randn(s) * 0.02)
    t.grad = torch.randn(s) * 1e-3
    params.append(t)
# GPT-2's grouping: matrices decay, biases and LayerNorm vectors do not.
groups = [
    {"params": [t for t in params if t.dim() >= 2], "weight_decay": a.weight_decay},
    {"params": [t for t in params if t.dim() < 2], "weight_decay": 0.0},
]

# foreach= exists in torch 1.13; an older torch only has the single-tensor loop.
variants = [None]
if "foreach" in inspect.signature(torch.optim.AdamW).parameters:
    variants = [False, True]

results = []
for foreach in variants:
    kwargs = {} if foreach is None else {"foreach": foreach}
    opt = torch.optim.AdamW(groups, lr=a.lr, betas=(a.beta1, a.beta2), eps=a.eps, **kwargs)
    for _ in range(a.warmup):
        opt.step()  # the first step also allocates the moment buffers
    samples = []
    for _ in range(a.runs):
        t0 = time.perf_counter_ns()
        opt.step()
        samples.append((time.perf_counter_ns() - t0) / 1e6)
    ms = statistics.median(samples)
    name = "torch.optim.AdamW" + ("" if foreach is None else f"(foreach={foreach})")
    print(f"python {name}: {ms:.1f} ms/step", file=sys.stderr)
    results.append({"name": name, "median_ms": ms, "runs": len(samples)})
    del opt  # frees its moment buffers before the next variant allocates its own

print(json.dumps({
    "torch": torch.__version__,
    "threads": torch.get_num_threads(),
    "params": sum(t.numel() for t in params),
    "results": results,
}))
