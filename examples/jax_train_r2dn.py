"""Fit a contracting R2DN to a simulated nonlinear system with JAX and optax.

The data come from a forced Duffing oscillator (a cubic spring with damping), integrated with
RK4 in NumPy: input u(t) is a random piecewise-constant force, output y(t) the position. An
``r2dn.jax.ContractingR2DN`` is trained by Adam on the simulation error from the zero state; it is
contracting for every value of its parameters, so the certificate still holds after training
(checked at the end with ``r2dn.certify``). Writes ``loss.png`` (training and validation loss) and
``fit.png`` (a validation trajectory) to ``--out``.

Run::

    python examples/jax_train_r2dn.py --out results/jax_train_r2dn    # under a minute on 2 CPUs
    python examples/jax_train_r2dn.py --quick --out /tmp/r2dn_quick   # a few seconds
"""

from __future__ import annotations

import argparse
import functools
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
import optax
from tqdm import tqdm

import r2dn
import r2dn.jax as rn

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the Agg backend)

#: Duffing oscillator x'' = -STIFFNESS x - CUBIC x^3 - DAMPING x' + u, sampled every DT.
STIFFNESS, CUBIC, DAMPING, DT = 1.0, 0.5, 0.3, 0.2
#: inputs hold a value N(0, INPUT_STD^2) for HOLD_MIN..HOLD_MAX samples.
INPUT_STD, HOLD_MIN, HOLD_MAX = 1.0, 5, 20
#: measurement noise on the training outputs.
NOISE_STD = 0.01


def duffing_data(rng: np.random.Generator, n_seq: int,
                 horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Simulate the oscillator from rest: ``us, ys`` of shape (horizon, n_seq, 1), float32."""
    us = np.zeros((horizon, n_seq))
    for i in range(n_seq):
        t = 0
        while t < horizon:
            hold = rng.integers(HOLD_MIN, HOLD_MAX + 1)
            us[t:t + hold, i] = INPUT_STD * rng.normal()
            t += hold

    def field(s, u):
        pos, vel = s
        return np.stack([vel, -STIFFNESS * pos - CUBIC * pos**3 - DAMPING * vel + u])

    s = np.zeros((2, n_seq))
    ys = np.zeros((horizon, n_seq))
    for t in range(horizon):
        ys[t] = s[0]
        k1 = field(s, us[t])
        k2 = field(s + DT / 2 * k1, us[t])
        k3 = field(s + DT / 2 * k2, us[t])
        k4 = field(s + DT * k3, us[t])
        s = s + DT / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    ys = ys + NOISE_STD * rng.normal(size=ys.shape)
    return us[..., None].astype(np.float32), ys[..., None].astype(np.float32)


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Train, plot, certify; returns the first and last losses and the run time in seconds."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=150, help="training epochs (default 150)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data and the model")
    parser.add_argument("--quick", action="store_true",
                        help="a few epochs on little data (seconds)")
    parser.add_argument("--out", type=Path, default=Path("results/jax_train_r2dn"),
                        help="folder for loss.png and fit.png")
    parser.add_argument("--fast-compile", action=argparse.BooleanOptionalAction, default=True,
                        help="on a CPU, compile with r2dn.jax.fast_compile_options() (default: on; "
                             "compilation dominates short CPU runs, and R2DN steps run about as "
                             "fast with them)")
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error(f"--epochs must be a positive integer; got {args.epochs}.")
    start = time.perf_counter()
    n_train, n_val, horizon, batch_size, epochs = 64, 16, 100, 16, args.epochs
    nx, nv, hidden = 8, 16, (32,)
    if args.quick:
        n_train, n_val, horizon, epochs = 16, 4, 30, min(args.epochs, 3)
        nx, nv, hidden = 4, 4, (8,)

    rng = np.random.default_rng(args.seed)
    us_train, ys_train = duffing_data(rng, n_train, horizon)
    us_val, ys_val = duffing_data(rng, n_val, horizon)
    model = rn.ContractingR2DN(1, nx, nv, 1, hidden, activation="tanh", seed=args.seed,
                               dtype="float32")
    optimiser = optax.adam(optax.exponential_decay(1e-2, epochs * (n_train // batch_size), 0.1))
    state = optimiser.init(model)

    def loss_fn(m, us, ys):
        _, pred = m.simulate(m.init_state(us.shape[1]), us)
        return jnp.mean((pred - ys) ** 2)

    options = rn.fast_compile_options() if args.fast_compile else None

    @functools.partial(jax.jit, compiler_options=options)
    def train_step(m, state, us, ys):
        loss, grads = jax.value_and_grad(loss_fn)(m, us, ys)
        updates, state = optimiser.update(grads, state, m)
        return optax.apply_updates(m, updates), state, loss

    predict = jax.jit(lambda m, us: m.simulate(m.init_state(us.shape[1]), us)[1],
                      compiler_options=options)
    us_val_j = jnp.asarray(us_val)
    history = {"train": [], "val": []}
    bar = tqdm(range(epochs), desc="training R2DN", unit="epoch")
    for _ in bar:
        order = rng.permutation(n_train)
        losses = []
        for k in range(0, n_train - batch_size + 1, batch_size):
            idx = order[k:k + batch_size]
            model, state, loss = train_step(model, state, jnp.asarray(us_train[:, idx]),
                                            jnp.asarray(ys_train[:, idx]))
            losses.append(float(loss))
        history["train"].append(float(np.mean(losses)))
        history["val"].append(float(np.mean((np.asarray(predict(model, us_val_j)) - ys_val) ** 2)))
        bar.set_postfix(train=f"{history['train'][-1]:.4f}", val=f"{history['val'][-1]:.4f}")

    args.out.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4))
    epochs_axis = range(1, len(history["train"]) + 1)
    ax.semilogy(epochs_axis, history["train"], label="training")
    ax.semilogy(epochs_axis, history["val"], label="validation")
    ax.set(xlabel="epoch", ylabel="mean squared simulation error",
           title="ContractingR2DN training (JAX)")
    ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out / "loss.png", dpi=120)
    plt.close(fig)

    pred = predict(model, us_val_j)
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.plot(ys_val[:, 0, 0], label="Duffing oscillator")
    ax.plot(np.asarray(pred[:, 0, 0]), "--", label="R2DN")
    ax.set(xlabel="time step", ylabel="position", title="validation trajectory")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out / "fit.png", dpi=120)
    plt.close(fig)

    report = r2dn.certify(model)
    elapsed = time.perf_counter() - start
    print(f"validation MSE {history['val'][-1]:.4g} (output variance {float(np.var(ys_val)):.4g}); "
          f"certified contracting: {report.certified} (rate {report.rate:.6f}); "
          f"{elapsed:.1f} s; plots in {args.out}")
    return {"first_train": history["train"][0], "last_train": history["train"][-1],
            "first_val": history["val"][0], "last_val": history["val"][-1],
            "certified": float(report.certified), "seconds": elapsed}


if __name__ == "__main__":
    main()
