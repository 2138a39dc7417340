"""System identification of the F-16 ground vibration test benchmark with a contracting R2DN or REN.

The R2DN paper's experiment (Barbara, Wang & Manchester, arXiv 2504.01250, F-16 section): train on
the multisine records of Levels 1, 3, 5, 7 as 4 parallel sequences, in windows of 256 steps with the
state carried from one window to the next (reset to zero each epoch), and validate by free-run
simulation from a zero state on Levels 2, 4, 6, scoring after a 100-step washout. Every column is
standardised with the mean and standard deviation of Level 4. Loss per window: the mean over time
of the squared error summed over the 4 sequences and 3 accelerations. Adam 1e-3, x0.1 every 20
epochs, gradients clipped elementwise at 10, 70 epochs. Models: contracting REN (nx 75, nv 150,
relu) and contracting R2DN (nx 75, nv 75, LBDN 3 x 87, relu), long-memory init, polar.

Data: the seven ``F16Data_FullMSine_Level*.csv.gz`` files (Noël & Schoukens 2017), read from
``--data`` (default ``$R2DN_DATA/f16``, else ``../shared/data/f16`` next to the repository).

    python examples/f16_sysid.py --backend jax --model r2dn            # the paper's run (70 epochs)
    python examples/f16_sysid.py --backend jax --model ren --epochs 3  # a reduced run
    python examples/f16_sysid.py --quick                               # a smoke run (CI)
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from r2dn_examples.threads import one_blas_thread

one_blas_thread()     # before NumPy loads a BLAS library (r2dn_examples.threads says why)

import numpy as np  # noqa: E402

from r2dn_examples.adapters import make_backend, num_params
from r2dn_examples.cli import EpochProgress, base_parser, log_epoch, progress, run_settings
from r2dn_examples.plots import integer_ticks, plt_figure, save_figure
from r2dn_examples.results import deviations, nrmse, write_results
from r2dn_examples.schedules import step_decay
from r2dn_examples.timing import Stopwatch

LEVELS = range(1, 8)
TRAIN_LEVELS, VAL_LEVELS, NORM_LEVEL = (1, 3, 5, 7), (2, 4, 6), 4
N_INPUTS, N_OUTPUTS = 2, 3
#: the paper's settings (the authors' examples/train_sysid.py)
PAPER = {
    "nx": 75, "nv": {"ren": 150, "r2dn": 75}, "hidden": [87, 87, 87], "activation": "relu",
    "init": "long_memory", "polar": True, "window": 256, "epochs": 70, "lr": 1e-3,
    "lr_decay_every": 20, "lr_decay": 0.1, "lr_floor": 1e-6, "clip": 10.0, "washout": 100,
    "train_samples": 73728, "val_samples": 73728,
}
QUICK = {"nx": 8, "nv": {"ren": 12, "r2dn": 8}, "hidden": [16], "window": 128, "epochs": 2,
         "train_samples": 1024, "val_samples": 600}


def file_name(level: int) -> str:
    return f"F16Data_FullMSine_Level{level}{'_Validation' if level in VAL_LEVELS else ''}.csv.gz"


def default_data_dir() -> Path:
    root = os.environ.get("R2DN_DATA")
    return Path(root) / "f16" if root else Path(__file__).resolve().parents[2] / "shared" / "data" / "f16"


def load_f16(folder: Path) -> dict[str, np.ndarray]:
    """The standardised records: ``u_train (T, 4, 2)``, ``y_train (T, 4, 3)``, ``u_val (T, 3, 2)``,
    ``y_val (T, 3, 3)``, time-major (levels 1, 3, 5, 7 / 2, 4, 6 along the batch axis).

    Raises SystemExit with a clear message when a file is missing.
    """
    missing = [file_name(k) for k in LEVELS if not (folder / file_name(k)).is_file()]
    if missing:
        raise SystemExit(
            f"f16_sysid: the F-16 data is not in {folder} (missing {', '.join(missing)}).\n"
            "Pass --data DIR (a folder with the F16Data_FullMSine_Level*.csv.gz files), or set "
            "R2DN_DATA to a folder holding f16/. The benchmark: J.P. Noël and M. Schoukens, "
            "'F-16 aircraft benchmark based on ground vibration test data', 2017 "
            "(https://data.4tu.nl, F16GVT_Files.zip, BenchmarkData/).")
    raw = {k: np.loadtxt(folder / file_name(k), delimiter=",", skiprows=1, usecols=range(5))
           for k in LEVELS}
    mu, sigma = raw[NORM_LEVEL].mean(axis=0), raw[NORM_LEVEL].std(axis=0)
    std = {k: (v - mu) / sigma for k, v in raw.items()}
    stack = lambda levels, cols: np.stack([std[k][:, cols] for k in levels], axis=1)  # noqa: E731
    return {"u_train": stack(TRAIN_LEVELS, slice(0, 2)), "y_train": stack(TRAIN_LEVELS, slice(2, 5)),
            "u_val": stack(VAL_LEVELS, slice(0, 2)), "y_val": stack(VAL_LEVELS, slice(2, 5)),
            "mean": mu, "std": sigma}


def build_model(rn, name: str, s: dict, seed: int):
    if name == "ren":
        return rn.ContractingREN(N_INPUTS, s["nx"], s["nv"], N_OUTPUTS, activation=s["activation"],
                                 init=s["init"], polar=s["polar"], seed=seed, dtype="float32")
    return rn.ContractingR2DN(N_INPUTS, s["nx"], s["nv"], N_OUTPUTS, hidden=tuple(s["hidden"]),
                              activation=s["activation"], init=s["init"], polar=s["polar"],
                              seed=seed, dtype="float32")


def window_loss(sim):
    """The loss of one window: the mean over time of the squared error summed over sequences and
    outputs (the paper's); aux: the final state, carried into the next window. ``sim`` is
    ``Backend.sim`` (``model.simulate``)."""
    def loss(model, x0, us, ys):
        xT, y_pred = sim(model, x0, us)
        return ((y_pred - ys) ** 2).sum() / us.shape[0], xT
    return loss


def main(argv: list[str] | None = None) -> dict:
    p = base_parser(__doc__.splitlines()[0], default_epochs=PAPER["epochs"], default_out="f16_sysid")
    p.add_argument("--data", type=Path, default=None,
                   help="folder with the F16Data_*.csv.gz files (default: $R2DN_DATA/f16 or "
                        "../shared/data/f16)")
    p.add_argument("--windows", type=int, default=None,
                   help="train on only the first N windows of each epoch (a reduced run)")
    args = p.parse_args(argv)

    folder = args.data if args.data is not None else default_data_dir()
    with Stopwatch() as sw_data:
        data = load_f16(folder)
    s, paper_s = run_settings(args, PAPER, QUICK)
    s["train_samples"] = min(s["train_samples"], data["u_train"].shape[0])
    s["val_samples"] = min(s["val_samples"], data["u_val"].shape[0])
    bk = make_backend(args.backend, args.threads, args.unroll, args.model)
    model = build_model(bk.rn, args.model, s, args.seed)

    # 4 parallel sequences, cut in windows of `window` steps (numpy.array_split, as the paper)
    T = s["train_samples"]
    n_windows = T // s["window"]
    u_tr = np.array_split(data["u_train"][:T], n_windows)
    y_tr = np.array_split(data["y_train"][:T], n_windows)
    if args.windows is not None:
        u_tr, y_tr = u_tr[:args.windows], y_tr[:args.windows]
    s["windows_per_epoch"] = len(u_tr)
    windows = [(bk.asarray(u), bk.asarray(y)) for u, y in zip(u_tr, y_tr)]
    lr_at = step_decay(s["lr"], s["lr_decay_every"], s["lr_decay"], s["lr_floor"])
    trainer = bk.trainer(model, window_loss(bk.sim), s["clip"])
    batch = len(TRAIN_LEVELS)
    print(f"{args.backend} {type(model).__name__}: {num_params(model)} parameters; "
          f"{len(windows)} windows x {s['window']} steps x {batch} sequences per epoch")

    losses, epoch_times = [], []
    bar = EpochProgress(s["epochs"], args)
    for epoch in bar:
        t0 = time.perf_counter()
        x = trainer.model.init_state(batch)
        lr = lr_at(epoch)
        total = 0.0
        for u, y in progress(windows, args, desc=f"epoch {epoch + 1}", leave=False):
            loss, x = trainer.step(lr, x, u, y)
            total += loss
        losses.append(total / len(windows))
        epoch_times.append(time.perf_counter() - t0)
        bar.set_postfix(loss=f"{losses[-1]:.4f}", lr=f"{lr:.1e}")
        log_epoch(args, epoch, s["epochs"], loss=losses[-1], lr=lr, seconds=epoch_times[-1])
    model = trainer.model

    # free-run validation from a zero state on Levels 2, 4, 6; score after the washout
    Tv, w = s["val_samples"], s["washout"]
    u_val, y_val = data["u_val"][:Tv], data["y_val"][:Tv]
    with Stopwatch() as sw_val:
        _, y_pred = bk.simulate(model, model.init_state(len(VAL_LEVELS)), bk.asarray(u_val))
        y_pred = bk.numpy(bk.sync(y_pred))
    total_nrmse = nrmse(y_val[w:], y_pred[w:])
    per_level = {f"level{k}": 100 * nrmse(y_val[w:, i], y_pred[w:, i])
                 for i, k in enumerate(VAL_LEVELS)}
    figures = {
        "val_nrmse_percent": 100 * total_nrmse,
        "val_mse": float(np.mean((y_val[w:] - y_pred[w:]) ** 2)),
        "val_nrmse_percent_by_level": per_level,
        "final_train_loss": losses[-1] if losses else None,
        "train_loss_per_epoch": losses,
        "seconds_per_epoch": epoch_times,
        "seconds_per_epoch_after_first": (float(np.median(epoch_times[1:]))
                                          if len(epoch_times) > 1 else None),
        "validation_seconds": sw_val.seconds,
        "num_params": num_params(model),
    }
    if not np.all(np.isfinite(y_pred)):
        figures["warning"] = "non-finite validation predictions"

    args.out.mkdir(parents=True, exist_ok=True)
    if losses:
        fig, ax = plt_figure(figsize=(5, 3.5))
        ax.plot(np.arange(1, len(losses) + 1), losses, marker="o")
        ax.set(xlabel="epoch", ylabel="training loss (mean squared error)", yscale="log",
               title=f"F-16 training, {args.model.upper()} ({args.backend})")
        integer_ticks(ax)
        save_figure(fig, args.out / "train_loss.png", args)
    n = min(3000, Tv - w)
    fig, axes = plt_figure(2, 1, figsize=(7, 5), sharex=True)
    t = np.arange(w, w + n)
    axes[0].plot(t, y_val[w:w + n, 0, 2], label="measured", lw=0.8)
    axes[0].plot(t, y_pred[w:w + n, 0, 2], label="simulated", lw=0.8)
    axes[0].set(ylabel="acceleration 3 (std.)", title=f"Level {VAL_LEVELS[0]}, free-run simulation")
    axes[0].legend(loc="upper right")
    axes[1].plot(t, y_val[w:w + n, 0, 2] - y_pred[w:w + n, 0, 2], lw=0.8, color="C3")
    axes[1].set(xlabel="time step", ylabel="error (std.)")
    save_figure(fig, args.out / "validation.png", args)

    notes = [
        "random draws: parameters from numpy.random.default_rng(seed) (r2dn.init), not the "
        "authors' JAX/Flax initialisers; the long-memory construction is the same",
        "the per-window loss is the mean over time of the squared error summed over sequences and "
        "outputs, as the authors' code (their l2_norm adds float32 eps inside the square root: "
        "a constant we omit)",
    ]
    if args.windows is not None:
        notes.append(f"only the first {len(windows)} windows of each epoch are used (--windows)")
    if s["epochs"] < PAPER["epochs"]:
        notes.append(f"reduced run: {s['epochs']} of the paper's {PAPER['epochs']} epochs; the learning-"
                     "rate schedule is the paper's, so steps after the last epoch run are never reached")
    devs = deviations(paper_s, s, notes)
    settings = {**s, "model": args.model, "backend": args.backend,
                "train_levels": TRAIN_LEVELS, "val_levels": VAL_LEVELS, "norm_level": NORM_LEVEL,
                "data_dir": str(folder), "data_load_seconds": sw_data.seconds,
                "model_config": model.config.to_dict()}
    write_results(args.out, "examples/f16_sysid.py", args, settings, devs, figures, bk)
    return figures


if __name__ == "__main__":
    main()
