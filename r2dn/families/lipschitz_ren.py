"""LipschitzREN: a REN of incremental gain at most gamma (docs/math/ren.md#d22)."""

from __future__ import annotations

from typing import Literal

from .._spec import ren_explicit_wide
from ..certify import slope_restricted_multiplier
from ..config import Activation, Compat, ModelConfig, build_recurrent, check_gamma, documented
from ..init import ren_shapes
from . import Family
from ._shared import configured_gain, gain_supply


@documented('A REN with incremental gain at most ``gamma`` (docs/math/ren.md#d22).\n\nFrom equal initial states, ``||y1 - y2|| <= gamma ||u1 - u2||`` over any horizon (l2 norms of the\nwhole sequences); the model is also contracting at rate ``abar``.',
             '>>> import r2dn, r2dn.numpy as rn\n>>> model = rn.LipschitzREN(nu=2, nx=3, nv=4, ny=2, gamma=1.5)\n>>> r2dn.certify(model).gamma <= 1.5\nTrue')
def lipschitz_ren_config(nu: int, nx: int, nv: int, ny: int, gamma: float, *, abar: float = 1.0,
                         activation: Activation = "relu", polar: bool = True,
                         eps: float | None = None, init: Literal["random", "long_memory"] = "random",
                         d22_zero: bool = False, seed: int = 0, dtype: str | None = None,
                         compat: Compat = None, default_dtype: str = "float64") -> ModelConfig:
    return build_recurrent("LipschitzREN", nu, nx, nv, ny, dtype=dtype, default_dtype=default_dtype,
                           eps=eps, compat=compat, gamma=gamma, abar=abar, activation=activation,
                           polar=polar, init=init, d22_zero=d22_zero, seed=seed)


FAMILY = Family(name="LipschitzREN", kind="ren", constructor=lipschitz_ren_config,
                shapes=ren_shapes, explicit=ren_explicit_wide,
                options=frozenset({"gamma", "d22_zero"}), rules=(check_gamma,), supply=gain_supply,
                gain=configured_gain, multiplier=slope_restricted_multiplier)
