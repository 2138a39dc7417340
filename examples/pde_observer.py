"""A learned observer for a reaction-diffusion PDE with a contracting R2DN or REN.

The R2DN paper's observer experiment (after the REN paper, Revay, Wang & Manchester 2023):
the state xi(z, t) of xi_t = xi_zz + 1/2 xi (1 - xi)(xi - 1/2) on z in [0, 10] (51 grid points,
dz = 0.2) with boundary values xi(0) = xi(10) = b(t), a random walk b+ = clip(b + 0.05 N(0, 1), 0, 1).
Each sample advances 4 explicit Euler steps of dt = 0.1 dz^2. Measured: y = [b, xi at the middle
point]. The observer is a contracting model with identity output, nx = 51, input y (nu = 2): it is
trained one step ahead, x_{t+1} = f(x_t, y_t) with the true states as x_t, on 10^5 samples cut into
200 shuffled batches of 500. Contraction makes it forget a wrong initial state: the test runs it from
zero against a plant started at xi = 1, b = 0.5, for 2000 steps. Adam 2e-3, x0.1 when the epoch loss
has not improved for 10 epochs (down to 1e-6), 200 epochs. Models: REN nv 200, R2DN nv 50 with an
LBDN 4 x 96, relu, long-memory init, polar.

    python examples/pde_observer.py --backend jax --model r2dn             # the paper's run
    python examples/pde_observer.py --backend jax --model r2dn --epochs 20 # a reduced run
    python examples/pde_observer.py --quick                                # a smoke run (CI)
"""

from __future__ import annotations

import time

from r2dn_examples.threads import one_blas_thread

one_blas_thread()     # before NumPy loads a BLAS library (r2dn_examples.threads says why)

import numpy as np  # noqa: E402

from r2dn_examples import datasets
from r2dn_examples.adapters import make_backend, num_params
from r2dn_examples.cli import EpochProgress, base_parser, log_epoch, run_settings
from r2dn_examples.plots import integer_ticks, plt_figure, save_figure
from r2dn_examples.results import deviations, nrmse, write_results
from r2dn_examples.schedules import ReduceOnPlateau
from r2dn_examples.timing import Stopwatch

#: the PDE is the REN paper's observer example (Julia ren_obsv_pde.jl; the authors' observer.py),
#: written once in r2dn_examples.datasets.
PAPER = {
    "nx": 51, "nv": {"ren": 200, "r2dn": 50}, "hidden": [96, 96, 96, 96], "activation": "relu",
    "init": "long_memory", "polar": True, "samples": 100_000, "batches": 200, "epochs": 200,
    "lr": 2e-3, "min_lr": 1e-6, "lr_patience": 10, "test_steps": 2000,
}
QUICK = {"nv": {"ren": 16, "r2dn": 8}, "hidden": [16, 16], "samples": 2000, "batches": 4,
         "epochs": 2, "test_steps": 200}


def simulate_pde(steps: int, rng: np.random.Generator, xi0: float = 0.0,
                 b0: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """States ``X (steps, 51)`` and inputs ``b (steps, 1)`` from ``xi = xi0``, ``b = b0``."""
    xi, b = datasets.reaction_diffusion(steps, rng, xi0=xi0, b0=b0)
    return xi[:, 0, :], b[:, :1]


def measure(X: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``y = [b, xi at the middle grid point]`` (..., 2)."""
    mid = X.shape[-1] // 2
    return np.concatenate([B, X[..., mid:mid + 1]], axis=-1)


def build_model(rn, name: str, s: dict, seed: int):
    kw = dict(activation=s["activation"], init=s["init"], polar=s["polar"], identity_output=True,
              seed=seed, dtype="float32")
    if name == "ren":
        return rn.ContractingREN(2, s["nx"], s["nv"], s["nx"], **kw)
    return rn.ContractingR2DN(2, s["nx"], s["nv"], s["nx"], hidden=tuple(s["hidden"]), **kw)


def one_step_loss(model, x_next, x, y):
    """Mean over the batch of the squared one-step prediction error summed over the grid."""
    x_pred, _ = model(x, y)
    return ((x_pred - x_next) ** 2).sum() / x.shape[0], None


def main(argv: list[str] | None = None) -> dict:
    p = base_parser(__doc__.splitlines()[0], default_epochs=PAPER["epochs"], default_out="pde_observer")
    args = p.parse_args(argv)
    s, paper_s = run_settings(args, PAPER, QUICK)

    # training data: one long trajectory from rest, cut into shuffled batches (as the paper)
    rng_train, rng_test, rng_shuffle = (np.random.default_rng([args.seed, k]) for k in range(3))
    with Stopwatch() as sw_data:
        X, B = simulate_pde(s["samples"], rng_train)
    y = measure(X, B)
    chunks = list(zip(np.array_split(X[1:], s["batches"]), np.array_split(X[:-1], s["batches"]),
                      np.array_split(y[:-1], s["batches"])))
    chunks = [chunks[i] for i in rng_shuffle.permutation(len(chunks))]

    bk = make_backend(args.backend, args.threads, args.unroll, args.model)
    model = build_model(bk.rn, args.model, s, args.seed)
    data = [tuple(bk.asarray(a) for a in c) for c in chunks]
    trainer = bk.trainer(model, one_step_loss, None)
    plateau = ReduceOnPlateau(0.1, s["lr_patience"], s["min_lr"] / s["lr"])
    print(f"{args.backend} {type(model).__name__}: {num_params(model)} parameters; "
          f"{len(data)} batches of ~{chunks[0][0].shape[0]} samples per epoch "
          f"(data simulated in {sw_data.seconds:.1f} s)")

    losses, stds, lrs, epoch_times = [], [], [], []
    bar = EpochProgress(s["epochs"], args)
    for _ in bar:
        t0 = time.perf_counter()
        lr = s["lr"] * plateau.scale
        batch_losses = [trainer.step(lr, *batch)[0] for batch in data]
        losses.append(float(np.mean(batch_losses)))
        stds.append(float(np.std(batch_losses)))
        lrs.append(lr)
        epoch_times.append(time.perf_counter() - t0)
        plateau.update(losses[-1])
        bar.set_postfix(loss=f"{losses[-1]:.3e}", lr=f"{lr:.1e}")
        log_epoch(args, len(losses) - 1, s["epochs"], loss=losses[-1], lr=lr,
                  seconds=epoch_times[-1])
    model = trainer.model

    # test: the plant starts at xi = 1, b = 0.5; the observer at zero (a wrong initial state)
    X_test, B_test = simulate_pde(s["test_steps"] + 1, rng_test, xi0=1.0, b0=0.5)
    y_test = measure(X_test, B_test)
    x0 = model.init_state(1)
    _, xhat = bk.simulate(model, x0, bk.asarray(y_test[:, None, :]))
    xhat = bk.numpy(bk.sync(xhat))[:, 0, :]
    err = np.abs(X_test - xhat)
    settle = int(np.argmax(np.max(err, axis=1) < 0.05)) if np.any(np.max(err, axis=1) < 0.05) else None
    figures = {
        "test_nrmse_percent": 100 * nrmse(X_test, xhat),
        "test_mse": float(np.mean((X_test - xhat) ** 2)),
        "test_nrmse_percent_after_100_steps": 100 * nrmse(X_test[100:], xhat[100:]),
        "first_step_with_max_abs_error_below_0.05": settle,
        "final_train_loss": losses[-1] if losses else None,
        "train_loss_per_epoch": losses, "train_loss_std_per_epoch": stds, "lr_per_epoch": lrs,
        "seconds_per_epoch": epoch_times,
        "seconds_per_epoch_after_first": (float(np.median(epoch_times[1:]))
                                          if len(epoch_times) > 1 else None),
        "num_params": num_params(model),
    }

    args.out.mkdir(parents=True, exist_ok=True)
    fig, axes = plt_figure(3, 1, figsize=(7.5, 6.4), sharex=True)
    panels = ((X_test, "true state", "xi"), (xhat, "observer estimate", "xi_hat"),
              (err, "error", "|xi - xi_hat|"))
    for ax, (data_, title, label) in zip(axes, panels):
        # each panel its own colour scale: the error is far smaller than the state
        im = ax.imshow(data_.T, aspect="auto", cmap="inferno", origin="lower")
        ax.set_ylabel("grid point z")
        ax.set_title(title, fontsize=9)
        fig.colorbar(im, ax=ax, pad=0.01).set_label(f"{label} (dimensionless)")
    axes[-1].set_xlabel(f"time step (test run from a wrong initial state, {len(X_test)} steps)")
    fig.suptitle(f"Reaction-diffusion observer, {args.model.upper()} ({args.backend}): "
                 f"test NRMSE {figures['test_nrmse_percent']:.2f} %", fontsize=10)
    save_figure(fig, args.out / "heatmap.png", args)
    fig, ax = plt_figure(figsize=(6, 3.5))
    ax.plot(X_test[:, 12], label="true")
    ax.plot(xhat[:, 12], "--", label="observer")
    ax.set(xlabel="time step", ylabel="xi at grid point 12 (dimensionless)",
           title=f"Observer at one grid point, {args.model.upper()} ({args.backend})")
    ax.legend(loc="best")
    save_figure(fig, args.out / "trajectory.png", args)
    if losses:
        fig, ax = plt_figure(figsize=(5, 3.5))
        ax.plot(np.arange(1, len(losses) + 1), losses, marker=".")
        ax.set(xlabel="epoch", ylabel="one-step training loss (MSE)", yscale="log",
               title=f"PDE observer training, {args.model.upper()} ({args.backend})")
        integer_ticks(ax)
        save_figure(fig, args.out / "train_loss.png", args)

    notes = [
        "random draws from numpy.random.default_rng([seed, k]) (k = 0 training walk, 1 test walk, "
        "2 batch order) instead of jax.random; the authors' test walk reuses the training walk's "
        "key, ours is independent",
        "measurement [b, xi at the middle point] (nu = 2) as the authors' JAX code; the REN "
        "paper's Julia version feeds [b; b; xi_25] (nu = 3)",
    ]
    if s["epochs"] < PAPER["epochs"]:
        notes.append(f"reduced run: {s['epochs']} of the paper's {PAPER['epochs']} epochs")
    devs = deviations(paper_s, s, notes)
    settings = {**s, "model": args.model, "backend": args.backend, "grid": datasets.PDE_POINTS,
                "euler_steps_per_sample": datasets.PDE_EULER_STEPS,
                "dt_over_dz2": datasets.PDE_DT / datasets.PDE_DZ**2,
                "walk_std": datasets.PDE_BOUNDARY_STEP,
                "data_seconds": sw_data.seconds, "model_config": model.config.to_dict()}
    write_results(args.out, "examples/pde_observer.py", args, settings, devs, figures, bk)
    return figures


if __name__ == "__main__":
    main()
