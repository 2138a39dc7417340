"""GeneralR2DN: an incrementally (Q, S, R)-dissipative R2DN (docs/math/r2dn.md#qsr)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from .._spec.r2dn import dissipative_r2dn_explicit
from ..certify import lipschitz_multiplier
from ..config import Activation, Compat, ModelConfig, build_recurrent, check_qsr, documented
from ..init import r2dn_shapes
from . import Family
from ._shared import given_supply


@documented('An R2DN that is incrementally (Q, S, R)-dissipative (docs/math/r2dn.md#qsr).\n\nFrom equal initial states, ``sum_t dy^T Q dy + 2 du^T S dy + du^T R du >= 0`` over any horizon;\nthe model is also contracting at rate ``abar``.',
             '>>> import numpy as np, r2dn, r2dn.numpy as rn\n>>> Q, S, R = -np.eye(1), np.zeros((2, 1)), 4.0 * np.eye(2)\n>>> model = rn.GeneralR2DN(nu=2, nx=3, nv=4, ny=1, hidden=(8,), Q=Q, S=S, R=R)\n>>> bool(r2dn.certify(model).certified)\nTrue',
             'Conventions: ``S`` is ``(nu, ny)`` (docs/math/index.md#qsr-conventions).',
             hidden_note=' of the network phi (``nv -> hidden -> nv``)')
def general_r2dn_config(nu: int, nx: int, nv: int, ny: int, hidden: Sequence[int], Q: Any, S: Any,
                        R: Any, *, abar: float = 1.0, activation: Activation = "relu",
                        polar: bool = True, eps: float | None = None,
                        init: Literal["random", "long_memory"] = "random", seed: int = 0,
                        dtype: str | None = None, compat: Compat = None,
                        default_dtype: str = "float64") -> ModelConfig:
    return build_recurrent("GeneralR2DN", nu, nx, nv, ny, dtype=dtype, default_dtype=default_dtype,
                           eps=eps, compat=compat, hidden=hidden, Q=Q, S=S, R=R, abar=abar,
                           activation=activation, polar=polar, init=init, seed=seed)


FAMILY = Family(name="GeneralR2DN", kind="r2dn", constructor=general_r2dn_config,
                shapes=r2dn_shapes, explicit=dissipative_r2dn_explicit,
                options=frozenset({"Q", "S", "R"}), rules=(check_qsr,), supply=given_supply,
                multiplier=lipschitz_multiplier)
