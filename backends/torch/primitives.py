"""The torch kernels of the primitives the array API lacks, which the spec takes as arguments.

:func:`tri_solve` is the spec's :data:`r2dn._spec.equilibrium.TriSolve`, :func:`unstack` its
:data:`r2dn._spec.equilibrium.Unstack`, :func:`affine` its :data:`r2dn._spec.Affine`. This is the one module of the backend allowed to name a
linear-algebra routine (``tests/test_spec_purity.py``): it holds primitives, not formulas.
"""

from __future__ import annotations

import torch


def tri_solve(M: torch.Tensor, r: torch.Tensor, lower: bool) -> torch.Tensor:
    """``M x = r`` for unit-triangular M (batch, n, n; its diagonal is not read) and r (batch, n),
    as one batched ``torch.linalg.solve_triangular``: a block of the REN's linear substitutions in
    a few operator calls instead of a few per neuron."""
    return torch.linalg.solve_triangular(M, r[..., None], upper=not lower,
                                         unitriangular=True)[..., 0]


def unstack(x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The rows of x (n, m) by one ``torch.unbind``, which every torch transform batches (the
    array API's ``unstack`` goes through ``moveaxis``, which ``torch.func.vmap`` cannot): the REN
    forward substitution's per-neuron feeds in one call per block instead of a view per neuron."""
    return torch.unbind(x, 0)


def affine(x: torch.Tensor, W: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """``x @ W + c`` as one ``torch.addmm`` where x is a matrix (the loop body's and every LBDN
    layer's product and bias: one operator call instead of two per step, in an eager loop that
    is dispatch-bound; benchmarks/README.md); the two operations for other shapes."""
    return torch.addmm(c, x, W) if x.ndim == 2 and W.ndim == 2 else x @ W + c
