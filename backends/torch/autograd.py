"""The REN equilibrium as a ``torch.autograd.Function`` with an implicit-function gradient.

The forward pass is :func:`r2dn._spec.equilibrium` (nv steps of forward substitution, run without
recording a graph); the backward pass is :func:`r2dn._spec.equilibrium_vjp` (one triangular
back-substitution). This module only registers the pair with autograd, so the nv forward steps
are never differentiated one by one (DESIGN §3.2). For a user-supplied activation, whose derivative
the spec does not know, sigma'(v) comes from autograd on the activation alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import array_api_compat.torch as xp_torch
import torch
from torch.autograd.function import once_differentiable

from r2dn import _spec


def activation_slope(act: _spec.Activation, v: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``sigma'(v)`` elementwise, ``v``, ``w = sigma(v)`` of shape (batch, nv) -> (batch, nv).

    Uses the spec's derivative of a named activation, or autograd on ``act.fn`` for a user
    callable (which must act elementwise, as a slope-restricted activation does).
    """
    if act.deriv is not None:
        return act.deriv(v, w)
    with torch.enable_grad():
        vv = v.detach().requires_grad_(True)
        out = act.fn(vv)
        (slope,) = torch.autograd.grad(out, vv, torch.ones_like(out))
    return slope


class Equilibrium(torch.autograd.Function):
    """``w = sigma(D11 w + b)`` for strictly lower-triangular ``D11``, with an implicit gradient.

    ``Equilibrium.apply(D11, b, act)`` returns ``(w, v)``: the equilibrium ``w`` (batch, nv) and the
    pre-activations ``v = D11 w + b`` that the forward substitution visited (not differentiable).

    Parameters
    ----------
    D11 : torch.Tensor (nv, nv)   strictly lower triangular (the upper part is never read)
    b : torch.Tensor (batch, nv)  the input terms ``C1 x + D12 u + bv``
    act : r2dn._spec.Activation   the slope-restricted activation

    Notes
    -----
    The backward pass is :func:`r2dn._spec.equilibrium_vjp` with ``sigma'(v)`` from
    :func:`activation_slope`; it is once differentiable (double backward raises), which is what
    first-order training needs.
    """

    @staticmethod
    def forward(D11: torch.Tensor, b: torch.Tensor, act: _spec.Activation):
        visited: list[torch.Tensor] = []

        def recording(vi: torch.Tensor) -> torch.Tensor:
            visited.append(vi)
            return act.fn(vi)

        w = _spec.equilibrium(D11, b, _spec.Activation(recording, act.deriv), xp=xp_torch)
        return w, torch.cat(visited, dim=1)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: tuple) -> None:
        D11, _, act = inputs
        w, v = output
        ctx.act = act
        ctx.mark_non_differentiable(v)
        ctx.save_for_backward(D11, v, w)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, gw: torch.Tensor, _gv: torch.Tensor):
        D11, v, w = ctx.saved_tensors
        slope = activation_slope(ctx.act, v, w)
        gD11, gb = _spec.equilibrium_vjp(D11, w, slope, gw, xp=xp_torch)
        return (gD11 if ctx.needs_input_grad[0] else None,
                gb if ctx.needs_input_grad[1] else None, None)


def implicit_equilibrium(
        act: _spec.Activation) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The REN models' equilibrium hook ``(D11 (nv, nv), b (batch, nv)) -> w (batch, nv)``.

    Differentiable in ``D11`` and ``b`` by the implicit-function theorem (:class:`Equilibrium`).
    """

    def equilibrium(D11: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return Equilibrium.apply(D11, b, act)[0]

    return equilibrium
