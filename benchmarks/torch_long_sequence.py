"""Memory of a long sequence in torch: a gradient with and without ``chunk=`` checkpointing,
and inference (``torch.no_grad``) in pieces and in one piece.

Gradient: of ``mean(y^2)`` through 20,000 steps of a ContractingR2DN (nu 2, nx 16, nv 32, LBDN
(64, 64), ny 2, batch 32, float32). Inference: a rollout of the same model and sequence under
``torch.no_grad``, as the eager loop runs it (pieces of ``rollout.PIECE_BYTES``) and as one piece
(the whole sequence's input terms and neuron outputs at once, as before the pieces). Each setting
in a fresh process: the growth of peak RSS from just before the call (model and data built, one
short warm-up call) to its end.

    python benchmarks/torch_long_sequence.py                 # all four settings
    python benchmarks/torch_long_sequence.py --steps 2000    # quicker
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


SETTINGS = ("gradient", "gradient, chunked", "inference, pieces", "inference, one piece")


def measure(setting: str, steps: int, chunk: int, threads: int) -> dict:
    """Run in this process: peak RSS growth (MB) and seconds of one call of ``setting``."""
    import torch

    import r2dn.torch as rt
    from r2dn.torch import rollout

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = rt.ContractingR2DN(2, 16, 32, 2, hidden=(64, 64), seed=0)
    x0 = model.init_state(32)
    us = torch.randn(steps, 32, 2)
    if setting == "inference, one piece":
        rollout.PIECE_BYTES = 1 << 62
    chunk_or_none = chunk if setting == "gradient, chunked" else None

    def call(us: torch.Tensor) -> None:
        if setting.startswith("inference"):
            with torch.no_grad():
                model(x0, us)
        else:
            _, ys = model(x0, us, chunk=chunk_or_none)
            (ys ** 2).mean().backward()

    call(us[:5])                                                  # warm-up: allocator, kernels
    model.zero_grad()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t = time.perf_counter()
    call(us)
    seconds = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"setting": setting, "chunk": chunk_or_none, "steps": steps,
            "rss_growth_mb": round(peak - before, 1), "seconds": round(seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--chunk", type=int, default=500)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(measure(args.child, args.steps, args.chunk, args.threads)))
        return
    rows = {}
    for setting in SETTINGS:
        out = subprocess.run([sys.executable, __file__, "--steps", str(args.steps), "--chunk",
                              str(args.chunk), "--threads", str(args.threads), "--child", setting],
                             capture_output=True, text=True, check=True)
        rows[setting] = json.loads(out.stdout.strip().splitlines()[-1])
        print(rows[setting])
    # a growth too small to see (pieces may fit in what the warm-up left) counts as 0.1 MB
    growth = {k: max(r["rss_growth_mb"], 0.1) for k, r in rows.items()}
    print(f"chunk={args.chunk}: {growth['gradient, chunked'] / growth['gradient']:.3f} of the "
          f"unchunked gradient's growth; inference in pieces: "
          f"{growth['inference, pieces'] / growth['inference, one piece']:.3f} of one piece's")


if __name__ == "__main__":
    main()
