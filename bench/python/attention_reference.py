#!/usr/bin/python3
"""python3-torch side of `npm run bench -- attention`: one causal self-attention layer, forward + backward, as
nanoGPT and shared/bench/pytorch_reference.py write it for PyTorch 1.13 (no fused attention there): the full T × T
score matrix, masked_fill with -inf, softmax, @ v. Where scaled_dot_product_attention exists (PyTorch ≥ 2.0) it is
timed too (`--sdpa`). Prints one JSON line: median forward and backward ms and the peak RSS growth.

    /usr/bin/python3 bench/python/attention_reference.py --batch 4 --heads 12 --block 1024 --head_dim 64 --dtype bf16
"""
import argparse
import json
import math
import resource
import sys
import time

try:
    import torch
    import torch.nn.functional as F
except ImportError as e:
    print(json.dumps({"error": f"python3-torch is not importable by {sys.executable} ({e}); apt-get install -y python3-torch"}), flush=True)
    sys.exit(3)

p = argparse.ArgumentParser()
p.add_argument("--batch", type=int, default=4)
p.add_argument("--heads", type=int, default=12)
p.add_argument("--block", type=int, default=1024)
p.add_argument("--head_dim", type=int, default=64)
p.add_argument("--dtype", choices=["bf16", "fp32"], default="bf16")
p.add_argument("--threads", type=int, default=0)
p.add_argument("--runs", type=int, default=5)
p.add_argument("--sdpa", action="store_true", help="time F.scaled_dot_product_attention instead")
a = p.parse_args()
if a.threads:
    torch.set_num_threads(a.threads)
if a.sdpa and not hasattr(F, "scaled_dot_product_attention"):
    print(json.dumps({"error": f"torch {torch.__version__} has no scaled_dot_product_attention"}), flush=True)
    sys.exit(0)
torch.manual_seed(0)
B, H, T, D = a.batch, a.heads, a.block, a.head_dim
dtype = torch.bfloat16 if a.dtype == "bf16" else torch.float32
qkv0 = torch.randn(B, T, 3 * H * D).to(dtype)
grad = torch.randn(B, T, H * D).to(dtype)
mask = torch.tril(torch.ones(T, T, dtype=torch.bool))


def layer(qkv):
    q, k, v = (z.view(B, T, H, D).transpose(1, 2) for z in qkv.split(H * D, dim=2))
    if a.sdpa:
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    else:
        att = (q @ k.transpose(-2, -1)) / math.sqrt(D)
        att = att.masked_fill(~mask[:T, :T], float("-inf")).softmax(dim=-1)
        y = att @ v
    return y.transpose(1, 2).reshape(B, T, H * D)


base_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
fwd, bwd = [], []
for i in range(a.runs + 1):
    qkv = qkv0.detach().requires_grad_(True)
    t0 = time.perf_counter()
    y = layer(qkv)
    t1 = time.perf_counter()
    y.backward(grad)
    t2 = time.perf_counter()
    if i > 0:
        fwd.append((t1 - t0) * 1e3)
        bwd.append((t2 - t1) * 1e3)
fwd.sort()
bwd.sort()
print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "forward_ms": fwd[len(fwd) // 2],
                  "backward_ms": bwd[len(bwd) // 2],
                  "peak_growth_mib": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_kb) / 1024}), flush=True)
