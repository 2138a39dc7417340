#!/usr/bin/env python
# Usage (from the repo root): python tools/call_overhead.py [--backend torch jax numpy]
"""The fixed cost of one model call: a tiny model, where the Python around the maths dominates.

Times ``simulate(x0, us)`` (T = 10) and one step ``model(x, u)`` of a ``LipschitzR2DN(2, 3, 4,
1, hidden=(8,), gamma=2.0)`` and a ``ContractingREN(2, 3, 4, 1)`` (float32, batch 5), one BLAS
and torch thread: the median over ``--repeats`` blocks of ``--number`` warm calls, in
microseconds per call (a JAX call blocks until its result is ready), and the Python function
calls one warm call makes (``sys.setprofile`` "call" events: independent of the machine's load).
Compare two trees by running each in its own process, alternately, and reading ratios.
"""
import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")

import numpy as np  # noqa: E402

import r2dn  # noqa: E402
import r2dn.backends  # noqa: E402

MODELS = [("LipschitzR2DN", (2, 3, 4, 1, (8,), 2.0)), ("ContractingREN", (2, 3, 4, 1))]


def per_call(fn, number, repeats, block):
    block(fn())                                            # warm: compile, caches
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(number):
            out = fn()
        block(out)
        times.append((time.perf_counter() - t0) / number)
    return statistics.median(times) * 1e6


def python_calls(fn):
    fn()
    n = [0]

    def prof(frame, event, arg):
        n[0] += event == "call"

    sys.setprofile(prof)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return n[0]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", nargs="+", default=["torch", "jax", "numpy"])
    p.add_argument("--number", type=int, default=200)
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args()
    for name in args.backend:
        rec = r2dn.backends.get(name)
        if name == "torch":
            import torch
            torch.set_num_threads(1)
        block = (lambda out: [a.block_until_ready() for a in out]) if name == "jax" else (lambda out: out)
        module = r2dn.backends.module(name)
        for family, sizes in MODELS:
            model = getattr(module, family)(*sizes, seed=0, dtype="float32")
            x0 = model.init_state(5)
            us = rec.from_numpy(np.random.default_rng(0).normal(size=(10, 5, 2)).astype("float32"))
            u = us[0]
            sim, step = (lambda: model.simulate(x0, us)), (lambda: model(x0, u))
            print(f"{name} {family}: simulate(T=10) "
                  f"{per_call(sim, args.number, args.repeats, block):.1f} us "
                  f"({python_calls(sim)} Python calls), model(x, u) "
                  f"{per_call(step, args.number, args.repeats, block):.1f} us "
                  f"({python_calls(step)} Python calls)")


if __name__ == "__main__":
    main()
