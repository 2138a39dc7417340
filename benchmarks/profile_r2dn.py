"""Where the R2DN's time goes: operator counts and self times (torch), program sizes and compile vs
run time (JAX), at the paper's timing model.

Model: contracting R2DN, nu = nx = ny = 1, nv = 16, six hidden LBDN layers of width 96 (relu),
identity output, float32, batch 64. Sequences are ``--horizon`` steps (default 8: operator counts
per step are the count divided by the horizon).

* torch: ``torch.profiler`` over one forward rollout (``simulate`` under ``no_grad``) and one
  gradient of ``mean(x_T^2) + mean(y^2)`` (forward + backward): the number of operator calls, per
  step, and the operators with the largest self CPU time. (Where torch exports its BLAS, the
  forward rollout runs its time loop in one C call, ``r2dn.torch.native.rollout``: its operator
  count is then per rollout, not per step; ``R2DN_NATIVE=0`` profiles the torch operations.)
* JAX: the number of equations of the jaxpr (scan bodies counted once, recursively), the number of
  StableHLO operations of the lowered program, the lowering and compile time, and the median run
  time of ``--repeats`` calls, for the forward rollout and the gradient.

Counts do not depend on the machine's load; times do (compare only within one run).

    python benchmarks/profile_r2dn.py
    python benchmarks/profile_r2dn.py --horizon 128 --backend jax
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHAPE = {"nu": 1, "nx": 1, "nv": 16, "ny": 1, "hidden": [96] * 6, "batch": 64}


def _data(horizon: int):
    rng = np.random.default_rng(0)
    return (rng.standard_normal((SHAPE["batch"], 1)).astype(np.float32),
            rng.standard_normal((horizon, SHAPE["batch"], 1)).astype(np.float32))


def _model(rn):
    return rn.ContractingR2DN(1, 1, SHAPE["nv"], 1, hidden=tuple(SHAPE["hidden"]),
                              activation="relu", identity_output=True, init="random", seed=0,
                              dtype="float32")


def profile_torch(horizon: int, top: int) -> dict:
    import torch
    from torch.profiler import ProfilerActivity, profile

    import r2dn.torch as rn
    torch.set_num_threads(1)
    model = _model(rn)
    x0, us = (torch.as_tensor(a) for a in _data(horizon))
    params = [p for p in model.parameters() if p.requires_grad]

    def forward():
        with torch.no_grad():
            return model.simulate(x0, us)

    def gradient():
        xT, ys = model.simulate(x0, us)
        return torch.autograd.grad((xT**2).mean() + (ys**2).mean(), params)

    out = {}
    for label, fn in (("forward", forward), ("gradient", gradient)):
        fn()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            fn()
        ev = [e for e in prof.key_averages() if not e.key.startswith("ProfilerStep")]
        aten = [e for e in ev if e.key.startswith("aten::")]
        calls = sum(e.count for e in aten)
        by_time = sorted(aten, key=lambda e: e.self_cpu_time_total, reverse=True)[:top]
        by_count = sorted(aten, key=lambda e: e.count, reverse=True)[:top]
        total_self = sum(e.self_cpu_time_total for e in ev)
        out[label] = {"aten_calls": calls, "aten_calls_per_step": calls / horizon,
                      "self_cpu_total_ms": total_self / 1e3,
                      "top_self_time": [{"op": e.key, "calls": e.count,
                                         "self_ms": e.self_cpu_time_total / 1e3} for e in by_time],
                      "top_count": [{"op": e.key, "calls": e.count} for e in by_count]}
    return out


def _jaxpr_eqns(jaxpr) -> int:
    """Equations of a jaxpr, the bodies of its sub-jaxprs (scan, cond, custom rules) included."""
    n = 0
    for eqn in jaxpr.eqns:
        n += 1
        for v in eqn.params.values():
            for sub in (v if isinstance(v, (tuple, list)) else (v,)):
                inner = getattr(sub, "jaxpr", None)
                if inner is not None and hasattr(inner, "eqns"):
                    n += _jaxpr_eqns(inner)
                elif hasattr(sub, "eqns"):
                    n += _jaxpr_eqns(sub)
    return n


def profile_jax(horizon: int, repeats: int) -> dict:
    import jax
    import jax.numpy as jnp

    import r2dn.jax as rn
    model = _model(rn)
    x0, us = (jnp.asarray(a) for a in _data(horizon))

    def loss(m, x0, us):
        xT, ys = m.simulate(x0, us)
        return jnp.mean(xT**2) + jnp.mean(ys**2)

    fns = {"forward": lambda m, a, b: m.simulate(a, b)[0], "gradient": jax.grad(loss)}
    out = {}
    for label, fn in fns.items():
        jaxpr = jax.make_jaxpr(fn)(model, x0, us)
        t0 = time.perf_counter()
        lowered = jax.jit(fn).lower(model, x0, us)
        t_lower = time.perf_counter() - t0
        hlo = lowered.as_text()
        hlo_ops = sum(1 for line in hlo.splitlines()
                      if "=" in line and ("stablehlo." in line or "mhlo." in line))
        t0 = time.perf_counter()
        compiled = lowered.compile()
        t_compile = time.perf_counter() - t0
        jax.block_until_ready(compiled(model, x0, us))
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            jax.block_until_ready(compiled(model, x0, us))
            times.append(time.perf_counter() - t0)
        out[label] = {"jaxpr_eqns": _jaxpr_eqns(jaxpr.jaxpr), "stablehlo_ops": hlo_ops,
                      "trace_lower_s": t_lower, "compile_s": t_compile,
                      "run_median_s": statistics.median(times)}
    return out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--backend", choices=("torch", "jax", "both"), default="both")
    p.add_argument("--horizon", type=int, default=8)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--top", type=int, default=8, help="operators listed per table")
    p.add_argument("--out", type=Path, default=REPO / "out" / "profile_r2dn")
    args = p.parse_args(argv)
    result = {"script": "benchmarks/profile_r2dn.py", "argv": sys.argv[1:], "shape": SHAPE,
              "horizon": args.horizon}
    if args.backend in ("torch", "both"):
        result["torch"] = t = profile_torch(args.horizon, args.top)
        for label, r in t.items():
            print(f"torch {label}: {r['aten_calls']} aten calls ({r['aten_calls_per_step']:.1f} "
                  f"per step), self CPU {r['self_cpu_total_ms']:.1f} ms")
            for e in r["top_self_time"]:
                print(f"    {e['op']:32s} {e['calls']:6d} calls  {e['self_ms']:8.2f} ms self")
    if args.backend in ("jax", "both"):
        result["jax"] = j = profile_jax(args.horizon, args.repeats)
        for label, r in j.items():
            print(f"jax {label}: {r['jaxpr_eqns']} jaxpr equations, {r['stablehlo_ops']} StableHLO "
                  f"ops; trace+lower {r['trace_lower_s']:.2f} s, compile {r['compile_s']:.2f} s, "
                  f"run {1e3 * r['run_median_s']:.2f} ms")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out / 'results.json'}")
    return result


if __name__ == "__main__":
    main()
