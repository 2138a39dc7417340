"""GeneralREN: an incrementally (Q, S, R)-dissipative REN (docs/math/ren.md#supply)."""

from __future__ import annotations

from typing import Any, Literal

from .._spec import ren_explicit_wide
from ..certify import slope_restricted_multiplier
from ..config import Activation, Compat, ModelConfig, build_recurrent, check_qsr, documented
from ..init import ren_shapes
from . import Family
from ._shared import given_supply


@documented('A REN that is incrementally (Q, S, R)-dissipative (docs/math/ren.md#supply).\n\nFrom equal initial states, the supply ``sum_t dy^T Q dy + 2 du^T S dy + du^T R du >= 0`` over any\nhorizon, for any two input sequences; the model is also contracting at rate ``abar``.',
             '>>> import numpy as np, r2dn, r2dn.numpy as rn\n>>> Q, S, R = -np.eye(1), np.zeros((2, 1)), 4.0 * np.eye(2)    # gain <= 2\n>>> model = rn.GeneralREN(nu=2, nx=3, nv=4, ny=1, Q=Q, S=S, R=R)\n>>> bool(r2dn.certify(model).certified)\nTrue',
             'Conventions: ``S`` is ``(nu, ny)``. Q = -I/gamma, S = 0, R = gamma I is a gamma-Lipschitz model\n(docs/math/index.md#qsr-conventions).')
def general_ren_config(nu: int, nx: int, nv: int, ny: int, Q: Any, S: Any, R: Any, *,
                       abar: float = 1.0, activation: Activation = "relu", polar: bool = True,
                       eps: float | None = None, init: Literal["random", "long_memory"] = "random",
                       seed: int = 0, dtype: str | None = None, compat: Compat = None,
                       default_dtype: str = "float64") -> ModelConfig:
    return build_recurrent("GeneralREN", nu, nx, nv, ny, dtype=dtype, default_dtype=default_dtype,
                           eps=eps, compat=compat, Q=Q, S=S, R=R, abar=abar, activation=activation,
                           polar=polar, init=init, seed=seed)


FAMILY = Family(name="GeneralREN", kind="ren", constructor=general_ren_config,
                shapes=ren_shapes, explicit=ren_explicit_wide,
                options=frozenset({"Q", "S", "R"}), rules=(check_qsr,), supply=given_supply,
                multiplier=slope_restricted_multiplier)
