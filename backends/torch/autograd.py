"""The REN equilibrium as ``torch.autograd.Function``s with implicit-function derivatives.

Three Functions register the maps of :mod:`r2dn._spec.equilibrium` with autograd:

* :class:`Equilibrium`: ``w = sigma(D11 w + b)`` (forward substitution, run without recording a
  graph), differentiated by the implicit-function theorem: reverse mode by one back substitution
  (:func:`r2dn._spec.equilibrium_vjp`), forward mode by one forward substitution
  (:func:`r2dn._spec.equilibrium_jvp`). The nv forward steps are never differentiated one by one
  (docs/math/ren.md#equilibrium).
* :class:`LowerSolve` ``(I - J L)^-1 s`` and :class:`UpperSolve` ``(I - L^T J)^-1 c``: the linear
  substitutions those rules use, each the other's transpose. The backward passes are written with
  these Functions, so they are themselves differentiable: double backward (Hessian-vector
  products) and ``torch.func.jvp`` / ``jacfwd`` / ``hessian`` compose to any order.

All three set ``generate_vmap_rule``, so ``torch.func.vmap`` batches them. The substitution plan
(D11 cut into blocks, :func:`r2dn._spec.substitution_plan`) is built once per rollout and passed
along as extra tensor arguments that get no gradient: every derivative with respect to D11 comes
from the formulas, never through the plan. For a user-supplied activation, whose derivative the spec does not know, sigma'(v) comes
from ``torch.func.jvp`` of the activation (itself differentiable).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import array_api_compat.torch as xp_torch
import torch
import torch.autograd.forward_ad as forward_ad

from r2dn import _spec

from . import native
from .primitives import tri_solve, unstack


def activation_slope(act: _spec.Activation, D11: torch.Tensor, b: torch.Tensor,
                     w: torch.Tensor) -> torch.Tensor:
    """sigma'(v) at the equilibrium ``w = sigma(v)``, ``v = D11 w + b`` (batch, nv).

    Uses the spec's derivative of a named activation (a function of w alone, so v is not
    recomputed), or ``torch.func.jvp`` of ``act.fn`` at v for a user callable (which must act
    elementwise, as a slope-restricted activation does). Either is differentiable in w (and v).
    """
    if act.deriv is not None:
        return act.deriv(w)
    v = w @ _tril(D11).T + b
    return torch.func.jvp(act.fn, (v,), (torch.ones_like(v),))[1]


def _tril(x: torch.Tensor) -> torch.Tensor:
    return torch.tril(x, -1)


#: the plan's tensors get no gradient: every derivative in D11 comes from the formulas
_NO_PLAN_GRADS = (None,) * len(_spec.SubstitutionPlan._fields)


def _save_solve(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
    """``setup_context`` of both solves: D11, J and the output for either derivative, and the plan."""
    D11, J = inputs[:2]
    ctx.plan = _spec.SubstitutionPlan(*inputs[3:])
    ctx.save_for_backward(D11, J, output)
    ctx.save_for_forward(D11, J, output)


class LowerSolve(torch.autograd.Function):
    """``y = (I - diag(J) L)^-1 s`` per row, L = tril(D11, -1): :func:`r2dn._spec.lower_solve`.

    ``LowerSolve.apply(D11, J, s, *plan)``; D11 (nv, nv), J and s (batch, nv), ``plan`` the
    :class:`r2dn._spec.SubstitutionPlan` of D11 (its tensors get no gradient). Differentiable in D11, J and s to
    any order (its derivatives are :class:`LowerSolve` and :class:`UpperSolve` again).
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(D11, J, s, *plan):
        y = native.lower_solve(plan[0], J, s)
        if y is None:
            y = _spec.lower_solve(D11, J, s, xp=xp_torch, plan=_spec.SubstitutionPlan(*plan),
                                  tri_solve=tri_solve)
        return y

    setup_context = staticmethod(_save_solve)

    @staticmethod
    def backward(ctx: Any, gy: torch.Tensor):
        D11, J, y = ctx.saved_tensors
        z = _upper(D11, J, gy, ctx.plan)
        # y = s + J (L y): d y = (I - J L)^-1 (ds + dJ (L y) + J (dL y))
        return (_tril((J * z).T @ y), z * (y @ _tril(D11).T), z) + _NO_PLAN_GRADS

    @staticmethod
    def jvp(ctx: Any, dD11, dJ, ds, *_dplan):
        D11, J, y = ctx.saved_tensors
        rhs = _zero_if_none(ds, y)
        if dJ is not None:
            rhs = rhs + dJ * (y @ _tril(D11).T)
        if dD11 is not None:
            rhs = rhs + J * (y @ _tril(dD11).T)
        return _spec.lower_solve(D11, J, rhs, xp=xp_torch, plan=ctx.plan, tri_solve=tri_solve)


class UpperSolve(torch.autograd.Function):
    """``z = (I - L^T diag(J))^-1 c`` per row: :func:`r2dn._spec.upper_solve`, the transpose of
    :class:`LowerSolve` in its last argument. ``UpperSolve.apply(D11, J, c, *plan)``."""

    generate_vmap_rule = True

    @staticmethod
    def forward(D11, J, c, *plan):
        return _upper(D11, J, c, _spec.SubstitutionPlan(*plan))

    setup_context = staticmethod(_save_solve)

    @staticmethod
    def backward(ctx: Any, gz: torch.Tensor):
        D11, J, z = ctx.saved_tensors
        q = LowerSolve.apply(D11, J, gz, *ctx.plan)
        # z = c + L^T (J z): dz = (I - L^T J)^-1 (dc + dL^T (J z) + L^T (dJ z))
        return (_tril((J * z).T @ q), z * (q @ _tril(D11).T), q) + _NO_PLAN_GRADS

    @staticmethod
    def jvp(ctx: Any, dD11, dJ, dc, *_dplan):
        D11, J, z = ctx.saved_tensors
        rhs = _zero_if_none(dc, z)
        if dJ is not None:
            rhs = rhs + (dJ * z) @ _tril(D11)
        if dD11 is not None:
            rhs = rhs + (J * z) @ _tril(dD11)
        return _spec.upper_solve(D11, J, rhs, xp=xp_torch, plan=ctx.plan, tri_solve=tri_solve)


def _upper(D11: torch.Tensor, J: torch.Tensor, c: torch.Tensor,
           plan: _spec.SubstitutionPlan) -> torch.Tensor:
    """:class:`UpperSolve` when a backward pass records a graph (double backward), else the
    substitution itself (the same numbers, without a Function's bookkeeping per call): the C
    loop where it applies (:mod:`r2dn.torch.native`), else the spec's."""
    if torch.is_grad_enabled():
        return UpperSolve.apply(D11, J, c, *plan)
    z = native.upper_solve(plan.L, J, c)
    if z is None:
        z = _spec.upper_solve(D11, J, c, xp=xp_torch, plan=plan, tri_solve=tri_solve)
    return z


def _zero_if_none(t: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(like) if t is None else t


class Equilibrium(torch.autograd.Function):
    """``w = sigma(D11 w + b)`` for strictly lower-triangular ``D11``, with implicit derivatives.

    ``Equilibrium.apply(D11, b, act, U, *plan)`` returns the equilibrium ``w`` (batch, nv).

    Parameters
    ----------
    D11 : torch.Tensor (nv, nv)   strictly lower triangular (the upper part is never read)
    b : torch.Tensor (batch, nv)  the input terms ``C1 x + D12 u + bv``
    act : r2dn._spec.Activation   the slope-restricted activation
    U : torch.Tensor or None  :func:`r2dn.torch.native.transposed` of the plan's L, for the C
        loop (built once per rollout; None where the loop does not apply); no gradient
    *plan : torch.Tensor  the :class:`r2dn._spec.SubstitutionPlan` of D11 (no gradient flows
        through it; built once per rollout)

    Notes
    -----
    With v = D11 w + b and J = sigma'(v), reverse mode is ``g_b = J (I - L^T J)^-1 g_w``,
    ``g_D11 = tril(g_b^T w, -1)`` (:class:`UpperSolve`) and forward mode
    ``dw = (I - J L)^-1 J (dL w + db)`` (:func:`r2dn._spec.equilibrium_jvp`). The backward pass
    computes J from the differentiable output w, so it is differentiable again.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(D11, b, act, U, *plan):
        w = None if U is None else native.equilibrium(U, b, act)
        if w is None:
            w = _spec.equilibrium(D11, b, act, xp=xp_torch, plan=_spec.SubstitutionPlan(*plan),
                                  unstack=unstack)
        return w

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
        D11, b, act = inputs[:3]
        ctx.act, ctx.plan = act, _spec.SubstitutionPlan(*inputs[4:])
        ctx.save_for_backward(D11, b, output)
        ctx.save_for_forward(D11, b, output)

    @staticmethod
    def backward(ctx: Any, gw: torch.Tensor):
        D11, b, w = ctx.saved_tensors
        slope = activation_slope(ctx.act, D11, b, w)
        gb = slope * _upper(D11, slope, gw, ctx.plan)
        return (_tril(gb.T @ w), gb, None, None) + _NO_PLAN_GRADS

    @staticmethod
    def jvp(ctx: Any, dD11, db, _dact, _dU, *_dplan):
        D11, b, w = ctx.saved_tensors
        slope = activation_slope(ctx.act, D11, b, w)
        return _spec.equilibrium_jvp(D11, w, slope, _zero_if_none(dD11, D11),
                                     _zero_if_none(db, b), xp=xp_torch, plan=ctx.plan,
                                     tri_solve=tri_solve)


class BackwardOutsideAutocast(torch.autograd.Function):
    """The identity on a model's outputs, whose backward pass refuses to run under autocast.

    ``BackwardOutsideAutocast.apply(kinds, *outputs)``, ``kinds`` the autocast device types
    (``"cpu"``, ``"cuda"``, ...) to check. A model called under autocast computes in its own dtype,
    but a ``backward()`` inside the autocast region would run torch's backward formulas of the
    model's matrix products in bfloat16 or float16: gradients of a model that is not the one that
    ran (docs/guides/torch.md#mixed-precision-torchautocast). The backward pass raises instead of
    returning them. Forward mode and vmap pass through.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(kinds, *outputs):
        return tuple(o.view_as(o) for o in outputs)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: tuple) -> None:
        ctx.kinds = inputs[0]

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor):
        on = [k for k in ctx.kinds if torch.is_autocast_enabled(k)]
        if on:
            raise RuntimeError(
                f"r2dn: backward() ran inside torch.autocast({on[0]!r}), which would compute the "
                "model's gradients with reduced-precision matrix products (not the gradients of "
                "the model that ran). Leave the autocast region before calling backward(), as "
                "PyTorch recommends; the forward pass may stay inside it.")
        return (None, *grads)

    @staticmethod
    def jvp(ctx: Any, _dkinds, *tangents):
        return tangents


# ``Function.apply`` binds its arguments to ``forward``'s signature on every call; inspect.signature
# rebuilds it each time unless the function carries it (about 30 us per call, once per time step).
for _f in (LowerSolve, UpperSolve, Equilibrium, BackwardOutsideAutocast):
    _f.forward.__signature__ = inspect.signature(_f.forward)


def differentiated(*inputs: torch.Tensor) -> bool:
    """Whether an operation on ``inputs`` may be differentiated: autograd records it (grad mode
    on and an input requires grad), a forward-mode dual level is open, or a ``torch.func``
    transform is active."""
    return ((torch.is_grad_enabled() and any(t.requires_grad for t in inputs))
            or forward_ad._current_level >= 0 or torch._C._are_functorch_transforms_active())


def implicit_equilibrium(act: _spec.Activation) -> Callable[..., torch.Tensor]:
    """The REN models' equilibrium hook ``(D11 (nv, nv), b (batch, nv), plan=None) -> w``.

    Differentiable in ``D11`` and ``b`` by the implicit-function theorem (:class:`Equilibrium`).
    ``plan`` is :func:`r2dn._spec.substitution_plan` of D11, which a rollout builds once
    (:func:`r2dn._spec.nonlinearity`); it is built here when not given. The C loop's transposed
    triangle (:func:`r2dn.torch.native.transposed`) is built once per plan as well: the hook
    keeps the last plan's. Where nothing can differentiate the step (under ``torch.no_grad``, with
    no forward-mode level or ``torch.func`` transform), the C loop is called without
    :class:`Equilibrium`, whose ``apply`` costs more than the loop at small nv.
    """
    last: list = [None, None]            # [plan.L, its transpose]: one rollout's, per hook

    def equilibrium(D11: torch.Tensor, b: torch.Tensor,
                    plan: _spec.SubstitutionPlan | None = None) -> torch.Tensor:
        plan = _spec.substitution_plan(D11, xp=xp_torch) if plan is None else plan
        if last[0] is not plan.L:
            last[:] = plan.L, native.transposed(plan.L)
        w = None
        if last[1] is not None and not differentiated(D11, b):
            w = native.equilibrium(last[1], b, act)
        return Equilibrium.apply(D11, b, act, last[1], *plan) if w is None else w

    return equilibrium
