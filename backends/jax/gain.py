"""An adversarial lower bound on a model's incremental gain (docs/math/certificates.md#empirical).

The certificate bounds ``||y(u + du) - y(u)|| <= gamma ||du||`` for every input pair (and, for a
recurrent model, from equal initial states over any horizon). :func:`empirical_gain` searches for
the pair that comes closest by gradient ascent, in one ``jax.jit``: a ratio above the certified
``r2dn.certify(model).gamma`` falsifies the certificate, and a model whose explicit form was
broken must show one. Same arguments and meaning as ``r2dn.torch.empirical_gain``.
"""

from __future__ import annotations

import numbers
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

#: floor of ||du|| in the ratio, so a collapsing perturbation cannot divide by zero.
MIN_PERTURBATION_NORM = 1e-12


def _check_positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"empirical_gain: `{name}` must be a positive integer; "
                         f"got {name}={value!r}.")


def empirical_gain(model: Any, *, batch: int = 16, horizon: int = 20, steps: int = 200,
                   lr: float = 0.05, scale: float = 1.0, seed: int = 0,
                   compiler_options: dict[str, Any] | None = None) -> float:
    """The largest ratio ``||y(u + du) - y(u)|| / ||du||`` found by gradient ascent on input pairs.

    A lower bound on the model's incremental (Lipschitz) gain, to compare with the certified
    ``r2dn.certify(model).gamma`` (LBDN, SandwichLayer, Lipschitz and (Q, S, R) families; for
    contracting models no gain is certified, but the search still runs). The whole ascent is one
    ``jax.jit`` (a ``lax.scan`` over the steps), traced with the model as a constant, so any object
    with the model API works (e.g. a subclass with a modified ``explicit``).

    Parameters
    ----------
    model : r2dn.jax model
        A feed-forward model, ``u (batch, in_features)``, or a recurrent one, simulated from one
        initial state ``x0 (batch, nx)`` shared by both inputs ``us, us + dus (horizon, batch, nu)``
        (the initial state is optimised too). Norms are taken over time and channels.
    batch : int
        Number of independent pairs searched in parallel.
    horizon : int
        Time steps T of the recurrent simulations (ignored for feed-forward models).
    steps : int
        Adam ascent steps on the sum over pairs of ``log(ratio)`` (each pair ascends its own ratio).
    lr : float
        Adam step size (in input units).
    scale : float
        Standard deviation of the initial inputs, perturbations and states.
    seed : int
        Seeds the NumPy generator that draws the initial pairs.
    compiler_options : dict, optional
        XLA options for the ascent's ``jax.jit``, e.g. ``r2dn.jax.fast_compile_options()`` to
        compile several times faster on a CPU.

    Returns
    -------
    float
        The best ratio over all pairs and all steps (the model is not changed).

    Raises
    ------
    ValueError
        Invalid ``batch``, ``horizon``, ``steps``, ``lr`` or ``scale``.
    """
    import optax                       # a dependency of r2dn[jax], needed only here

    for name, value in (("batch", batch), ("horizon", horizon), ("steps", steps)):
        _check_positive_int(name, value)
    for name, value in (("lr", lr), ("scale", scale)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
            raise ValueError(f"empirical_gain: `{name}` must be a number > 0; "
                             f"got {name}={value!r}.")
    cfg = model.config
    recurrent = cfg.is_recurrent
    rng = np.random.default_rng(seed)

    def draw(*shape: int) -> jax.Array:
        return jnp.asarray((scale * rng.normal(size=shape)).astype(cfg.dtype))

    if recurrent:
        leaves = {"x0": draw(batch, cfg.nx), "u": draw(horizon, batch, cfg.nu),
                  "du": draw(horizon, batch, cfg.nu)}
        axes = (0, 2)

        def respond(x0, us):
            return model.simulate(x0, us)[1]
    else:
        leaves = {"x0": None, "u": draw(batch, cfg.in_features), "du": draw(batch, cfg.in_features)}
        axes = (1,)

        def respond(x0, u):
            return model(u)

    def log_ratios(p):                 # (batch,): each pair's log ||dy|| - log ||du||
        both = respond(None if p["x0"] is None else jnp.concat([p["x0"], p["x0"]], axis=0),
                       jnp.concat([p["u"] + p["du"], p["u"]], axis=-2))     # one batched call
        dy = both[..., :batch, :] - both[..., batch:, :]
        dy2 = jnp.sum(dy**2, axis=axes)
        du2 = jnp.maximum(jnp.sum(p["du"] ** 2, axis=axes), MIN_PERTURBATION_NORM**2)
        return (jnp.log(dy2 + jnp.finfo(dy2.dtype).tiny) - jnp.log(du2)) / 2

    opt = optax.adam(lr)

    def ascend(p):
        def step(carry, _):
            p, state, best = carry
            value, pullback = jax.vjp(log_ratios, p)
            (grad,) = pullback(jnp.ones_like(value))
            updates, state = opt.update(jax.tree.map(jnp.negative, grad), state, p)
            return (optax.apply_updates(p, updates), state, jnp.maximum(best, value)), None

        start = (p, opt.init(p), jnp.full((batch,), -jnp.inf, dtype=cfg.dtype))
        (p, _, best), _ = lax.scan(step, start, None, length=steps)
        return jnp.max(jnp.maximum(best, log_ratios(p)))

    best = jax.jit(ascend, compiler_options=compiler_options)(leaves)
    return float(np.exp(np.float64(best)))
