"""What the JAX backend runs, with no maths of its own: the time loop under ``lax.scan``, the REN
equilibrium's custom derivative, and the matmul precision of every model computation.

Every formula comes from :mod:`r2dn._spec`: the loop body is ``_spec.cell``, the input terms are
``_spec.input_terms`` (one product before the loop), the outputs ``_spec.outputs`` (one product
after it), the REN equilibrium is ``_spec.equilibrium`` and its derivative the linear system
``_spec.tangent_system``, solved by ``_spec.lower_solve`` and, transposed, ``_spec.upper_solve``. This module only registers them
with JAX and drives the spec's loops with ``lax.scan``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from r2dn import _spec

from . import native

#: Matmul precision of every model computation. The certificates of docs/math/certificates.md#dissipation-matrix assume
#: full-precision arithmetic; on GPUs JAX's default precision may run float32 matmuls in TF32 or
#: bf16 passes, which can break a certificate, so the models always trace with this precision.
MATMUL_PRECISION = "highest"


#: XLA compiler options that cut CPU compilation time about five-fold (unoptimised LLVM, no fusion
#: emitters), for ``jax.jit(f, compiler_options=...)``. On a small CPU, compiling a model's
#: gradient takes seconds; with these options R2DN rollouts run about as fast, but the REN's
#: nv-step equilibrium runs several times slower, so they are an opt-in (tests, short scripts).
CPU_FAST_COMPILE_OPTIONS = {"xla_backend_optimization_level": 0,
                            "xla_cpu_use_fusion_emitters": False}


def fast_compile_options(platform: str | None = None) -> dict[str, Any] | None:
    """:data:`CPU_FAST_COMPILE_OPTIONS` when ``platform`` (default: JAX's default backend) is the
    CPU, else ``None`` (the options are CPU-specific). Pass to ``jax.jit(compiler_options=...)``."""
    platform = jax.default_backend() if platform is None else platform
    return dict(CPU_FAST_COMPILE_OPTIONS) if platform == "cpu" else None


def full_precision() -> Any:
    """Context manager: matmuls traced inside it carry ``precision=HIGHEST``.

    It acts at trace time, so it works inside ``jax.jit``; it is entered around ``explicit()``,
    ``simulate()``, ``model(...)`` and the REN's custom backward pass, and leaves JAX's global
    configuration alone.
    """
    return jax.default_matmul_precision(MATMUL_PRECISION)


def scan_rollout(e: Any, nonlinearity: Callable[[Any], Any], x0: Any, us: Any, *,
                 unroll: int | bool = 1) -> tuple[Any, Any]:
    """Run a recurrent model over a sequence with ``lax.scan``.

    Parameters
    ----------
    e : RENExplicit or R2DNExplicit
        Explicit parameters, built once per call by the caller.
    nonlinearity : callable
        ``v (batch, nv) -> w (batch, nv)`` from ``_spec.nonlinearity``.
    x0 : Array (batch, nx)
    us : Array (T, batch, nu)
    unroll : int or bool
        Passed to ``lax.scan``: steps unrolled per loop iteration (``True``: all).

    Returns
    -------
    (x_T, ys) : (Array (batch, nx), Array (T, batch, ny))
    """
    uv, ux, uy = _spec.input_terms(e, us, xp=jnp)
    m = _spec.step_matrices(e)

    def step(x, terms):
        x_next, w = _spec.cell(m, nonlinearity, x, *terms)
        return x_next, (x, w)

    x_T, (xs, ws) = lax.scan(step, x0, (uv, ux), unroll=unroll)
    return x_T, _spec.outputs(e, xs, ws, uy)



def chunked_rollout(e: Any, nonlinearity: Callable[[Any], Any], x0: Any, us: Any, *,
                    unroll: int | bool = 1, chunk: int | None = None) -> tuple[Any, Any]:
    """:func:`scan_rollout` in chunks of ``chunk`` steps, each under ``jax.checkpoint``.

    An outer ``lax.scan`` runs the ``T // chunk`` full chunks, a last call the ``T % chunk``
    remaining steps. A gradient stores only the states between chunks (plus one chunk's steps
    while it is recomputed in the backward pass), instead of every step's residuals. The
    arithmetic of each step is :func:`scan_rollout`'s, so outputs and gradients are the same.
    ``chunk=None`` is :func:`scan_rollout` itself.
    """
    if chunk is None:
        return scan_rollout(e, nonlinearity, x0, us, unroll=unroll)

    @jax.checkpoint
    def run(x, u_chunk):
        return scan_rollout(e, nonlinearity, x, u_chunk, unroll=unroll)

    T = us.shape[0]
    n, rest = divmod(T, chunk)
    x, parts = x0, []
    if n:
        x, ys = lax.scan(run, x, us[:n * chunk].reshape(n, chunk, *us.shape[1:]))
        parts.append(ys.reshape(n * chunk, *ys.shape[2:]))
    if rest:
        x, ys = run(x, us[n * chunk:])
        parts.append(ys)
    return x, parts[0] if len(parts) == 1 else jnp.concat(parts, axis=0)


def _slope(act: _spec.Activation, D11: Any, b: Any, w: Any) -> Any:
    """sigma'(v) at the equilibrium ``w = sigma(v)``, ``v = D11 w + b``: the spec's derivative
    (a function of w) for a named activation, else ``jax.jvp`` of the user's callable at v."""
    if act.deriv is not None:
        return act.deriv(w)
    v = w @ jnp.tril(D11, -1).T + b
    return jax.jvp(act.fn, (v,), (jnp.ones_like(v),))[1]


#: up to this many blocks of neurons (nv <= 64) the loop over blocks is unrolled: a few blocks
#: trace quickly, and a rolled loop's per-iteration cost made small RENs slower
UNROLL_BLOCKS = 4


def lax_scan(step: Callable[[Any, tuple], Any], carry: Any, xs: tuple, reverse: bool = False) -> Any:
    """:data:`r2dn._spec.equilibrium.Scan` as ``lax.scan``: beyond :data:`UNROLL_BLOCKS` blocks the
    spec's loop over blocks of neurons traces one block step, whatever nv is (and transposes to a
    reversed scan)."""
    n = xs[0].shape[0]
    return lax.scan(lambda c, x: (step(c, x), None), carry, xs, reverse=reverse,
                    unroll=n if n <= UNROLL_BLOCKS else 1)[0]


@functools.lru_cache(maxsize=None)
def equilibrium_layer(activation: str | Callable[[Any], Any]) -> Callable[..., Any]:
    """The REN equilibrium ``(D11, b, plan=None) -> w`` with ``w = sigma(D11 w + b)``, as a
    ``jax.custom_jvp``.

    The forward pass is ``_spec.equilibrium`` with its loop over blocks of neurons under
    ``lax.scan``, or on the CPU the same substitution as one custom call into a C loop
    (:mod:`r2dn.jax.native`). The tangent rule is the implicit-function theorem: ``dw = (I - J L)^-1 J
    (dL w + db)`` (``_spec.tangent_system``), solved by ``lax.custom_linear_solve`` with the
    spec's forward substitution (``_spec.lower_solve``) and, for its transpose, the back
    substitution (``_spec.upper_solve``). JAX transposes the tangent for reverse mode by calling
    the back substitution itself, not by transposing the forward substitution's scan (which
    took about 1.7 times as long at nv 200), so ``jax.grad``, ``jax.jvp``,
    ``jax.jacfwd`` and ``jax.hessian`` all work, and nothing differentiates the nv forward steps
    one by one. sigma' comes from the spec for the named activations and from ``jax.jvp`` for a
    user callable (which must act elementwise).

    Parameters
    ----------
    activation : str or callable
        ``config.activation`` (hashable; one layer is built per activation and cached).

    Returns
    -------
    callable
        ``layer(D11 (nv, nv), b (batch, nv), plan=None) -> w (batch, nv)``; D11 strictly lower
        triangular, ``plan = _spec.substitution_plan(D11)`` (a rollout builds it once; built here
        when not given). The tangents of ``plan`` are ignored: the rule takes every derivative in
        D11 from D11's tangent.
    """
    act = _spec.activation(activation, xp=jnp)

    @jax.custom_jvp
    def ren_equilibrium(D11, b, plan):
        with full_precision():
            return native.equilibrium(D11, b, act, lambda D11, b: _spec.equilibrium(
                D11, b, act, xp=jnp, plan=plan, scan=lax_scan))

    @ren_equilibrium.defjvp
    def ren_equilibrium_jvp(primals, tangents):
        D11, b, plan = primals
        dD11, db, _ = tangents
        w = ren_equilibrium(D11, b, plan)
        with full_precision():           # traced when differentiated, maybe after the call
            slope = _slope(act, D11, b, w)
            matvec, rhs = _spec.tangent_system(D11, w, slope, dD11, db, xp=jnp)
            dw = lax.custom_linear_solve(      # (matvec, rhs, solve, transpose solve)
                matvec, rhs,
                lambda _, r: _spec.lower_solve(D11, slope, r, xp=jnp, plan=plan, scan=lax_scan),
                lambda _, c: _spec.upper_solve(D11, slope, c, xp=jnp, plan=plan, scan=lax_scan))
        return w, dw

    def equilibrium(D11, b, plan=None):
        plan = _spec.substitution_plan(D11, xp=jnp) if plan is None else plan
        return ren_equilibrium(D11, b, plan)

    return equilibrium
