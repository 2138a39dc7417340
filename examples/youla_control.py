"""A Youla-parameterised controller with a contracting R2DN or REN as the Youla parameter Q.

The R2DN paper's control experiment (as the authors' examples/utils/youla.py). The plant
T(z) = 0.3 / (z^2 - 2 rho cos(phi) z + rho^2), rho = 0.8, phi = 0.2 pi, is stable, with the
disturbance d entering at its input: z = T (d + u). The base controller is observer-based with zero
feedback gain, which stabilises a stable plant: its observer is a copy of T driven by u, so the
innovation is y~ = T u - z = -T d. With the control u = clip(Q(y~), -5, 5) the closed loop is the
augmented system [z; y~] = [[T, T], [-T, 0]] [d; u] closed through Q (6 states, 3 copies of T).
Every contracting Q gives a stable closed loop, saturation included: y~ does not depend on u (the
(2, 2) block is 0), so the loop is the cascade d -> y~ -> Q -> clip -> T of stable systems. That is
also why the closed loop can be computed with one ``simulate`` call of Q over the whole innovation
sequence (a check in this script compares it with the step-by-step rollout).

Cost: mean over time and batch of |z|_1 + 1e-4 |u|^2 under piecewise-constant disturbances drawn
from U[-10, 10] and held 50 steps. Training (analytic policy gradients through the closed loop): 64
parallel rollouts of 800 steps from rest, cut into 4 segments of 200 (one Adam step per segment,
state carried), a fresh draw every epoch, 80 epochs, Adam 5e-3 x0.1 every 60 epochs, gradients
clipped elementwise at 10. Models: REN nx 10, nv 400; R2DN nx 10, nv 100, LBDN 4 x 140; tanh,
long-memory init, polar.

    python examples/youla_control.py --backend jax --model r2dn    # the paper's run
    python examples/youla_control.py --quick                       # a smoke run (CI)
"""

from __future__ import annotations

import math
import time

from r2dn_examples.threads import one_blas_thread

one_blas_thread()     # before NumPy loads a BLAS library (r2dn_examples.threads says why)

import numpy as np  # noqa: E402

from r2dn_examples.adapters import make_backend, num_params
from r2dn_examples.cli import EpochProgress, base_parser, log_epoch, run_settings
from r2dn_examples.plots import integer_ticks, plt_figure, save_figure
from r2dn_examples.results import deviations, write_results
from r2dn_examples.schedules import step_decay

RHO, PHI, GAIN = 0.8, 0.2 * math.pi, 0.3
MAX_U = 5.0
U_WEIGHT = 1e-4
DIST_AMP, DIST_HOLD = 10.0, 50
#: horizon of the run-time check that the one-call closed loop equals the step-by-step one
CHECK_STEPS = 60
PAPER = {
    "nx": 10, "nv": {"ren": 400, "r2dn": 100}, "hidden": [140, 140, 140, 140], "activation": "tanh",
    "init": "long_memory", "polar": True, "epochs": 80, "lr": 5e-3, "lr_decay_every": 60,
    "lr_decay": 0.1, "lr_floor": 1e-6, "clip": 10.0, "batches": 64, "test_batches": 64,
    "max_steps": 800, "rollout": 200,
}
QUICK = {"nx": 4, "nv": {"ren": 12, "r2dn": 8}, "hidden": [16], "epochs": 2, "batches": 8,
         "test_batches": 8, "max_steps": 100, "rollout": 50}


def plant() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(A, B, C) of T(z) in controllable canonical form (scipy.signal.tf2ss's)."""
    a1, a2 = -2 * RHO * math.cos(PHI), RHO**2
    return np.array([[-a1, -a2], [1.0, 0.0]]), np.array([[1.0], [0.0]]), np.array([[0.0, GAIN]])


def augmented() -> dict[str, np.ndarray]:
    """[z; y~] = [[T, T], [-T, 0]] [d; u] as one state-space system (the authors' ExampleSystem).

    State [x_d; x_u; x_o]: x_d and x_u are T driven by d and by u (z = C x_d + C x_u), x_o is the
    copy of T driven by d that gives the innovation y~ = -C x_o.
    """
    A, B, C = plant()
    Z, zb, zc = np.zeros_like(A), np.zeros_like(B), np.zeros_like(C)
    return {"A": np.block([[A, Z, Z], [Z, A, Z], [Z, Z, A]]),
            "Bd": np.block([[B], [zb], [B]]), "Bu": np.block([[zb], [B], [zb]]),
            "C": np.block([[C, C, zc], [zc, zc, -C]])}


def disturbances(rng: np.random.Generator, steps: int, batch: int) -> np.ndarray:
    """Piecewise-constant d ~ U[-10, 10] held 50 steps: (steps, batch, 1)."""
    pieces = rng.uniform(-DIST_AMP, DIST_AMP, size=(math.ceil(steps / DIST_HOLD), batch, 1))
    return np.repeat(pieces, DIST_HOLD, axis=0)[:steps]


class LTIResponse:
    """The response of ``x+ = A x + B u``, ``y = C x`` over a fixed horizon as two matrix products.

    For horizon T, ``y_t = C A^t x_0 + sum_{k<t} C A^(t-1-k) B u_k`` and
    ``x_T = A^T x_0 + sum_k A^(T-1-k) B u_k``: the matrices are built once in NumPy (float64) and
    applied with ``@`` in any namespace, so there is no time loop to trace or to differentiate
    through (the plant has 6 states; T is at most 800).
    """

    def __init__(self, A: np.ndarray, B: np.ndarray, C: np.ndarray, T: int, to) -> None:
        # `to` turns a NumPy array into the framework's
        nx, nu, ny = A.shape[0], B.shape[1], C.shape[0]
        powers = [np.eye(nx)]
        for _ in range(T):
            powers.append(A @ powers[-1])
        O = np.stack([C @ powers[t] for t in range(T)])                       # (T, ny, nx)
        G = np.zeros((T, ny, T, nu))
        for t in range(T):
            for k in range(t):
                G[t, :, k, :] = C @ powers[t - 1 - k] @ B
        R = np.concatenate([powers[T - 1 - k] @ B for k in range(T)], axis=1)  # (nx, T nu)
        self.T, self.nu, self.ny, self.to = T, nu, ny, to
        f32 = lambda a: np.ascontiguousarray(a, dtype=np.float32)  # noqa: E731
        # NumPy float32, turned into the framework's arrays at each call (zero-copy in torch; a
        # constant of the trace in JAX), so no framework array is cached across traces
        self.O, self.G = f32(O.reshape(T * ny, nx)), f32(G.reshape(T * ny, T * nu))
        self.AT, self.R = f32(powers[T]), f32(R)

    def __call__(self, x0, us, *, xp):
        """``x0 (batch, nx)``, ``us (T, batch, nu)`` -> ``(x_T (batch, nx), ys (T, batch, ny))``."""
        T, batch = us.shape[0], us.shape[1]
        u2 = xp.reshape(xp.permute_dims(us, (0, 2, 1)), (T * self.nu, batch))   # (T nu, batch)
        O, G, AT, R = (self.to(a) for a in (self.O, self.G, self.AT, self.R))
        y2 = O @ x0.T + G @ u2                                                  # (T ny, batch)
        ys = xp.permute_dims(xp.reshape(y2, (T, self.ny, batch)), (0, 2, 1))
        xT = x0 @ AT.T + (R @ u2).T
        return xT, ys


def clip_u(u, xp):
    return xp.clip(u, -MAX_U, MAX_U)


class ClosedLoop:
    """The closed loop as functions of (Q, states, disturbances), written once for any backend."""

    def __init__(self, bk) -> None:
        self.sim = bk.sim
        self.sys = augmented()
        self.xp, self.to = bk.xp, bk.asarray
        self.nx = self.sys["A"].shape[0]
        self.A, self.Bd, self.Bu, self.C = (self.to(self.sys[k]) for k in ("A", "Bd", "Bu", "C"))
        self._responses: dict[int, LTIResponse] = {}

    def plant(self, x, d, u):
        """The augmented plant over a horizon: inputs [d, u] (T, batch, 2) -> (x_T, [z, y~])."""
        T = d.shape[0]
        if T not in self._responses:
            B = np.concatenate([self.sys["Bd"], self.sys["Bu"]], axis=1)
            self._responses[T] = LTIResponse(self.sys["A"], B, self.sys["C"], T, self.to)
        return self._responses[T](x, self.xp.concat([d, u], axis=-1), xp=self.xp)

    def rollout(self, Q, x, q, d):
        """Closed loop over d (T, batch, 1) from plant state x (batch, 6) and Q state q.

        Returns ((x_T, q_T), z (T, batch, 1), u (T, batch, 1)). y~ depends on d alone (the (2, 2)
        block is 0), so the innovation sequence is computed first, Q runs over it in one
        ``simulate`` call, and the plant then takes d and the clipped u.
        """
        _, outs = self.plant(x, d, 0 * d)
        q_T, u = self.sim(Q, q, outs[..., 1:2])
        u = clip_u(u, self.xp)
        x_T, outs = self.plant(x, d, u)
        return (x_T, q_T), outs[..., 0:1], u

    def stepwise(self, Q, x, q, d):
        """The same closed loop one step at a time through ``Q(q, y~)`` (the reference)."""
        xp = self.xp
        zs, us = [], []
        for t in range(d.shape[0]):
            out = x @ self.C.T
            q, u = Q(q, out[:, 1:2])
            u = clip_u(u, xp)
            zs.append(out[:, 0:1])
            us.append(u)
            x = x @ self.A.T + d[t, ...] @ self.Bd.T + u @ self.Bu.T
        return (x, q), xp.stack(zs, axis=0), xp.stack(us, axis=0)


def cost(z, u, xp):
    """mean(|z|_1 + 1e-4 |u|^2) over time and batch."""
    return xp.mean(xp.sum(xp.abs(z), axis=-1) + U_WEIGHT * xp.sum(u**2, axis=-1))


def build_model(rn, name: str, s: dict, seed: int):
    kw = dict(activation=s["activation"], init=s["init"], polar=s["polar"], seed=seed,
              dtype="float32")
    if name == "ren":
        return rn.ContractingREN(1, s["nx"], s["nv"], 1, **kw)
    return rn.ContractingR2DN(1, s["nx"], s["nv"], 1, hidden=tuple(s["hidden"]), **kw)


def main(argv: list[str] | None = None) -> dict:
    p = base_parser(__doc__.splitlines()[0], default_epochs=PAPER["epochs"], default_out="youla_control")
    args = p.parse_args(argv)
    s, paper_s = run_settings(args, PAPER, QUICK)
    segments = s["max_steps"] // s["rollout"]
    if segments * s["rollout"] != s["max_steps"]:
        raise SystemExit("youla_control: max_steps must be a multiple of rollout")

    bk = make_backend(args.backend, args.threads, args.unroll, args.model)
    xp = bk.xp
    model = build_model(bk.rn, args.model, s, args.seed)
    loop = ClosedLoop(bk)

    def loss_fn(Q, x, q, d):
        states, z, u = loop.rollout(Q, x, q, d)
        return cost(z, u, xp), states

    rng_train, rng_test = np.random.default_rng([args.seed, 0]), np.random.default_rng([args.seed, 1])
    d_test = bk.asarray(disturbances(rng_test, s["max_steps"], s["test_batches"]))
    x_test = bk.asarray(np.zeros((s["test_batches"], loop.nx)))
    test_cost_fn = bk.evaluator(lambda Q, x, q, d: cost(*loop.rollout(Q, x, q, d)[1:], xp))

    def test_cost(Q):
        return float(test_cost_fn(Q, x_test, Q.init_state(s["test_batches"]), d_test))

    # the one-call closed loop equals the step-by-step one (checked on a short horizon)
    d_chk = bk.asarray(disturbances(np.random.default_rng(123), CHECK_STEPS, 2))
    x_chk = bk.asarray(np.zeros((2, loop.nx)))
    fast = bk.evaluator(loop.rollout)(model, x_chk, model.init_state(2), d_chk)
    slow = bk.eager(loop.stepwise)(model, x_chk, model.init_state(2), d_chk)
    rollout_check = max(float(np.max(np.abs(bk.numpy(a) - bk.numpy(b))))
                        for a, b in zip((fast[1], fast[2]), (slow[1], slow[2])))

    trainer = bk.trainer(model, loss_fn, s["clip"])
    lr_at = step_decay(s["lr"], s["lr_decay_every"], s["lr_decay"], s["lr_floor"])
    print(f"{args.backend} {type(model).__name__}: {num_params(model)} parameters; closed-loop "
          f"one-call vs step-by-step max difference {rollout_check:.2e}")
    train_costs, test_costs, epoch_times = [], [], []
    open_loop = _open_loop_cost(bk, loop, x_test, d_test)
    bar = EpochProgress(s["epochs"], args)
    for epoch in bar:
        t0 = time.perf_counter()
        test_costs.append(test_cost(trainer.model))
        d = disturbances(rng_train, s["max_steps"], s["batches"])
        x = bk.asarray(np.zeros((s["batches"], loop.nx)))
        q = trainer.model.init_state(s["batches"])
        seg = []
        for k in range(segments):
            dk = bk.asarray(d[k * s["rollout"]:(k + 1) * s["rollout"]])
            loss, (x, q) = trainer.step(lr_at(epoch), x, q, dk)
            seg.append(loss)
        train_costs.append(float(np.mean(seg)))
        epoch_times.append(time.perf_counter() - t0)
        bar.set_postfix(train=f"{train_costs[-1]:.3f}", test=f"{test_costs[-1]:.3f}")
        log_epoch(args, epoch, s["epochs"], train_cost=train_costs[-1], test_cost=test_costs[-1],
                  seconds=epoch_times[-1])
    model = trainer.model
    test_costs.append(test_cost(model))

    # the step test of the paper's figure: steps of amplitude 0, 4/3, ..., 8, 50 on and 50 off
    amps = np.linspace(0, 8, 7)
    d_step = np.concatenate([a * np.concatenate([np.ones((50, 1, 1)), np.zeros((50, 1, 1))])
                             for a in amps])
    (_, _), z_cl, u_cl = _eval_rollout(bk, loop, model, d_step)
    z_ol = _open_loop_outputs(bk, loop, d_step)
    figures = {
        "test_cost_initial": test_costs[0], "test_cost_final": test_costs[-1],
        "test_cost_open_loop_u0": open_loop,
        "test_cost_per_epoch": test_costs, "train_cost_per_epoch": train_costs,
        "max_abs_u_on_step_test": float(np.max(np.abs(u_cl))),
        "step_test_cost_closed": float(np.mean(np.abs(z_cl)) + U_WEIGHT * np.mean(u_cl**2)),
        "step_test_cost_open": float(np.mean(np.abs(z_ol))),
        "closed_loop_one_call_vs_stepwise_max_abs_diff": rollout_check,
        "seconds_per_epoch": epoch_times,
        "seconds_per_epoch_after_first": (float(np.median(epoch_times[1:]))
                                          if len(epoch_times) > 1 else None),
        "num_params": num_params(model),
    }

    args.out.mkdir(parents=True, exist_ok=True)
    fig, axes = plt_figure(2, 1, figsize=(7, 5), sharex=True)
    axes[0].plot(d_step[:, 0, 0], "k:", lw=1, label="disturbance")
    axes[0].plot(z_ol[:, 0, 0], label="open loop (u = 0)")
    axes[0].plot(z_cl[:, 0, 0], label=f"Youla-{args.model.upper()}")
    axes[0].set(ylabel="output z", title=f"Step disturbance, test: Youla-{args.model.upper()} "
                f"({args.backend}) against open loop")
    axes[0].legend(loc="best", fontsize=8)
    axes[1].plot(u_cl[:, 0, 0], color="C2")
    axes[1].axhline(-MAX_U, color="k", ls="--", lw=0.8)
    axes[1].axhline(MAX_U, color="k", ls="--", lw=0.8)
    axes[1].set(xlabel="time step", ylabel="control u (saturation dashed)")
    save_figure(fig, args.out / "step_response.png", args)
    fig, ax = plt_figure(figsize=(5, 3.5))
    ax.plot(np.arange(len(test_costs)), test_costs, marker=".", label="Youla")
    ax.axhline(open_loop, color="k", ls=":", label="open loop")
    ax.set(xlabel="epoch (0: before training)", ylabel="test cost", yscale="log",
           title=f"Youla-{args.model.upper()} ({args.backend}) test cost")
    integer_ticks(ax)
    ax.legend(loc="best")
    save_figure(fig, args.out / "test_cost.png", args)

    notes = [
        "random draws (model, disturbances) from numpy (r2dn.init; default_rng([seed, 0]) "
        "training, default_rng([seed, 1]) test) instead of jax.random/Flax",
        "the closed loop is computed as one simulate call of Q over the innovation sequence, "
        "which equals the authors' step-by-step scan because y~ does not depend on u (checked "
        "every run: closed_loop_one_call_vs_stepwise_max_abs_diff)",
        "the cost's |u|^2 omits the float32 eps that the authors' l2_norm adds inside its sqrt",
    ]
    if s["epochs"] < PAPER["epochs"]:
        notes.append(f"reduced run: {s['epochs']} of the paper's {PAPER['epochs']} epochs")
    devs = deviations(paper_s, s, notes)
    settings = {**s, "model": args.model, "backend": args.backend, "rho": RHO, "phi": PHI,
                "plant_gain": GAIN, "max_u": MAX_U, "u_weight": U_WEIGHT,
                "disturbance_amplitude": DIST_AMP, "disturbance_hold": DIST_HOLD,
                "model_config": model.config.to_dict()}
    write_results(args.out, "examples/youla_control.py", args, settings, devs, figures, bk)
    return figures


def _eval_rollout(bk, loop, Q, d_np):
    d = bk.asarray(d_np)
    x = bk.asarray(np.zeros((d_np.shape[1], loop.nx)))
    states, z, u = bk.evaluator(loop.rollout)(Q, x, Q.init_state(d_np.shape[1]), d)
    return states, bk.numpy(z), bk.numpy(u)


def _open_loop_outputs(bk, loop, d_np):
    d = bk.asarray(d_np)
    x = bk.asarray(np.zeros((d_np.shape[1], loop.nx)))
    _, outs = loop.plant(x, d, 0 * d)
    return bk.numpy(outs[..., 0:1])


def _open_loop_cost(bk, loop, x, d):
    _, outs = loop.plant(x, d, 0 * d)
    return float(bk.xp.mean(bk.xp.abs(outs[..., 0])))


if __name__ == "__main__":
    main()
