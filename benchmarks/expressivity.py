"""Timing grid of the R2DN paper's expressivity study: simulate forward and backward, REN vs R2DN.

As the authors' examples/time_expressivity.py: batch 64, horizon 128, nu = nx = ny = 1, identity
output, random init, polar, float32. Contracting RENs (tanh) with nv in {20, 30, 40, 60, 80, 100,
128, 200}; contracting R2DNs (relu) with nv = 16 and six hidden LBDN layers of width in {8, 16, 24,
32, 48, 64, 80, 96}. Forward: ``simulate(x0, us)`` without gradients; backward: the gradient of
``mean(x_T^2) + mean(y^2)`` with respect to every free parameter (forward included, as the
authors time it). Initial states and inputs are standard normal. Each time is the median of
``--repeats`` runs after a warm-up call (for JAX the warm-up compiles; its time is reported as
``first``). Output: a table, a log-log plot of time against the number of parameters with fitted
slopes, and the R2DN / REN time ratio at the largest sizes.

    python benchmarks/expressivity.py                      # both backends, the full grid
    python benchmarks/expressivity.py --backend torch --repeats 5
    python benchmarks/expressivity.py --quick              # a smoke run (CI)
"""

from __future__ import annotations

import math

from r2dn_examples.threads import one_blas_thread

one_blas_thread()     # before NumPy loads a BLAS library (r2dn_examples.threads says why)

import numpy as np  # noqa: E402

from r2dn_examples.adapters import BACKEND_CHOICES, make_backend, num_params
from r2dn_examples.cli import benchmark_parser, progress
from r2dn_examples.plots import plt_figure, save_figure
from r2dn_examples.results import write_results
from r2dn_examples.timing import cpu_load, loglog_slope, time_call

PAPER = {"batch": 64, "horizon": 128, "ren_nv": [20, 30, 40, 60, 80, 100, 128, 200],
         "r2dn_nv": 16, "r2dn_layers": 6, "r2dn_widths": [8, 16, 24, 32, 48, 64, 80, 96]}
QUICK = {"batch": 8, "horizon": 16, "ren_nv": [4, 8], "r2dn_nv": 4, "r2dn_layers": 2,
         "r2dn_widths": [4, 8]}


def build(rn, family: str, size: int, s: dict, seed: int):
    if family == "ren":
        return rn.ContractingREN(1, 1, size, 1, activation="tanh", identity_output=True,
                                 init="random", seed=seed, dtype="float32")
    return rn.ContractingR2DN(1, 1, s["r2dn_nv"], 1, hidden=(size,) * s["r2dn_layers"],
                              activation="relu", identity_output=True, init="random", seed=seed,
                              dtype="float32")


def loss(model, x0, us):
    """``mean(x_T^2) + mean(y^2)`` (the authors' timing loss)."""
    xT, ys = model.simulate(x0, us)
    return (xT**2).mean() + (ys**2).mean()


def main(argv: list[str] | None = None) -> dict:
    p = benchmark_parser(__doc__.splitlines()[0], default_out="expressivity",
                         repeats_help="timed runs per case (default 10; --quick 3)")
    args = p.parse_args(argv)
    s = dict(QUICK if args.quick else PAPER)
    repeats = args.repeats or (3 if args.quick else 10)
    backends = BACKEND_CHOICES if args.backend == "both" else (args.backend,)
    rng = np.random.default_rng(args.seed)
    x0_np = rng.standard_normal((s["batch"], 1))
    us_np = rng.standard_normal((s["horizon"], s["batch"], 1))
    load_before = cpu_load()

    rows, infos = [], {}
    grid = (("ren", s["ren_nv"]), ("r2dn", s["r2dn_widths"]))
    cases = [(b, f, n) for b in backends for f, sizes in grid for n in sizes]
    current, bk = None, None
    for name, family, size in progress(cases, args, desc="cases"):
        if name != current:
            bk, current = make_backend(name, args.threads), name
            infos[name] = bk.info()
            x0, us = bk.asarray(x0_np), bk.asarray(us_np)
        model = build(bk.rn, family, size, s, args.seed)
        fwd = time_call(bk.forward_callable(lambda m, a, b: m.simulate(a, b), model, x0, us),
                        repeats, bk.sync)
        bwd = time_call(bk.grad_callable(model, loss, x0, us), repeats, bk.sync)
        rows.append({"backend": name, "model": family, "size": size,
                     "nv": size if family == "ren" else s["r2dn_nv"],
                     "hidden": [] if family == "ren" else [size] * s["r2dn_layers"],
                     "num_params": num_params(model),
                     "forward_median_s": fwd["median"], "forward_min_s": fwd["min"],
                     "forward_first_s": fwd["first"], "backward_median_s": bwd["median"],
                     "backward_min_s": bwd["min"], "backward_first_s": bwd["first"],
                     "forward_times_s": fwd["times"], "backward_times_s": bwd["times"]})

    # slopes and ratios
    slopes, ratios = {}, {}
    for name in backends:
        for family in ("ren", "r2dn"):
            r = [row for row in rows if row["backend"] == name and row["model"] == family]
            for pas in ("forward", "backward"):
                k, se = loglog_slope([x["num_params"] for x in r], [x[f"{pas}_median_s"] for x in r])
                slopes[f"{name}/{family}/{pas}"] = {"slope": k, "stderr": se}
        ren_big = max((x for x in rows if x["backend"] == name and x["model"] == "ren"),
                      key=lambda x: x["num_params"])
        r2dn_big = max((x for x in rows if x["backend"] == name and x["model"] == "r2dn"),
                       key=lambda x: x["num_params"])
        for pas in ("forward", "backward"):
            ratios[f"{name}/{pas}"] = {
                "r2dn_over_ren": r2dn_big[f"{pas}_median_s"] / ren_big[f"{pas}_median_s"],
                "ren": {"nv": ren_big["nv"], "num_params": ren_big["num_params"],
                        "median_s": ren_big[f"{pas}_median_s"]},
                "r2dn": {"hidden": r2dn_big["hidden"], "num_params": r2dn_big["num_params"],
                         "median_s": r2dn_big[f"{pas}_median_s"]}}

    table = ["| backend | model | nv | hidden | params | forward (ms) | backward (ms) |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for x in rows:
        hidden = f"{len(x['hidden'])} x {x['hidden'][0]}" if x["hidden"] else "-"
        table.append(f"| {x['backend']} | {x['model'].upper()} | {x['nv']} | {hidden} | "
                     f"{x['num_params']} | {1e3 * x['forward_median_s']:.2f} | "
                     f"{1e3 * x['backward_median_s']:.2f} |")
    print("\n".join(table))
    for k, v in slopes.items():
        err = (f"standard error {v['stderr']:.3f}" if math.isfinite(v["stderr"])
               else "no standard error: two sizes only")
        print(f"log-log slope of time against parameters, {k}: {v['slope']:.3f} ({err})")
    for k, v in ratios.items():
        print(f"R2DN/REN time at the largest sizes, {k}: {v['r2dn_over_ren']:.3f} "
              f"(R2DN {v['r2dn']['num_params']} params, REN {v['ren']['num_params']} params)")

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "table.md").write_text("\n".join(table) + "\n")
    fig, axes = plt_figure(1, 2, figsize=(10, 4))
    styles = {"ren": ("o", "REN (tanh)"), "r2dn": ("D", "R2DN (relu)")}
    for ax, pas in zip(axes, ("forward", "backward")):
        for i, name in enumerate(backends):
            for family in ("ren", "r2dn"):
                r = sorted((x for x in rows if x["backend"] == name and x["model"] == family),
                           key=lambda x: x["num_params"])
                xs = np.array([x["num_params"] for x in r], float)
                ys = np.array([x[f"{pas}_median_s"] for x in r])
                sl = slopes[f"{name}/{family}/{pas}"]["slope"]
                color = f"C{2 * i + (family == 'r2dn')}"
                ax.plot(xs, ys, styles[family][0], color=color,
                        label=f"{name} {styles[family][1]}: slope {sl:.2f}")
                fit = np.polyfit(np.log(xs), np.log(ys), 1)
                xx = np.geomspace(xs.min(), xs.max(), 50)
                ax.plot(xx, np.exp(np.polyval(fit, np.log(xx))), ":", color=color)
        ax.set(xscale="log", yscale="log", xlabel="number of parameters",
               ylabel=f"{pas} time (s)",
               title=f"{pas}: batch {s['batch']}, horizon {s['horizon']} (median of {repeats})")
        ax.grid(True, which="both", ls=":", lw=0.6)
        ax.legend(fontsize=7)
    save_figure(fig, args.out / "expressivity_timing.png", args)

    devs = []
    if args.quick:
        devs.append("quick grid: " + ", ".join(f"{k} {v}" for k, v in QUICK.items()))
    devs += ["times are CPU medians on this machine (the paper timed JAX on a GPU); torch runs "
             "the time loop in Python, JAX under lax.scan inside jit",
             "init 'random' as the authors' timing script; parameters from r2dn.init (NumPy), "
             "inputs and states standard normal from numpy.random.default_rng(seed)"]
    figures = {"slopes": slopes, "r2dn_over_ren_at_largest": ratios, "table": rows,
               "cpu_load_before": load_before, "cpu_load_after": cpu_load()}
    write_results(args.out, "benchmarks/expressivity.py", args,
                  {**s, "repeats": repeats, "backends": list(backends), "backend_info": infos},
                  devs, {k: v for k, v in figures.items() if k != "table"},
                  extra={"table": rows})
    return figures


if __name__ == "__main__":
    main()
