"""Fit an R2DN to a simulated nonlinear oscillator with the PyTorch backend.

The data come from a forced Duffing oscillator (a mass on a hardening spring with damping),

    p'' = -delta p' - alpha p - beta p^3 + u,      y = p + noise,

integrated with RK4 in NumPy and sampled every ``DT`` seconds; the input ``u`` is low-pass-filtered
noise. A contracting (default) or Lipschitz R2DN is trained on random sub-sequences by Adam
(truncated back-propagation through time, first ``WASHOUT`` steps of each window excluded from the
loss because the model starts from a zero state), then simulated from a zero state over the whole
training and validation records. Every R2DN along the way is contracting by construction, so the
free-run simulation of the fitted model cannot diverge; the script certifies the final one.

Writes ``loss.png`` (training loss and validation NRMSE) and ``fit.png`` (a stretch of the
validation record) to ``--out``, prints the final train / validation NRMSE
(NRMSE = ||y - y_hat|| / ||y - mean(y)||) and returns them from :func:`main`.

Usage::

    python examples/torch_train_r2dn.py --out runs/r2dn --epochs 30 --seed 0
    python examples/torch_train_r2dn.py --quick          # a few seconds, for tests
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from tqdm import tqdm

import r2dn
import r2dn.torch as rn

#: Duffing oscillator p'' = -DELTA p' - ALPHA p - BETA p^3 + GAIN_U u, sampled every DT seconds.
DELTA, ALPHA, BETA, GAIN_U, DT = 0.3, 1.0, 1.0, 1.0, 0.25
#: RK4 sub-steps per sample.
SUBSTEPS = 4
#: input: white noise through a first-order low-pass filter with this pole, scaled to INPUT_STD.
INPUT_POLE, INPUT_STD = 0.9, 1.0
#: output noise standard deviation (in units of the clean output's standard deviation).
NOISE_STD = 0.01
#: first samples of each training window left out of the loss (the model starts from x = 0).
WASHOUT = 16


def duffing_data(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Simulate the oscillator: returns ``u (n,)`` and ``y (n,)`` (float64 NumPy)."""
    e = rng.normal(size=n)
    u = np.empty(n)
    acc = 0.0
    for t in range(n):
        acc = INPUT_POLE * acc + math.sqrt(1 - INPUT_POLE**2) * e[t]
        u[t] = INPUT_STD * acc

    def f(s: np.ndarray, ut: float) -> np.ndarray:
        p, v = s
        return np.array([v, -DELTA * v - ALPHA * p - BETA * p**3 + GAIN_U * ut])

    s, h = np.zeros(2), DT / SUBSTEPS
    y = np.empty(n)
    for t in range(n):
        y[t] = s[0]
        for _ in range(SUBSTEPS):
            k1 = f(s, u[t])
            k2 = f(s + h / 2 * k1, u[t])
            k3 = f(s + h / 2 * k2, u[t])
            k4 = f(s + h * k3, u[t])
            s = s + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    y = y + NOISE_STD * y.std() * rng.normal(size=n)
    return u, y


def nrmse(y_hat: np.ndarray, y: np.ndarray) -> float:
    """``||y - y_hat|| / ||y - mean(y)||`` over the whole record."""
    return float(np.linalg.norm(y - y_hat) / np.linalg.norm(y - y.mean()))


def free_run(model: torch.nn.Module, u: np.ndarray) -> np.ndarray:
    """Simulate ``model`` from a zero state over the normalised record ``u (n,)``: ``y (n,)``."""
    with torch.no_grad():
        us = torch.as_tensor(u, dtype=torch.float32)[:, None, None]
        _, ys = model.simulate(model.init_state(1), us)
    return ys[:, 0, 0].numpy().astype(np.float64)


def windows(u: np.ndarray, y: np.ndarray, length: int, batch: int,
            gen: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch`` random windows of ``length`` samples, time-major: ``(length, batch, 1)`` each."""
    starts = gen.integers(0, len(u) - length, size=batch)
    idx = starts[None, :] + np.arange(length)[:, None]
    as_t = lambda a: torch.as_tensor(a[idx][..., None], dtype=torch.float32)  # noqa: E731
    return as_t(u), as_t(y)


def plot(path_loss: Path, path_fit: Path, losses: list[float], val_epochs: list[int],
         val_nrmse: list[float], y_val: np.ndarray, y_hat: np.ndarray) -> None:
    """Write the loss curve and a stretch of the validation fit (Agg canvas, no global state;
    fixed margins, as tight_layout costs seconds on a small CPU)."""
    fig = Figure(figsize=(8, 3.2))
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.subplots(1, 2)
    ax1.semilogy(np.arange(1, len(losses) + 1), losses, lw=0.8)
    ax1.set(xlabel="training step", ylabel="window MSE (normalised)", title="training loss")
    ax2.plot(val_epochs, val_nrmse, marker="o", ms=3)
    ax2.set(xlabel="epoch", ylabel="NRMSE (fraction of the output's std.)",
            title="validation free-run NRMSE")
    ax2.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.subplots_adjust(left=0.09, right=0.98, bottom=0.16, top=0.9, wspace=0.3)
    fig.savefig(path_loss, dpi=100)
    fig = Figure(figsize=(8, 3))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    n = min(400, len(y_val))
    ax.plot(y_val[:n], label="system", lw=1.2)
    ax.plot(y_hat[:n], label="R2DN (free run)", lw=1.0, ls="--")
    ax.set(xlabel="sample", ylabel="y", title="validation record")
    ax.legend(loc="upper right")
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.16, top=0.9)
    fig.savefig(path_fit, dpi=100)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("runs/torch_train_r2dn"),
                   help="directory for loss.png and fit.png")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--steps-per-epoch", type=int, default=25)
    p.add_argument("--seed", type=int, default=0, help="seeds the data, the model and the batches")
    p.add_argument("--model", choices=("contracting", "lipschitz"), default="contracting")
    p.add_argument("--gamma", type=float, default=5.0, help="Lipschitz bound (--model lipschitz)")
    p.add_argument("--lr", type=float, default=2e-2)
    p.add_argument("--init", choices=("random", "long_memory"), default="random")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (the matrices are tiny: one thread is fastest)")
    p.add_argument("--no-progress", action="store_true", help="hide the tqdm bar")
    p.add_argument("--quick", action="store_true", help="a few seconds: tiny data and few steps")
    args = p.parse_args(argv)
    if args.epochs < 1 or args.steps_per_epoch < 1:
        p.error(f"--epochs and --steps-per-epoch must be >= 1; got {args.epochs}, "
                f"{args.steps_per_epoch}")
    return args


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Run the experiment; returns ``{"train_nrmse", "val_nrmse", "seconds"}``."""
    args = parse_args(argv)
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        return _run(args)
    finally:
        torch.set_num_threads(threads)


def _run(args: argparse.Namespace) -> dict[str, float]:
    start = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    n_train, n_val = (600, 300) if args.quick else (3000, 1000)
    epochs = 2 if args.quick else args.epochs
    steps = 4 if args.quick else args.steps_per_epoch
    window, batch = (48, 8) if args.quick else (64, 16)

    u_all, y_all = duffing_data(n_train + n_val, rng)
    u_mean, u_std = u_all[:n_train].mean(), u_all[:n_train].std()
    y_mean, y_std = y_all[:n_train].mean(), y_all[:n_train].std()
    u_n, y_n = (u_all - u_mean) / u_std, (y_all - y_mean) / y_std
    u_tr, y_tr, u_va, y_va = u_n[:n_train], y_n[:n_train], u_n[n_train:], y_n[n_train:]

    sizes = dict(nu=1, nx=8, nv=16, ny=1, hidden=(32,), seed=args.seed, init=args.init)
    model = (rn.ContractingR2DN(**sizes) if args.model == "contracting"
             else rn.LipschitzR2DN(**sizes, gamma=args.gamma))
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps,
                                                       eta_min=args.lr / 20)
    batches = np.random.default_rng(args.seed + 1)

    losses: list[float] = []
    val_epochs: list[int] = []
    val_nrmse: list[float] = []
    bar = tqdm(range(1, epochs + 1), desc=f"{args.model} R2DN", unit="epoch",
               disable=args.no_progress)
    for epoch in bar:
        for _ in range(steps):
            us, ys = windows(u_tr, y_tr, window, batch, batches)
            _, y_hat = model.simulate(model.init_state(batch), us)
            loss = (y_hat[WASHOUT:] - ys[WASHOUT:]).square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
        if epoch % max(1, epochs // 10) == 0 or epoch == epochs:
            val_epochs.append(epoch)
            val_nrmse.append(nrmse(free_run(model, u_va), y_va))
            bar.set_postfix(loss=f"{losses[-1]:.4f}", val_nrmse=f"{val_nrmse[-1]:.3f}")

    y_hat_tr, y_hat_va = free_run(model, u_tr), free_run(model, u_va)
    result = {"train_nrmse": nrmse(y_hat_tr, y_tr), "val_nrmse": nrmse(y_hat_va, y_va)}
    args.out.mkdir(parents=True, exist_ok=True)
    plot(args.out / "loss.png", args.out / "fit.png", losses, val_epochs, val_nrmse,
         y_va * y_std + y_mean, y_hat_va * y_std + y_mean)
    report = r2dn.certify(model)
    result["seconds"] = time.perf_counter() - start
    print(f"final train NRMSE: {result['train_nrmse']:.4f}")
    print(f"final validation NRMSE: {result['val_nrmse']:.4f}")
    print(f"certified: {report.certified} (contraction rate {report.rate:.6f}"
          + (f", gain {report.gamma:.4g}" if report.gamma is not None else "") + ")")
    print(f"plots: {args.out / 'loss.png'}, {args.out / 'fit.png'}  ({result['seconds']:.1f} s)")
    return result


if __name__ == "__main__":
    main()
