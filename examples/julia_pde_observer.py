"""The PDE observer REN that RobustNeuralNetworks.jl trained, run in r2dn without Julia.

``pde_obsv.bson`` holds the contracting REN (nu = 3, nx = 51, nv = 500, tanh, eps = 0.01, no polar
parameterisation, identity output) that the Julia example ``ren_obsv_pde.jl`` trained as an observer
of the reaction-diffusion PDE xi_t = xi_zz + xi (1 - xi)(xi - 1/2) / 2 with boundary input b(t).
This script reads it with :func:`r2dn.julia.load_model`, regenerates the PDE data in NumPy exactly
as the example does (:mod:`r2dn_examples.datasets`), and reports

1. the one-step prediction loss mean ||x+_pred - x+||^2 on fresh data (Julia's last training epoch:
   6.358e-6), and
2. the observer run as in the example: the plant starts at xi = 0.5, b = 0.5, the observer at 0;
   contraction makes the estimate forget its wrong initial state and track the plant.

    python examples/julia_pde_observer.py                     # 20,000 samples, 2,000 steps
    python examples/julia_pde_observer.py --quick             # a smoke run of a few seconds
    python examples/julia_pde_observer.py --backend torch --data /path/to/shared/data
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

import r2dn
import r2dn.julia as rj
from r2dn_examples import datasets

REPO = Path(__file__).resolve().parents[1]
#: Julia's loss in the last training epoch (pde_obsv.bson "training_loss"[end]).
JULIA_FINAL_TRAINING_LOSS = 6.358e-6
CHUNK = 2000   # one-step samples per model call


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    default_data = Path(os.environ.get("R2DN_DATA", REPO.parent / "shared" / "data"))
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", type=Path, default=default_data,
                   help="shared data folder holding julia/pde_obsv.bson")
    p.add_argument("--out", type=Path, default=REPO / "out" / "julia_pde_observer",
                   help="folder for results.json and the PNG plot")
    p.add_argument("--backend", choices=r2dn.BACKENDS, default="numpy",
                   help="r2dn backend that runs the model")
    p.add_argument("--samples", type=int, default=None,
                   help="length of the fresh trajectory for the loss (default 20000)")
    p.add_argument("--stride", type=int, default=None,
                   help="evaluate every n-th sample (default 1; --quick: 20)")
    p.add_argument("--steps", type=int, default=None,
                   help="observer test length (default 2000 as in Julia; --quick: 300)")
    p.add_argument("--certify", action="store_true",
                   help="also compute r2dn.certify (an LMI of size 2nx + nv: ~30 s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random input walk")
    p.add_argument("--quick", action="store_true", help="small data: a smoke run (CI)")
    args = p.parse_args(argv)
    args.samples = args.samples or 20_000
    args.stride = args.stride or (20 if args.quick else 1)
    args.steps = args.steps or (300 if args.quick else 2000)
    return args


def _numpy(x):
    return np.asarray(rj.models.to_numpy(x), dtype=np.float64)


def one_step_loss(model, xi: np.ndarray, b: np.ndarray, stride: int) -> tuple[float, int]:
    """Mean ||x+_pred - x+||^2 over the samples t = 0, stride, 2 stride, ... of one trajectory."""
    idx = np.arange(0, xi.shape[0] - 1, stride)
    total = 0.0
    for start in range(0, idx.size, CHUNK):
        t = idx[start:start + CHUNK]
        x = xi[t, 0]
        u = datasets.observer_inputs(xi[t, 0], b[t, 0])
        pred, _ = model(rj.as_model_array(model, x), rj.as_model_array(model, u))
        total += float(np.sum((_numpy(pred) - xi[t + 1, 0]) ** 2))
    return total / idx.size, int(idx.size)


def main(argv: list[str] | None = None) -> dict:
    args = parse(argv)
    path = args.data / "julia" / "pde_obsv.bson"
    if not path.is_file():
        sys.exit(f"julia_pde_observer: {path} is missing; pass --data DIR (the shared data folder "
                 "holding julia/pde_obsv.bson) or set R2DN_DATA")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.backend == "torch":
        import torch
        torch.set_grad_enabled(False)
    model, info = rj.load_model(path, backend=args.backend, return_info=True)
    julia_loss = float(rj.read_bson(path)["training_loss"][-1])
    c = model.config
    print(f"loaded {info.julia_type} -> r2dn.{args.backend}.{c.model}(nu={c.nu}, nx={c.nx}, "
          f"nv={c.nv}, ny={c.ny}, {c.activation}, eps={c.eps}, polar={c.polar}, "
          f"identity_output={c.identity_output}, compat={c.compat!r}, dtype={c.dtype})")
    figures: dict[str, float | int | str] = {"julia_final_training_loss": julia_loss}

    # 1. one-step loss on fresh data, generated as Julia's: one trajectory from xi = 0, b = 0
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    xi, b = datasets.reaction_diffusion(args.samples, rng)
    t_sim = time.perf_counter() - t0
    t0 = time.perf_counter()
    loss, n = one_step_loss(model, xi, b, args.stride)
    t_loss = time.perf_counter() - t0
    print(f"one-step loss on {n} fresh samples (stride {args.stride} over {args.samples - 1}): "
          f"{loss:.4g}   (Julia, last training epoch: {julia_loss:.4g})  "
          f"[simulate {t_sim:.1f} s, model {t_loss:.1f} s]")
    figures.update(one_step_loss=loss, one_step_samples=n)

    # 2. the observer from a wrong initial state (Julia's test: plant 0.5, observer 0)
    xi_t, b_t = datasets.reaction_diffusion(args.steps, rng, xi0=0.5, b0=0.5)
    us = datasets.observer_inputs(xi_t, b_t)
    x0 = np.zeros((1, c.nx))
    t0 = time.perf_counter()
    _, xhat = model.simulate(rj.as_model_array(model, x0), rj.as_model_array(model, us))
    t_obs = time.perf_counter() - t0
    xhat = _numpy(xhat)[:, 0]
    truth = xi_t[:, 0]
    err = np.linalg.norm(xhat - truth, axis=-1)
    below = np.flatnonzero(err < 0.1 * err[0])
    marks = [t for t in (0, 10, 50, 100, 200, 500, 1000, 1500, args.steps - 1) if t < args.steps]
    print(f"observer error ||xhat_t - xi_t|| (plant from 0.5, observer from 0; {args.steps} steps, "
          f"{t_obs:.1f} s):")
    print("   " + "  ".join(f"t={t}: {err[t]:.3g}" for t in marks))
    rms_tail = float(np.sqrt(np.mean((xhat[-100:] - truth[-100:]) ** 2)))
    first = int(below[0]) if below.size else -1
    print(f"   first step below 10% of the initial error: {first if first >= 0 else 'not reached'}; "
          f"RMS error per grid point over the last 100 steps: {rms_tail:.3g}")
    figures.update(observer_initial_error=float(err[0]), observer_final_error=float(err[-1]),
                   observer_steps_to_10_percent=first, observer_rms_last_100=rms_tail)

    if args.certify and args.backend == "numpy":
        t0 = time.perf_counter()
        report = r2dn.certify(model)
        print(f"certificate: certified={report.certified}, min_eig={report.min_eig:.3g} "
              f"(scale {report.scale:.3g}), contraction rate <= {report.rate:.6f} "
              f"[{time.perf_counter() - t0:.1f} s]")
        figures.update(certified=bool(report.certified), certified_rate=float(report.rate))

    # plot: the example's three heat maps, and the error norm
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(4, 1, figsize=(7, 8), sharex=True, layout="constrained")
    extent = (0, args.steps, 0, datasets.PDE_LENGTH)
    for ax, data, title in zip(axes[:3], (truth, xhat, np.abs(xhat - truth)),
                               ("true state", "observer estimate", "|error|")):
        im = ax.imshow(data.T, aspect="auto", origin="lower", extent=extent, cmap="inferno",
                       vmin=0, vmax=1)
        ax.set_ylabel("z")
        ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=axes[:3], fraction=0.03)
    axes[3].semilogy(err)
    axes[3].set_xlabel("time step")
    axes[3].set_ylabel("||xhat - xi||")
    axes[3].set_title(f"one-step loss {loss:.3g} (Julia {julia_loss:.3g})", fontsize=9)
    png = args.out / "julia_pde_observer.png"
    fig.savefig(png, dpi=110)
    plt.close(fig)
    results = {"command": "python " + " ".join(["examples/julia_pde_observer.py"] + (argv or sys.argv[1:])),
               "backend": args.backend, "figures": figures, "notes": list(info.notes)}
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {png} and {args.out / 'results.json'}")
    return figures


if __name__ == "__main__":
    main()
