#!/usr/bin/python3
"""python3-torch side of `npm run bench -- matmul`.

Two ways to run it (Debian's interpreter: /usr/bin/python3, with python3-torch 1.13):

  --serve   what bench/matmul.ts uses. Reads one JSON request per line on stdin and answers one JSON line on
            stdout, so the benchmark can alternate runs — one of ours, one of Python's — and both sides see the
            same background load. Sequential phases on a shared 2-core machine made the ratio swing from 0.5 to 2.
            Requests: {"op": "info"}, {"op": "matmul", "n", "dtype", "warmup", "runs"} → {"samples_ms": [...]},
            {"op": "overhead", "name", "iters"} → {"us": per-call µs of one batch}.
  (default) a standalone run printing a JSON summary, for checking the Python side alone:
            /usr/bin/python3 bench/python/matmul_reference.py --sizes 1024,2048 --threads 2
"""
import argparse
import json
import statistics
import sys
import time

try:
    import torch
except ImportError as e:  # reported through the JSON channel so the TypeScript side can say why
    print(json.dumps({"error": f"python3-torch is not importable by {sys.executable} ({e}); apt-get install -y python3-torch"}), flush=True)
    sys.exit(3)

p = argparse.ArgumentParser()
p.add_argument("--serve", action="store_true")
p.add_argument("--sizes", default="1024,2048,4096")
p.add_argument("--threads", type=int, default=0, help="0 = torch's default")
p.add_argument("--runs", type=int, default=5)
a = p.parse_args()

if a.threads:
    torch.set_num_threads(a.threads)
torch.manual_seed(0)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
_inputs = {}  # (n, dtype) → (x, y); only the current size is kept so memory stays bounded at 4096


def inputs(n, dtype):
    key = (n, dtype)
    if key not in _inputs:
        _inputs.clear()
        _inputs[key] = (torch.randn(n, n).to(DTYPES[dtype]), torch.randn(n, n).to(DTYPES[dtype]))
    return _inputs[key]


# Grad mode stays on, as in the TypeScript run and in user code: inputs without requires_grad record nothing.
def matmul_samples(n, dtype, warmup, runs):
    x, y = inputs(n, dtype)
    for _ in range(warmup):
        torch.matmul(x, y)
    out = []
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        torch.matmul(x, y)  # the product is dropped at once, as the TypeScript loop disposes it
        out.append((time.perf_counter_ns() - t0) / 1e6)
    return out


s1, s2 = torch.randn(1), torch.randn(1)
TINY = {
    "add": lambda: s1 + s2,  # allocates and frees a result: the whole round trip of an op
    "dtype": lambda: s1.dtype,
    "shape": lambda: s1.shape,
}


def overhead_us(name, iters):
    # A whole batch is timed so the clock's own cost stays out of a figure of a few µs.
    fn = TINY[name]
    t0 = time.perf_counter_ns()
    for _ in range(iters):
        fn()
    return (time.perf_counter_ns() - t0) / 1e3 / iters


def info():
    return {"torch": torch.__version__, "threads": torch.get_num_threads(), "python": sys.version.split()[0]}


if a.serve:
    print(json.dumps(info()), flush=True)
    for line in sys.stdin:
        req = json.loads(line)
        try:
            if req["op"] == "matmul":
                reply = {"samples_ms": matmul_samples(req["n"], req["dtype"], req.get("warmup", 0), req.get("runs", 1))}
            elif req["op"] == "overhead":
                reply = {"us": overhead_us(req["name"], req["iters"])}
            elif req["op"] == "info":
                reply = info()
            else:
                reply = {"error": f"unknown op {req['op']!r}"}
        except Exception as e:  # an answer, not a dead pipe: the TypeScript side prints it
            reply = {"error": f"{type(e).__name__}: {e}"}
        print(json.dumps(reply), flush=True)
else:
    rows = []
    for dtype in DTYPES:
        for n in map(int, a.sizes.split(",")):
            ms = statistics.median(matmul_samples(n, dtype, 2, a.runs))
            rows.append({"n": n, "dtype": dtype, "median_ms": ms, "gflops": 2 * n**3 / (ms / 1e3) / 1e9})
    for name in TINY:
        overhead_us(name, 1000)
    over = {f"{name}_us": statistics.median(overhead_us(name, 20000) for _ in range(7)) for name in TINY}
    print(json.dumps({**info(), "matmul": rows, "overhead": over}))
