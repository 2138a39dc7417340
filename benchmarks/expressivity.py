"""The R2DN paper's expressivity study: train the REN and R2DN grids, time them, plot time against
expressivity.

Training (the authors' examples/test_expressivity.py, read for its facts): one-step regression of
the scalar system ``x+ = f(x, u)``, ``f(x, u) = 0.2 sin x + 0.05 cos 2w + 0.05 sin 3w
+ 0.075 sin 4w atan(0.1 w^2) + 0.05 x + u`` with ``w = x + u``; every epoch draws fresh data, 128
batches of 512 points, ``x ~ U[-30, 30]``, ``u ~ U[-1, 1]``; the loss is the mean squared error of
the model's next state (``simulate`` over one step, identity output); Adam from 1e-3, x0.1 every
third of the epochs down to 1e-5 (staircase), gradients clipped elementwise to [-10, 10]. Validation:
2048 points ``x ~ U[-30, 30]``, ``u = 1``; the figure is the NRMSE ``sqrt(mean((x+ - xhat)^2) /
mean(x+^2))``. Grid: contracting RENs (tanh) with nv in {20, 30, 40, 60, 80, 100, 128, 200};
contracting R2DNs (relu) with nv = 16 and six hidden LBDN layers of width in {8, 16, ..., 96}.

Timing (the authors' examples/time_expressivity.py): batch 64, horizon 128, nu = nx = ny = 1,
identity output, random init, polar, float32. Forward: ``simulate(x0, us)`` without gradients;
backward: the gradient of ``mean(x_T^2) + mean(y^2)`` with respect to every free parameter (forward
included, as the authors time it). Each time is the median of ``--repeats`` runs after a warm-up
call (for JAX the warm-up compiles; its time is reported as ``first``).

Output: tables, ``results.json``, and plots: time against the number of parameters
(``expressivity_timing.png``), validation NRMSE against the number of parameters beside the
paper's (``expressivity_nrmse.png``), time against expressivity 1/NRMSE with fitted log-log slopes
(``expressivity_time_vs_expressivity.png``, the paper's figure).

    python benchmarks/expressivity.py --epochs 30            # both backends, both parts
    python benchmarks/expressivity.py --backend jax --parts train --epochs 30
    python benchmarks/expressivity.py --quick              # a smoke run (CI)
"""

from __future__ import annotations

import json
from pathlib import Path

from r2dn_examples.threads import one_blas_thread

one_blas_thread()     # before NumPy loads a BLAS library (r2dn_examples.threads says why)

import numpy as np  # noqa: E402

from r2dn_examples.adapters import BACKEND_CHOICES, make_backend, num_params
from r2dn_examples.cli import benchmark_parser, progress
from r2dn_examples.plots import plt_figure, save_figure
from r2dn_examples.results import nrmse, write_results
from r2dn_examples.schedules import step_decay
from r2dn_examples.timing import Stopwatch, cpu_load, loglog_slope, time_call

PAPER = {"batch": 64, "horizon": 128, "ren_nv": [20, 30, 40, 60, 80, 100, 128, 200],
         "r2dn_nv": 16, "r2dn_layers": 6, "r2dn_widths": [8, 16, 24, 32, 48, 64, 80, 96],
         "epochs": 1500, "batches": 128, "batchsize": 512, "val_points": 2048, "lr": 1e-3,
         "lr_floor": 1e-5, "clip": 10.0}
QUICK = {"batch": 8, "horizon": 16, "ren_nv": [4, 8], "r2dn_nv": 4, "r2dn_layers": 2,
         "r2dn_widths": [4, 8], "epochs": 2, "batches": 4, "batchsize": 64, "val_points": 256}
#: the paper's validation NRMSE (%) at each size of the grid (REN: nv; R2DN: hidden width)
PAPER_NRMSE_PCT = {"ren": [6.1, 4.6, 3.9, 2.2, 1.1, 0.61, 0.40, 0.25],
                   "r2dn": [6.6, 4.05, 2.4, 1.5, 0.65, 0.51, 0.38, 0.32]}
#: default training epochs here: the paper's 1,500 take days on a shared 2-core CPU
DEFAULT_EPOCHS = 20


def dynamics(x: np.ndarray, u: np.ndarray) -> np.ndarray:
    """The paper's scalar system ``x+ = f(x, u)`` (float64 NumPy)."""
    w = x + u
    return (0.2 * np.sin(x) + 0.05 * np.cos(2 * w) + 0.05 * np.sin(3 * w)
            + 0.075 * np.sin(4 * w) * np.arctan(0.1 * w**2)) + 0.05 * x + u


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


def one_step_loss(model, x, us, x_next):
    """Mean squared error of the model's next state (the training loss); aux: none."""
    xT, _ = model.simulate(x, us)
    return ((x_next - xT) ** 2).mean(), None


def train(bk, family: str, size: int, s: dict, seed: int) -> dict:
    """Train one model of the grid; its validation NRMSE, loss curve and wall time."""
    model = build(bk.rn, family, size, s, seed)
    trainer = bk.trainer(model, one_step_loss, s["clip"])
    lr = step_decay(s["lr"], max(1, -(-s["epochs"] // 3)), 0.1, s["lr_floor"])
    rng = np.random.default_rng(seed)
    curve = []
    with Stopwatch() as sw:
        for epoch in range(s["epochs"]):
            shape = (s["batches"], s["batchsize"], 1)
            x, u = rng.uniform(-30, 30, shape), rng.uniform(-1, 1, shape)
            xn = dynamics(x, u)
            losses = [trainer.step(lr(epoch), bk.asarray(x[b]), bk.asarray(u[b][None]),
                                   bk.asarray(xn[b]))[0] for b in range(s["batches"])]
            curve.append(float(np.mean(losses)))
    vrng = np.random.default_rng(42)
    xv = vrng.uniform(-30, 30, (s["val_points"], 1))
    uv = np.ones_like(xv)
    xhat, _ = bk.simulate(trainer.model, bk.asarray(xv), bk.asarray(uv[None]))
    return {"model": trainer.model, "train_seconds": sw.seconds, "train_loss": curve,
            "val_nrmse": nrmse(dynamics(xv, uv), np.asarray(bk.numpy(xhat), float))}


def time_model(bk, model, x0, us, repeats: int) -> dict:
    fwd = time_call(bk.forward_callable(lambda m, a, b: m.simulate(a, b), model, x0, us),
                    repeats, bk.sync)
    bwd = time_call(bk.grad_callable(model, loss, x0, us), repeats, bk.sync)
    return {"forward_median_s": fwd["median"], "forward_min_s": fwd["min"],
            "forward_first_s": fwd["first"], "backward_median_s": bwd["median"],
            "backward_min_s": bwd["min"], "backward_first_s": bwd["first"],
            "forward_times_s": fwd["times"], "backward_times_s": bwd["times"]}


def _series(rows, name, family, key):
    r = sorted((x for x in rows if x["backend"] == name and x["model"] == family),
               key=lambda x: x["num_params"])
    return r, np.array([x["num_params"] for x in r], float), np.array([x.get(key, np.nan) for x in r])


def _fit_line(ax, xs, ys, color):
    fit = np.polyfit(np.log(xs), np.log(ys), 1)
    xx = np.geomspace(xs.min(), xs.max(), 50)
    ax.plot(xx, np.exp(np.polyval(fit, np.log(xx))), ":", color=color)


STYLES = {"ren": ("o", "REN (tanh)"), "r2dn": ("D", "R2DN (relu)")}


def plot_times(rows, backends, x_of, xlabel: str, title: str, path) -> dict:
    """Forward and backward time against ``x_of(row)``, log-log, one fitted line per series;
    returns the slopes ``{"backend/family/pass": {"slope", "stderr"}}``."""
    slopes = {}
    fig, axes = plt_figure(1, 2, figsize=(10, 4))
    for ax, pas in zip(axes, ("forward", "backward")):
        for i, name in enumerate(backends):
            for family in ("ren", "r2dn"):
                r, _, ts = _series(rows, name, family, f"{pas}_median_s")
                xs = np.array([x_of(x) for x in r], float)
                k, se = loglog_slope(xs, ts)
                slopes[f"{name}/{family}/{pas}"] = {"slope": k, "stderr": se}
                color = f"C{2 * i + (family == 'r2dn')}"
                ax.plot(xs, ts, STYLES[family][0], color=color,
                        label=f"{name} {STYLES[family][1]}: slope {k:.2f}")
                _fit_line(ax, xs, ts, color)
        ax.set(xscale="log", yscale="log", xlabel=xlabel, ylabel=f"{pas} time (s)")
        ax.set_title(f"{pas} time\n{title}", fontsize=9)
        ax.grid(True, which="both", ls=":", lw=0.6)
        ax.legend(fontsize=7)
    save_figure(fig, path)
    return slopes


def plot_nrmse(rows, backends, s, paper_sizes, smoke, path):
    fig, ax = plt_figure(figsize=(6, 4))
    for i, name in enumerate(backends):
        for family in ("ren", "r2dn"):
            _, xs, ys = _series(rows, name, family, "val_nrmse")
            ax.plot(xs, 100 * ys, STYLES[family][0] + "-", color=f"C{2 * i + (family == 'r2dn')}",
                    label=f"{name} {STYLES[family][1]}, {s['epochs']} epochs")
    for family, pts in paper_sizes.items():
        ax.plot(pts, PAPER_NRMSE_PCT[family], STYLES[family][0] + "--", color="k", mfc="none",
                label=f"paper {STYLES[family][1]}, 1500 epochs")
    ax.set(xscale="log", yscale="log", xlabel="number of parameters",
           ylabel="validation NRMSE (%)",
           title=("SMOKE RUN (--quick)\n" if smoke else "") + "one-step regression of x+ = f(x, u)")
    ax.grid(True, which="both", ls=":", lw=0.6)
    ax.legend(fontsize=7)
    save_figure(fig, path)


def _trained_nrmse(folder: Path) -> dict[tuple[str, int], tuple[float, str]]:
    """``(family, size) -> (validation NRMSE, backend that trained it)`` from a training run's
    ``rows.jsonl`` (the first backend's row of each size)."""
    path = folder / "rows.jsonl"
    if not path.is_file():
        raise SystemExit(f"--nrmse-from: {path} does not exist (a --parts train run writes it)")
    out: dict[tuple[str, int], tuple[float, str]] = {}
    for line in path.read_text().splitlines():
        row = json.loads(line)
        if "val_nrmse" in row:
            out.setdefault((row["model"], row["size"]), (row["val_nrmse"], row["backend"]))
    if not out:
        raise SystemExit(f"--nrmse-from: {path} has no trained rows")
    return out


def _trainers(trained: dict[tuple[str, int], tuple[float, str]]) -> str:
    return ", ".join(sorted({backend for _, backend in trained.values()}))


def main(argv: list[str] | None = None) -> dict:
    p = benchmark_parser(__doc__.splitlines()[0], default_out="expressivity",
                         repeats_help="timed runs per case (default 10; --quick 3)")
    p.add_argument("--parts", choices=("train", "time", "both"), default="both",
                   help="train the grid (NRMSE), time it, or both (then the time-vs-expressivity "
                        "plot)")
    p.add_argument("--epochs", type=int, default=None,
                   help=f"training epochs (paper: 1500; default here {DEFAULT_EPOCHS}; --quick 2)")
    p.add_argument("--families", default="ren,r2dn", help="comma-separated subset of ren,r2dn")
    p.add_argument("--max-sizes", type=int, default=None,
                   help="train/time only the first N sizes of each grid (epoch-count studies)")
    p.add_argument("--nrmse-from", type=Path, default=None, metavar="DIR",
                   help="with --parts time: the validation NRMSE of each size from an earlier "
                        "--parts train (or both) run's DIR/rows.jsonl, for the time-vs-"
                        "expressivity plot (timing on a quieter machine than the training had)")
    args = p.parse_args(argv)
    trained = _trained_nrmse(args.nrmse_from) if args.nrmse_from else {}
    if trained and args.parts != "time":
        p.error("--nrmse-from goes with --parts time (a training run measures its own NRMSE)")
    s = {**PAPER, "epochs": DEFAULT_EPOCHS, **(QUICK if args.quick else {})}
    if args.epochs is not None:
        s["epochs"] = args.epochs
    repeats = args.repeats or (3 if args.quick else 10)
    backends = BACKEND_CHOICES if args.backend == "both" else (args.backend,)
    families = tuple(f for f in ("ren", "r2dn") if f in args.families.split(","))
    grid = {"ren": s["ren_nv"][:args.max_sizes], "r2dn": s["r2dn_widths"][:args.max_sizes]}
    do_train, do_time = args.parts in ("train", "both"), args.parts in ("time", "both")
    rng = np.random.default_rng(args.seed)
    x0_np = rng.standard_normal((s["batch"], 1))
    us_np = rng.standard_normal((s["horizon"], s["batch"], 1))
    load_before = cpu_load()

    rows, infos = [], {}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "rows.jsonl").write_text("")
    cases = [(b, f, n) for b in backends for f in families for n in grid[f]]
    current, bk = None, None
    for name, family, size in progress(cases, args, desc="cases"):
        if name != current:
            bk, current = make_backend(name, args.threads), name
            infos[name] = bk.info()
            x0, us = bk.asarray(x0_np), bk.asarray(us_np)
        row = {"backend": name, "model": family, "size": size,
               "nv": size if family == "ren" else s["r2dn_nv"],
               "hidden": [] if family == "ren" else [size] * s["r2dn_layers"]}
        model = build(bk.rn, family, size, s, args.seed)
        if do_train:
            t = train(bk, family, size, s, args.seed)
            model = t.pop("model")
            row.update(t)
            print(f"{name} {family} size {size}: NRMSE {100 * t['val_nrmse']:.3f} % after "
                  f"{s['epochs']} epochs ({t['train_seconds']:.0f} s)", flush=True)
        row["num_params"] = num_params(model)
        if trained:
            if (family, size) not in trained:
                raise SystemExit(f"--nrmse-from {args.nrmse_from}: no trained {family} of size "
                                 f"{size} in its rows.jsonl")
            row["val_nrmse"], row["nrmse_from"] = trained[family, size]
        if do_time:
            row.update(time_model(bk, model, x0, us, repeats))
        rows.append(row)
        with (args.out / "rows.jsonl").open("a") as f:     # what is done survives a kill
            f.write(json.dumps({k: v for k, v in row.items() if k != "train_loss"}) + "\n")

    head = "| backend | model | nv | hidden | params |"
    sep = "| --- | --- | --- | --- | --- |"
    if do_train:
        head += " NRMSE (%) | paper NRMSE (%) | train (s) |"
        sep += " --- | --- | --- |"
    if do_time:
        head += " forward (ms) | backward (ms) |"
        sep += " --- | --- |"
    table = [head, sep]
    for x in rows:
        hidden = f"{len(x['hidden'])} x {x['hidden'][0]}" if x["hidden"] else "-"
        line = f"| {x['backend']} | {x['model'].upper()} | {x['nv']} | {hidden} | {x['num_params']} |"
        if do_train:
            sizes = PAPER["ren_nv"] if x["model"] == "ren" else PAPER["r2dn_widths"]
            paper = (PAPER_NRMSE_PCT[x["model"]][sizes.index(x["size"])]
                     if x["size"] in sizes and not args.quick else "-")
            line += f" {100 * x['val_nrmse']:.3f} | {paper} | {x['train_seconds']:.0f} |"
        if do_time:
            line += f" {1e3 * x['forward_median_s']:.2f} | {1e3 * x['backward_median_s']:.2f} |"
        table.append(line)
    print("\n".join(table))

    figures: dict = {}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "table.md").write_text("\n".join(table) + "\n")
    full_grid = families == ("ren", "r2dn")
    smoke = "SMOKE RUN (--quick): " if args.quick else ""
    shapes = f"batch {s['batch']}, horizon {s['horizon']}, median of {repeats}"
    if do_time and full_grid:
        ratios = {}
        for name in backends:
            big = {f: _series(rows, name, f, "num_params")[0][-1] for f in families}
            for pas in ("forward", "backward"):
                ratios[f"{name}/{pas}"] = big["r2dn"][f"{pas}_median_s"] / big["ren"][f"{pas}_median_s"]
        figures["time_vs_params_slopes"] = plot_times(
            rows, backends, lambda x: x["num_params"], "number of parameters", smoke + shapes,
            args.out / "expressivity_timing.png")
        figures["r2dn_over_ren_at_largest"] = ratios
    if do_train:
        figures["val_nrmse_pct"] = {f"{x['backend']}/{x['model']}/{x['size']}": 100 * x["val_nrmse"]
                                    for x in rows}
        paper_sizes = {} if args.quick else {       # the paper's points at our parameter counts
            f: [x["num_params"] for x in rows if x["model"] == f and x["backend"] == backends[0]]
            for f in families if len(grid[f]) == len(PAPER_NRMSE_PCT[f])}
        plot_nrmse(rows, backends, s, paper_sizes, args.quick, args.out / "expressivity_nrmse.png")
    if (do_train or trained) and do_time and full_grid:
        source = (f"trained {s['epochs']} epochs" if do_train else
                  f"NRMSE from the {_trainers(trained)} training in {args.nrmse_from.name}")
        figures["time_vs_expressivity_slopes"] = plot_times(
            rows, backends, lambda x: 1.0 / x["val_nrmse"],
            "expressivity 1 / NRMSE (validation; unitless)",
            f"{smoke}{shapes}\n{source}",
            args.out / "expressivity_time_vs_expressivity.png")

    devs = []
    if args.quick:
        devs.append("SMOKE RUN (--quick): tiny grid and data, figures mean nothing: "
                    + ", ".join(f"{k} {v}" for k, v in QUICK.items()))
    if do_train and s["epochs"] != PAPER["epochs"]:
        devs.append(f"epochs: paper 1500, here {s['epochs']} (the learning rate still drops x0.1 "
                    f"after each third of them)")
    if do_train:
        devs.append("training and validation data from numpy.random.default_rng (seed, and 42 for "
                    "validation), not jax.random: same distributions, other draws; one seed, "
                    "the paper averages five")
    if trained:
        devs.append(f"NRMSE from the training run in {args.nrmse_from} (backends "
                    f"{_trainers(trained)}); both backends train the same "
                    "model on the same data from the same seed")
    if do_time:
        devs += ["times are CPU medians on this machine (the paper timed JAX on a GPU); torch "
                 "runs the time loop in Python, JAX under lax.scan inside jit",
                 "init 'random' as the authors' timing script; parameters from r2dn.init "
                 "(NumPy), inputs and states standard normal from numpy.random.default_rng(seed)"]
    figures.update(cpu_load_before=load_before, cpu_load_after=cpu_load())
    write_results(args.out, "benchmarks/expressivity.py", args,
                  {**s, "repeats": repeats, "backends": list(backends), "families": families,
                   "grid": grid, "parts": args.parts, "backend_info": infos,
                   "paper_nrmse_pct": PAPER_NRMSE_PCT}, devs, figures, extra={"table": rows})
    return figures


if __name__ == "__main__":
    main()
