"""Side by side with the R2DN authors' JAX code (``robustnn``): r2dn's torch and JAX backends
against it at the paper's timing shapes.

Shapes (the authors' examples/time_expressivity.py): batch 64, horizon 128, nu = nx = ny = 1,
identity output, random init, polar, float32; contracting REN nv = 200 (tanh); contracting R2DN
nv = 16 with six hidden LBDN layers of width 96 (relu). ``forward``: ``x_T`` of a rollout without
gradients; ``gradient``: the gradient of ``mean(x_T^2) + mean(y^2)`` with respect to every free
parameter (forward included, as the authors time it), every leaf waited for.

Each side runs in its own subprocess with its own interpreter: ``torch`` and ``jax`` (r2dn's
backends) under this Python, ``robustnn`` under ``--robustnn-python`` (a venv holding jax 0.5.3,
flax 0.10.4 and the authors' package; never this repository's). A round runs every side once, the
order rotating from round to round; in a round a side times each case ``--repeats`` times after a
warm-up call (for JAX the warm-up compiles; its time is kept as ``first_s``) and reports the
median. The figure of a side is the median over the ``--rounds`` rounds; the ratio is r2dn's time
over robustnn's (below 1: r2dn is faster). Every subprocess gets one BLAS/OpenMP thread and torch
``--threads`` intra-op threads.

    python benchmarks/vs_robustnn.py --robustnn-python /work/wt/robustnn-venv/bin/python
    python benchmarks/vs_robustnn.py --robustnn-python ... --rounds 1 --repeats 3 --sides jax
    python benchmarks/vs_robustnn.py --robustnn-python ... --cases ren/forward,ren/gradient

The robustnn side builds its models with ``robustnn.ren.ContractingREN`` /
``robustnn.r2dn.ContractingR2DN`` and times ``simulate_sequence`` under ``jax.jit`` (its worker
imports nothing of r2dn). Output: ``results.json`` in ``--out`` and the ratio table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHAPES = {"batch": 64, "horizon": 128, "nu": 1, "nx": 1, "ny": 1, "ren_nv": 200,
          "r2dn_nv": 16, "r2dn_hidden": [96] * 6, "dtype": "float32"}
CASES = ("ren/forward", "ren/gradient", "r2dn/forward", "r2dn/gradient")
R2DN_SIDES = ("torch", "jax")
THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


# -- workers (one per subprocess; each imports only its own framework) -----------------------------

def _time(fn, repeats: int, sync) -> dict:
    t0 = time.perf_counter()
    sync(fn())
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        sync(fn())
        times.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(times), "first_s": first, "times_s": times}


def _inputs(s: dict):
    import numpy as np
    rng = np.random.default_rng(0)
    x0 = rng.standard_normal((s["batch"], s["nx"])).astype(np.float32)
    us = rng.standard_normal((s["horizon"], s["batch"], s["nu"])).astype(np.float32)
    return x0, us


def _families(cases: list[str]) -> list[str]:
    """The model families (``ren``, ``r2dn``) that ``cases`` time, in order."""
    return list(dict.fromkeys(c.split("/")[0] for c in cases))


def worker_robustnn(s: dict, repeats: int, cases: list[str]) -> dict:
    """The authors' models under jax.jit, as their time_expressivity.py builds and times them."""
    import flax.linen as linen
    import jax
    import jax.numpy as jnp
    from robustnn import r2dn, ren

    build = {
        "ren": lambda: ren.ContractingREN(s["nu"], s["nx"], s["ren_nv"], s["ny"],
                                          identity_output=True, activation=linen.tanh,
                                          init_method="random", do_polar_param=True),
        "r2dn": lambda: r2dn.ContractingR2DN(s["nu"], s["nx"], s["r2dn_nv"], s["ny"],
                                             tuple(s["r2dn_hidden"]), identity_output=True,
                                             activation=linen.relu, init_method="random",
                                             do_polar_param=True)}
    x0, us = (jnp.asarray(a) for a in _inputs(s))
    out = {"versions": {"jax": jax.__version__, "flax": __import__("flax").__version__}}
    for name in _families(cases):
        model = build[name]()
        params = model.init(jax.random.key(0), x0, us[0])

        def loss(p, x0, us, model=model):
            xT, ys = model.simulate_sequence(p, x0, us)
            return jnp.mean(xT**2) + jnp.mean(ys**2)

        fwd = jax.jit(lambda p, x0, us, model=model: model.simulate_sequence(p, x0, us)[0])
        grad = jax.jit(jax.grad(loss))
        calls = {"forward": lambda: fwd(params, x0, us), "gradient": lambda: grad(params, x0, us)}
        _time_cases(out, name, calls, cases, repeats, jax.block_until_ready)
    return out


def _time_cases(out: dict, name: str, calls: dict, cases: list[str], repeats: int, sync) -> None:
    """``out[case] = _time(...)`` for the family ``name``'s calls among ``cases``."""
    for kind, call in calls.items():
        if f"{name}/{kind}" in cases:
            out[f"{name}/{kind}"] = _time(call, repeats, sync)


def _r2dn_models(rn, s: dict, cases: list[str]) -> dict:
    build = {"ren": lambda: rn.ContractingREN(s["nu"], s["nx"], s["ren_nv"], s["ny"], activation="tanh",
                                     identity_output=True, init="random", seed=0,
                                     dtype=s["dtype"]),
             "r2dn": lambda: rn.ContractingR2DN(s["nu"], s["nx"], s["r2dn_nv"], s["ny"],
                                                hidden=tuple(s["r2dn_hidden"]), activation="relu",
                                                identity_output=True, init="random", seed=0,
                                                dtype=s["dtype"])}
    return {name: build[name]() for name in _families(cases)}


def worker_jax(s: dict, repeats: int, cases: list[str]) -> dict:
    """r2dn's JAX backend: ``simulate`` (its default unroll) under jax.jit; gradient by jax.grad
    with respect to the model (a pytree of its free parameters)."""
    import jax
    import jax.numpy as jnp

    import r2dn.jax as rn

    x0, us = (jnp.asarray(a) for a in _inputs(s))

    def loss(m, x0, us):
        xT, ys = m.simulate(x0, us)
        return jnp.mean(xT**2) + jnp.mean(ys**2)

    fwd = jax.jit(lambda m, x0, us: m.simulate(x0, us)[0])
    grad = jax.jit(jax.grad(loss))
    out = {"versions": {"jax": jax.__version__}}
    for name, model in _r2dn_models(rn, s, cases).items():
        calls = {"forward": lambda: fwd(model, x0, us), "gradient": lambda: grad(model, x0, us)}
        _time_cases(out, name, calls, cases, repeats, jax.block_until_ready)
    return out


def worker_torch(s: dict, repeats: int, threads: int, cases: list[str]) -> dict:
    """r2dn's torch backend: ``simulate`` under ``torch.no_grad``; gradient by
    ``torch.autograd.grad`` with respect to every parameter that requires grad."""
    import torch

    import r2dn.torch as rn

    torch.set_num_threads(threads)
    x0, us = (torch.as_tensor(a) for a in _inputs(s))
    out = {"versions": {"torch": torch.__version__}, "threads": torch.get_num_threads()}
    for name, model in _r2dn_models(rn, s, cases).items():
        params = [p for p in model.parameters() if p.requires_grad]

        def fwd(model=model):
            with torch.no_grad():
                return model.simulate(x0, us)[0]

        def grad(model=model, params=params):
            xT, ys = model.simulate(x0, us)
            return torch.autograd.grad((xT**2).mean() + (ys**2).mean(), params)

        _time_cases(out, name, {"forward": fwd, "gradient": grad}, cases, repeats, lambda v: v)
    return out


# -- the driver ------------------------------------------------------------------------------------

def run_side(side: str, python: str, repeats: int, threads: int, cases: list[str],
             cache_dir: Path | None = None) -> dict:
    """One side in a fresh subprocess; its JSON result."""
    env = {**os.environ, **{v: "1" for v in THREAD_VARS}}
    if cache_dir is not None:   # later rounds skip XLA compilation (first_s then says so)
        env["JAX_COMPILATION_CACHE_DIR"] = str(cache_dir / side)
    if side == "robustnn":   # the authors' venv must not see this repository's packages
        env.pop("PYTHONPATH", None)
        cwd = tempfile.gettempdir()
    else:
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
        cwd = str(REPO)
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        path = f.name
    cmd = [python, str(Path(__file__).resolve()), "--worker", side, "--repeats", str(repeats),
           "--threads", str(threads), "--cases", ",".join(cases), "--worker-out", path]
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"vs_robustnn: the {side} side failed (exit {proc.returncode}):\n"
                         f"{proc.stdout[-2000:]}{proc.stderr[-4000:]}")
    result = json.loads(Path(path).read_text())
    os.unlink(path)
    return result


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--robustnn-python", default=None,
                   help="interpreter of a venv with jax 0.5.3, flax 0.10.4 and the authors' "
                        "robustnn package (required unless --sides leaves robustnn out)")
    p.add_argument("--sides", default="robustnn,torch,jax",
                   help="comma-separated subset of robustnn,torch,jax")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds (median over them)")
    p.add_argument("--repeats", type=int, default=5, help="timed calls per case in a round")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    p.add_argument("--cases", default=",".join(CASES),
                   help="comma-separated subset of " + ",".join(CASES))
    p.add_argument("--out", type=Path, default=REPO / "out" / "vs_robustnn")
    p.add_argument("--no-jax-cache", action="store_true",
                   help="no persistent JAX compilation cache (<out>/jax_cache/<side>) across rounds")
    p.add_argument("--worker", choices=("robustnn", *R2DN_SIDES), help=argparse.SUPPRESS)
    p.add_argument("--worker-out", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    cases = [c for c in args.cases.split(",") if c]
    if not cases or set(cases) - set(CASES):
        p.error(f"--cases: choose from {','.join(CASES)}; got {args.cases!r}")
    if args.worker:
        fn = {"robustnn": lambda: worker_robustnn(SHAPES, args.repeats, cases),
              "jax": lambda: worker_jax(SHAPES, args.repeats, cases),
              "torch": lambda: worker_torch(SHAPES, args.repeats, args.threads, cases)}[args.worker]
        args.worker_out.write_text(json.dumps(fn()))
        return {}

    sides = [x for x in args.sides.split(",") if x]
    unknown = set(sides) - {"robustnn", *R2DN_SIDES}
    if unknown:
        p.error(f"--sides: unknown {sorted(unknown)}; choose from robustnn,torch,jax")
    if "robustnn" in sides and not args.robustnn_python:
        p.error("--robustnn-python is required for the robustnn side (a venv's python with "
                "jax==0.5.3, flax==0.10.4 and the authors' package installed)")
    pythons = {s: (args.robustnn_python if s == "robustnn" else sys.executable) for s in sides}
    rounds: dict[str, list[dict]] = {s: [] for s in sides}
    load_before = os.getloadavg()
    for r in range(args.rounds):
        order = sides[r % len(sides):] + sides[:r % len(sides)]
        for side in order:
            t0 = time.perf_counter()
            rounds[side].append(run_side(side, pythons[side], args.repeats, args.threads, cases,
                                          None if args.no_jax_cache else args.out / "jax_cache"))
            print(f"round {r + 1}/{args.rounds}: {side} done in {time.perf_counter() - t0:.0f} s",
                  flush=True)
        args.out.mkdir(parents=True, exist_ok=True)          # what is done survives a kill
        (args.out / "rounds.json").write_text(json.dumps(rounds, indent=2) + "\n")

    medians = {s: {c: statistics.median(x[c]["median_s"] for x in rounds[s]) for c in cases}
               for s in sides}
    ratios = ({s: {c: medians[s][c] / medians["robustnn"][c] for c in cases}
               for s in sides if s != "robustnn"} if "robustnn" in sides else {})
    lines = ["| time (ms), median of rounds | " + " | ".join(cases) + " |",
             "| --- |" + " --- |" * len(cases)]
    for s in sides:
        lines.append(f"| {s} | " + " | ".join(f"{1e3 * medians[s][c]:.1f}" for c in cases) + " |")
    if ratios:
        lines += ["", "| r2dn / robustnn | " + " | ".join(cases) + " |",
                  "| --- |" + " --- |" * len(cases)]
        for s in ratios:
            lines.append(f"| {s} | " + " | ".join(f"{ratios[s][c]:.2f}" for c in cases) + " |")
    print("\n".join(lines))
    result = {"script": "benchmarks/vs_robustnn.py", "argv": sys.argv[1:], "shapes": SHAPES,
              "rounds": args.rounds, "repeats": args.repeats, "torch_threads": args.threads,
              "median_s": medians, "ratio_r2dn_over_robustnn": ratios,
              "first_call_s": {s: {c: [x[c]["first_s"] for x in rounds[s]] for c in cases}
                               for s in sides},
              "per_round": rounds, "cpu_load_before": list(load_before),
              "cpu_load_after": list(os.getloadavg()), "cpus": os.cpu_count()}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "table.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out / 'results.json'}")
    return result


if __name__ == "__main__":
    main()
