"""The pieces of one recurrent step, shared by every recurrent family and backend.

Both families read ``v = C1 x + D12 u + bv``, update ``x+ = A x + B1 w + B2 u + bx`` and output
``y = C2 x + D21 w + D22 u + by``; they differ only in ``w = nonlinearity(v)`` (an equilibrium for
a REN, an LBDN for an R2DN). Input terms of a whole sequence are one product before the loop, and
outputs are one product after it (docs/math/performance.md#performance), so the loop body is two small products plus the
nonlinearity. Batch-first rows throughout: ``x (batch, nx)``, ``us (T, batch, nu)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from ._xp import Array, Namespace


def input_terms(e: Any, us: Array, *, xp: Namespace) -> tuple[Array, Array, Array]:
    """``(D12 u + bv, B2 u + bx, D22 u + by)`` for every u in ``us`` (..., nu), in one product."""
    nv, nx = e.C1.shape[0], e.A.shape[0]
    W = xp.concat([e.D12, e.B2, e.D22], axis=0)
    c = xp.concat([e.bv, e.bx, e.by], axis=0)
    z = us @ W.T + c
    return z[..., :nv], z[..., nv:nv + nx], z[..., nv + nx:]


class StepMatrices(NamedTuple):
    """The matrices of the loop body, transposed once per sequence for batch-first rows: in an
    eager framework each ``.T`` inside the body is operator calls at every step (three of the
    torch REN step's 36), in a traced one it is free either way."""

    C1T: Array
    AT: Array
    B1T: Array


def step_matrices(e: Any) -> StepMatrices:
    """:class:`StepMatrices` of a recurrent model's explicit parameters."""
    return StepMatrices(e.C1.T, e.A.T, e.B1.T)


#: ``affine(x, W, c) -> x @ W + c``: a framework's fused product-and-add (torch's ``addmm``, one
#: operator call instead of two in every step and every LBDN layer), given to :func:`cell`,
#: :func:`simulate_loop` and :func:`r2dn._spec.lbdn_apply`
Affine = Callable[[Array, Array, Array], Array]


def affine(x: Array, W: Array, c: Array) -> Array:
    """The default :data:`Affine`: ``x @ W + c``."""
    return x @ W + c


def cell(m: StepMatrices, nonlinearity: Callable[[Array], Array], x: Array, uv: Array,
         ux: Array, mad: Affine = affine) -> tuple[Array, Array]:
    """One state update from precomputed input terms: returns ``(x_next, w)``; ``mad`` computes
    the products (:data:`Affine`)."""
    w = nonlinearity(mad(x, m.C1T, uv))
    return mad(w, m.B1T, mad(x, m.AT, ux)), w


def outputs(e: Any, xs: Array, ws: Array, uy: Array) -> Array:
    """``y = C2 x + D21 w + (D22 u + by)`` for stacked states and neuron outputs."""
    return xs @ e.C2.T + ws @ e.D21.T + uy


def simulate_loop(e: Any, nonlinearity: Callable[[Array], Array], x0: Array, us: Array, *,
                  xp: Namespace, unstack: Callable[[Array], Any] | None = None,
                  mad: Affine = affine) -> tuple[Array, Array]:
    """A plain Python time loop over :func:`cell` (NumPy, array-API-strict and eager torch).

    Returns ``(x_T, ys)`` with ``ys (T, batch, ny)``. JAX runs the same cell under ``lax.scan``.
    A backend may pass ``unstack``, which splits an array along its first axis (torch passes
    ``torch.unbind``, which ``torch.func.vmap`` can batch; the array API's ``unstack`` goes
    through ``moveaxis``), and ``mad``, its :data:`Affine` for the step's products.
    """
    uv, ux, uy = input_terms(e, us, xp=xp)
    split = (lambda a: xp.unstack(a, axis=0)) if unstack is None else unstack
    m = step_matrices(e)
    x = x0
    xs, ws = [], []
    # unstack once: indexing uv[t] every step would make an autograd framework's backward write
    # each step's cotangent into a zero array of the whole sequence (quadratic in T)
    for uv_t, ux_t in zip(split(uv), split(ux)):
        xs.append(x)
        x, w = cell(m, nonlinearity, x, uv_t, ux_t, mad)
        ws.append(w)
    return x, outputs(e, xp.stack(xs, axis=0), xp.stack(ws, axis=0), uy)
