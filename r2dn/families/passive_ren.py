"""PassiveREN: an incrementally passive REN with indices (nu, rho) (docs/math/ren.md#passive)."""

from __future__ import annotations

import math
import numbers
from typing import Literal

import numpy as np

from .._spec import ren_explicit_wide
from ..certify import slope_restricted_multiplier
from ..config import Activation, Compat, ModelConfig, build_recurrent, documented
from ..init import ren_shapes
from . import Family


@documented('A REN that is incrementally passive with indices (``nu_index``, ``rho_index``); needs ``nu == ny``\n(docs/math/ren.md#passive).\n\nThe supply is ``2 du^T dy - 2 nu_index |du|^2 - 2 rho_index |dy|^2``, i.e. (Q, S, R) =\n(-2 rho_index I, I, -2 nu_index I).',
             '>>> import r2dn, r2dn.numpy as rn\n>>> model = rn.PassiveREN(nu=2, nx=3, nv=4, ny=2, nu_index=0.0, rho_index=0.5)\n>>> bool(r2dn.certify(model).certified)\nTrue')
def passive_ren_config(nu: int, nx: int, nv: int, ny: int, *, nu_index: float = 0.0,
                       rho_index: float = 0.0, abar: float = 1.0, activation: Activation = "relu",
                       polar: bool = True, eps: float | None = None,
                       init: Literal["random", "long_memory"] = "random", seed: int = 0,
                       dtype: str | None = None, compat: Compat = None,
                       default_dtype: str = "float64") -> ModelConfig:
    return build_recurrent("PassiveREN", nu, nx, nv, ny, dtype=dtype, default_dtype=default_dtype,
                           eps=eps, compat=compat, nu_index=nu_index, rho_index=rho_index, abar=abar,
                           activation=activation, polar=polar, init=init, seed=seed)


def check_indices(c: ModelConfig) -> None:
    """``nu == ny``; finite indices with ``rho >= 0`` and ``nu rho < 1/4`` when ``rho > 0``."""
    if c.nu != c.ny:
        raise ValueError(f"PassiveREN: needs nu == ny; got nu={c.nu}, ny={c.ny}.")
    for name in ("nu_index", "rho_index"):
        v = getattr(c, name)
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
            raise ValueError(f"PassiveREN: `{name}` must be a finite number; got {name}={v!r}.")
    if c.rho_index < 0:
        raise ValueError(f"PassiveREN: `rho_index` must be >= 0; got rho_index={c.rho_index!r}.")
    if c.rho_index > 0 and c.nu_index * c.rho_index >= 0.25:
        raise ValueError("PassiveREN: with rho_index > 0 the indices must satisfy "
                         f"nu_index * rho_index < 1/4; got {c.nu_index!r} * {c.rho_index!r}.")


def supply(c: ModelConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(Q, S, R) = (-2 rho I, I, -2 nu I): ``2 du^T dy - 2 nu |du|^2 - 2 rho |dy|^2``."""
    return (-2.0 * c.rho_index * np.eye(c.ny), np.eye(c.nu, c.ny),
            -2.0 * c.nu_index * np.eye(c.nu))


FAMILY = Family(name="PassiveREN", kind="ren", constructor=passive_ren_config,
                shapes=ren_shapes, explicit=ren_explicit_wide,
                options=frozenset({"nu_index", "rho_index"}), rules=(check_indices,),
                supply=supply, multiplier=slope_restricted_multiplier)
