"""LipschitzR2DN: an R2DN of incremental gain at most gamma (docs/math/r2dn.md#qsr)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from .._spec.r2dn import dissipative_r2dn_explicit
from ..certify import lipschitz_multiplier
from ..config import Activation, Compat, ModelConfig, build_recurrent, check_gamma, documented
from ..init import r2dn_shapes
from . import Family
from ._shared import configured_gain, gain_supply


@documented('An R2DN with incremental gain at most ``gamma`` (docs/math/r2dn.md#qsr).\n\nFrom equal initial states, ``||y1 - y2|| <= gamma ||u1 - u2||`` over any horizon; the model is\nalso contracting at rate ``abar``.',
             '>>> import numpy as np, r2dn, r2dn.numpy as rn\n>>> model = rn.LipschitzR2DN(nu=2, nx=8, nv=16, ny=1, hidden=(32,), gamma=2.0)\n>>> xT, ys = model.simulate(model.init_state(4), np.zeros((50, 4, 2)))\n>>> r2dn.certify(model).gamma <= 2.0\nTrue',
             hidden_note=' of the network phi (``nv -> hidden -> nv``)')
def lipschitz_r2dn_config(nu: int, nx: int, nv: int, ny: int, hidden: Sequence[int], gamma: float,
                          *, abar: float = 1.0, activation: Activation = "relu", polar: bool = True,
                          eps: float | None = None, init: Literal["random", "long_memory"] = "random",
                          seed: int = 0, dtype: str | None = None, compat: Compat = None,
                          default_dtype: str = "float64") -> ModelConfig:
    return build_recurrent("LipschitzR2DN", nu, nx, nv, ny, dtype=dtype, default_dtype=default_dtype,
                           eps=eps, compat=compat, hidden=hidden, gamma=gamma, abar=abar,
                           activation=activation, polar=polar, init=init, seed=seed)


FAMILY = Family(name="LipschitzR2DN", kind="r2dn", constructor=lipschitz_r2dn_config,
                shapes=r2dn_shapes, explicit=dissipative_r2dn_explicit,
                options=frozenset({"gamma"}), rules=(check_gamma,), supply=gain_supply,
                gain=configured_gain, multiplier=lipschitz_multiplier)
