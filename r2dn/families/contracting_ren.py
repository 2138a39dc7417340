"""ContractingREN: a REN contracting at rate abar, D22 free (docs/math/ren.md#ren)."""

from __future__ import annotations

import functools
from typing import Literal

from .._spec import ren_explicit_wide
from ..certify import slope_restricted_multiplier
from ..config import Activation, Compat, ModelConfig, build_recurrent, check_identity_output, documented
from ..init import ren_shapes
from . import Family


@documented('A REN contracting at rate ``abar`` (docs/math/ren.md#ren).\n\nThe state forgets its initial value: two trajectories with the same inputs approach each other\nat least like ``abar**t``. Its input-output map is not bounded (``D22`` and the output layer are\nfree).',
             '>>> import numpy as np, r2dn.numpy as rn\n>>> model = rn.ContractingREN(nu=2, nx=3, nv=4, ny=1, abar=0.9)\n>>> xT, ys = model.simulate(model.init_state(5), np.zeros((10, 5, 2)))\n>>> ys.shape\n(10, 5, 1)')
def contracting_ren_config(nu: int, nx: int, nv: int, ny: int, *, abar: float = 1.0,
                           activation: Activation = "relu", polar: bool = True,
                           eps: float | None = None, init: Literal["random", "long_memory"] = "random",
                           identity_output: bool = False, d22_zero: bool = False, seed: int = 0,
                           dtype: str | None = None, compat: Compat = None,
                           default_dtype: str = "float64") -> ModelConfig:
    return build_recurrent("ContractingREN", nu, nx, nv, ny, dtype=dtype, default_dtype=default_dtype,
                           eps=eps, compat=compat, abar=abar, activation=activation, polar=polar,
                           init=init, identity_output=identity_output, d22_zero=d22_zero, seed=seed)


FAMILY = Family(name="ContractingREN", kind="ren", constructor=contracting_ren_config,
                shapes=functools.partial(ren_shapes, free_d22=True), explicit=ren_explicit_wide,
                options=frozenset({"identity_output", "d22_zero"}), rules=(check_identity_output,),
                multiplier=slope_restricted_multiplier, zeros=("D22",))
