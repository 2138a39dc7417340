"""The REN equilibrium's cost against nv: torch operator calls, JAX compile time, run times.

Issue 16 item 1: the operator calls a torch REN makes per step, and the time JAX takes to trace
and compile a REN gradient, must not grow with nv. Measured here, at the expressivity grid's REN
shape (nu = nx = ny = 1, identity output, tanh, float32, batch 64):

* ``torch_ops``: aten operator calls counted by ``torch.profiler`` for a rollout of T = 8 steps,
  forward (no gradient) and gradient (forward + backward of ``mean(y^2)``), at each nv, and their
  ratio to the smallest nv (target: at most 1.5 at nv = 200 against nv = 20);
* ``jax_compile``: seconds to trace, lower and compile ``jax.jit(jax.grad(loss))`` (T = 128) at each
  nv (target: at most 5 s at nv = 200);
* ``times``: medians of forward and gradient run times (T = 128), both backends, each nv.

    python benchmarks/ren_equilibrium.py                 # nv 20 and 200, JSON on stdout
    python benchmarks/ren_equilibrium.py --nv 20 50 200 --repeats 7 --out results.json
    python benchmarks/ren_equilibrium.py --quick         # a smoke run
    python benchmarks/ren_equilibrium.py --skip ops compile --clock cpu   # CPU-time medians
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np

SHAPE = dict(nu=1, nx=1, ny=1, batch=64)


def _inputs(nv: int, T: int, backend: str):
    rng = np.random.default_rng(0)
    x0 = rng.normal(size=(SHAPE["batch"], SHAPE["nx"])).astype(np.float32)
    us = rng.normal(size=(T, SHAPE["batch"], SHAPE["nu"])).astype(np.float32)
    if backend == "torch":
        import torch
        return torch.from_numpy(x0), torch.from_numpy(us)
    import jax.numpy as jnp
    return jnp.asarray(x0), jnp.asarray(us)


def torch_model(nv: int):
    import r2dn.torch as rt
    return rt.ContractingREN(SHAPE["nu"], SHAPE["nx"], nv, SHAPE["ny"], activation="tanh",
                             identity_output=True, init="random", seed=0)


def jax_model(nv: int):
    import r2dn.jax as rj
    return rj.ContractingREN(SHAPE["nu"], SHAPE["nx"], nv, SHAPE["ny"], activation="tanh",
                             identity_output=True, init="random", seed=0)


def torch_calls(nv: int, T: int = 8) -> dict[str, int]:
    """aten operator calls of one forward rollout and one gradient, ``T`` steps."""
    import torch
    from torch.profiler import ProfilerActivity, profile
    model = torch_model(nv)
    x0, us = _inputs(nv, T, "torch")

    def count(fn):
        fn()                                                  # warm caches outside the count
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            fn()
        return sum(e.count for e in prof.key_averages() if e.key.startswith("aten::"))

    def forward():
        with torch.no_grad():
            model.simulate(x0, us)

    def gradient():
        model.zero_grad()
        torch.mean(model.simulate(x0, us)[1] ** 2).backward()

    return {"forward": count(forward), "gradient": count(gradient)}


def jax_loss(model, x0, us):
    import jax.numpy as jnp
    return jnp.mean(model.simulate(x0, us)[1] ** 2)


def jax_compile_seconds(nv: int, T: int = 128) -> float:
    """Trace + lower + compile of ``jax.jit(jax.grad(loss))``."""
    import jax
    model = jax_model(nv)
    x0, us = _inputs(nv, T, "jax")
    jax.clear_caches()
    t0 = time.perf_counter()
    jax.jit(jax.grad(jax_loss)).lower(model, x0, us).compile()
    return time.perf_counter() - t0


def run_times(nv: int, T: int, repeats: int, clock=time.perf_counter) -> dict[str, float]:
    """Median seconds of forward and gradient rollouts, torch and JAX, alternating (``clock``:
    wall time, or ``time.process_time``, this process's CPU time, steadier on a shared machine)."""
    import jax
    import torch
    tm, jm = torch_model(nv), jax_model(nv)
    tx0, tus = _inputs(nv, T, "torch")
    jx0, jus = _inputs(nv, T, "jax")
    jf = jax.jit(lambda m, x0, us: m.simulate(x0, us)[1])
    jg = jax.jit(jax.grad(jax_loss))

    def t_forward():
        with torch.no_grad():
            tm.simulate(tx0, tus)

    def t_gradient():
        tm.zero_grad()
        torch.mean(tm.simulate(tx0, tus)[1] ** 2).backward()

    fns = {"torch_forward": t_forward, "torch_gradient": t_gradient,
           "jax_forward": lambda: jf(jm, jx0, jus).block_until_ready(),
           "jax_gradient": lambda: jax.block_until_ready(jg(jm, jx0, jus))}
    times: dict[str, list[float]] = {k: [] for k in fns}
    for fn in fns.values():
        fn()
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = clock()
            fn()
            times[k].append(clock() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nv", type=int, nargs="+", default=[20, 200])
    parser.add_argument("--horizon", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="nv 4 and 20, T 16, 1 repeat")
    parser.add_argument("--skip", nargs="*", default=[], choices=["ops", "compile", "times"])
    parser.add_argument("--out", help="also write the JSON here")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="run times as wall time or as this process's CPU time (steadier "
                             "when other jobs share the machine; JAX and torch run one thread)")
    args = parser.parse_args(argv)
    if args.quick:
        args.nv, args.horizon, args.repeats = [4, 20], 16, 1
    if args.clock == "cpu":                  # before JAX is imported: one thread, CPU time = work
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                                   + " --xla_cpu_multi_thread_eigen=false").strip()
    import torch
    torch.set_num_threads(1)
    result: dict = {"nv": args.nv, "horizon": args.horizon, **SHAPE}
    if "ops" not in args.skip:
        calls = {nv: torch_calls(nv) for nv in args.nv}
        base = calls[args.nv[0]]
        result["torch_ops"] = {str(nv): {**c, "forward_ratio": c["forward"] / base["forward"],
                                         "gradient_ratio": c["gradient"] / base["gradient"]}
                               for nv, c in calls.items()}
    if "compile" not in args.skip:
        result["jax_compile_s"] = {str(nv): jax_compile_seconds(nv, args.horizon) for nv in args.nv}
    if "times" not in args.skip:
        clock = time.process_time if args.clock == "cpu" else time.perf_counter
        result["clock"] = args.clock
        result["times_s"] = {str(nv): run_times(nv, args.horizon, args.repeats, clock)
                             for nv in args.nv}
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return result


if __name__ == "__main__":
    main()
