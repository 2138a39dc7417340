"""The array-API specification: every formula of r2dn, written once, for any namespace ``xp``.

No framework is imported here (a test checks it). Functions take the namespace as a required
keyword ``xp``; the backends resolve it once per model and call these functions for every piece
of maths. Direct parameters are flat ``dict[str, Array]`` keyed by canonical dotted names; explicit
parameters are NamedTuples (pytrees for JAX, traceable by torch.compile).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..config import ModelConfig
from ._xp import Array, Namespace, wide_dtype
from .activations import Activation, activation
from .lbdn import LBDNExplicit, SandwichExplicit, lbdn_apply, lbdn_fuse, sandwich_apply
from .r2dn import R2DNExplicit
from .equilibrium import BLOCK, SubstitutionPlan, equilibrium, equilibrium_jvp, equilibrium_vjp, \
    lower_solve, python_scan, substitution_plan, tangent_system, upper_solve
from .ren import RENExplicit, ren_explicit
from .rollout import Affine, StepMatrices, affine, cell, input_terms, outputs, simulate_loop, \
    step_matrices

__all__ = [
    "Activation", "Affine", "LBDNExplicit", "R2DNExplicit", "RENExplicit", "SandwichExplicit", "activation",
    "BLOCK", "StepMatrices", "SubstitutionPlan", "affine", "cell", "direct_to_explicit", "equilibrium", "equilibrium_jvp",
    "equilibrium_vjp", "feedforward", "flatten_explicit", "input_terms", "lower_solve",
    "nonlinearity", "outputs", "python_scan", "ren_explicit_wide", "simulate_loop",
    "step_matrices", "substitution_plan", "tangent_system", "upper_solve",
]


def direct_to_explicit(direct: Mapping[str, Array], cfg: ModelConfig, *, xp: Namespace) -> Any:
    """The explicit parameters of any model: its family's map (:attr:`r2dn.families.Family.explicit`,
    one of the functions of this package)."""
    return cfg.spec().explicit(direct, cfg, xp=xp)


def ren_explicit_wide(direct: Mapping[str, Array], cfg: ModelConfig, *, xp: Namespace) -> Any:
    """A REN's explicit map computed in float64 and cast once to the model's dtype.

    ``A, B1 = E^-1 [F, H32]`` with E as ill-conditioned as the parameters make it (cond 1e5 after
    training-size moves): in float32 the solve alone loses up to 1e-3 relative, and rounding E to
    float32 already costs cond(E) * 6e-8 (``docs/math/float32.md``). Widening the map (O(n^3) once
    per call, n = 2 nx + nv) keeps the float32 rollout within rounding of the float64 reference.
    Namespaces without float64 (JAX without ``jax_enable_x64``) compute it in their own dtype.
    """
    X = direct["X"]
    wide = wide_dtype(X, xp=xp)
    if wide == X.dtype:
        return ren_explicit(direct, cfg, xp=xp)
    e = ren_explicit({k: xp.astype(v, wide) for k, v in direct.items()}, cfg, xp=xp)
    return RENExplicit(*(xp.astype(v, X.dtype) for v in e))


def nonlinearity(e: Any, act: Activation, *, xp: Namespace,
                 solver: Callable[..., Array] | None = None,
                 block: int = BLOCK, mad: Affine = affine) -> Callable[[Array], Array]:
    """``v -> w`` of a recurrent model, prepared once per call.

    REN: the equilibrium ``w = sigma(D11 w + v)``, by ``solver(D11, v, plan)`` when a backend
    registers a custom-derivative version, else by forward substitution; ``plan`` (D11 cut into
    blocks of at most ``block`` neurons, :func:`substitution_plan`) is built once here, outside
    the time loop. R2DN: the fused LBDN, its layers' products by ``mad`` (:data:`Affine`).
    """
    if isinstance(e, RENExplicit):
        plan = substitution_plan(e.D11, xp=xp, block=block)   # D11-only work, once per rollout
        if solver is not None:
            return lambda v: solver(e.D11, v, plan)
        return lambda v: equilibrium(e.D11, v, act, xp=xp, plan=plan)
    fused = lbdn_fuse(e.network)
    return lambda v: lbdn_apply(fused, v, act, mad)


def feedforward(e: Any, act: Activation, mad: Affine = affine) -> Callable[[Array], Array]:
    """``u -> y`` of an LBDN (fused once; its products by ``mad``, :data:`Affine`) or a Sandwich
    layer."""
    if isinstance(e, LBDNExplicit):
        fused = lbdn_fuse(e)
        return lambda u: lbdn_apply(fused, u, act, mad)
    return lambda h: sandwich_apply(e, h, act)


def flatten_explicit(e: Any, prefix: str = "") -> dict[str, Array]:
    """Explicit parameters as a flat dict of canonical dotted names (``network.layers.0.B``)."""
    out: dict[str, Array] = {}
    if isinstance(e, tuple) and hasattr(e, "_fields"):
        items = zip(e._fields, e)
    elif isinstance(e, tuple):
        items = ((str(i), v) for i, v in enumerate(e))
    else:
        return {prefix[:-1]: e}
    for name, value in items:
        if value is None:
            continue
        out.update(flatten_explicit(value, f"{prefix}{name}."))
    return out
