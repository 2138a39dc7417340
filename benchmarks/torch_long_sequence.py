"""Memory of a long-sequence gradient in torch, with and without ``chunk=`` checkpointing.

The gradient of ``mean(y^2)`` through 20,000 steps of a ContractingR2DN (nu 2, nx 16, nv 32,
LBDN (64, 64), ny 2, batch 32, float32), each setting in a fresh process: the growth of peak RSS
from just before the gradient (model and data built, one short warm-up call) to its end.

    python benchmarks/torch_long_sequence.py                 # unchunked and chunk=500
    python benchmarks/torch_long_sequence.py --steps 2000    # quicker
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def measure(steps: int, chunk: int | None, threads: int) -> dict:
    """Run in this process: peak RSS growth (MB) and seconds of one gradient."""
    import torch

    import r2dn.torch as rt

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = rt.ContractingR2DN(2, 16, 32, 2, hidden=(64, 64), seed=0)
    x0 = model.init_state(32)
    us = torch.randn(steps, 32, 2)
    model(x0, us[:5], chunk=chunk)[1].sum().backward()          # warm-up: allocator, kernels
    model.zero_grad()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t = time.perf_counter()
    _, ys = model(x0, us, chunk=chunk)
    (ys ** 2).mean().backward()
    seconds = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"chunk": chunk, "steps": steps, "rss_growth_mb": round(peak - before, 1),
            "seconds": round(seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--chunk", type=int, default=500)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        chunk = None if args.child == "none" else int(args.child)
        print(json.dumps(measure(args.steps, chunk, args.threads)))
        return
    rows = []
    for chunk in ("none", str(args.chunk)):
        out = subprocess.run([sys.executable, __file__, "--steps", str(args.steps),
                              "--threads", str(args.threads), "--child", chunk], capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(rows[-1])
    print(f"chunk={args.chunk}: {rows[1]['rss_growth_mb'] / rows[0]['rss_growth_mb']:.3f} of the "
          "unchunked growth")


if __name__ == "__main__":
    main()
