"""Torch's time loop: the spec's rollout, with torch's own splitting, a compiled cell and chunks.

No maths here: every step is :func:`r2dn._spec.cell`, every sequence :func:`r2dn._spec.simulate_loop`.
This module chooses how torch runs them:

* ``torch.unbind`` splits the input terms into steps (``torch.func.vmap`` has a batching rule for
  it, not for the ``moveaxis`` behind the array API's ``unstack``);
* under ``torch.compile`` the loop stays in Python and only the cell is compiled, once for every
  sequence length (compiling the loop would unroll T steps and recompile for each new T);
* ``chunk=K`` wraps each K-step piece in ``torch.utils.checkpoint`` (non-reentrant), so autograd
  keeps one state per chunk plus one chunk's activations and recomputes the chunk backwards.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import array_api_compat.torch as xp_torch
import torch
from torch.utils.checkpoint import checkpoint

from r2dn import _spec

_COMPILED: dict[str, Callable[..., Any]] = {}


def compiled_cell(**options: Any) -> Callable[..., Any]:
    """:func:`r2dn._spec.cell` under ``torch.compile(**options)``, one wrapper per options (dynamo
    caches its graphs per input shape and ``requires_grad``, never per sequence length)."""
    key = repr(sorted(options.items()))
    if key not in _COMPILED:
        _COMPILED[key] = torch.compile(_spec.cell, **options)
    return _COMPILED[key]


@torch.compiler.disable
def rollout(e: Any, nonlinearity: Callable[[torch.Tensor], torch.Tensor], x0: torch.Tensor,
            us: torch.Tensor, *, chunk: int | None = None,
            step: Callable[..., Any] = _spec.cell) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x_T (batch, nx), ys (T, batch, ny))`` of the spec's loop, run the torch way.

    Parameters
    ----------
    e, nonlinearity
        The explicit parameters and the prepared ``v -> w`` map (:func:`r2dn._spec.nonlinearity`).
    x0 : torch.Tensor (batch, nx)
    us : torch.Tensor (T, batch, nu)
    chunk : int, optional
        Steps per activation-checkpointed chunk (``None``: no checkpointing).
    step : callable
        :func:`r2dn._spec.cell` or a drop-in for it (:func:`compiled_cell`).

    Notes
    -----
    Excluded from ``torch.compile`` tracing (a graph break): the loop runs eagerly around the
    compiled cell, so a new T neither unrolls nor recompiles anything.
    """
    if step is not _spec.cell and e.A.requires_grad and not x0.requires_grad:
        # the compiled cell's graphs depend on whether `x` requires grad: a detached copy of a
        # constant x0 that does makes the first step use the later steps' graph (one compilation)
        x0 = x0.detach().requires_grad_(True)

    def segment(x: torch.Tensor, part: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return _spec.simulate_loop(e, nonlinearity, x, part, xp=xp_torch, step=step,
                                   unstack=torch.unbind)

    if chunk is None or chunk >= us.shape[0]:
        return segment(x0, us)
    x, ys = x0, []
    for part in torch.split(us, chunk):
        x, y = checkpoint(segment, x, part, use_reentrant=False)
        ys.append(y)
    return x, torch.cat(ys)
