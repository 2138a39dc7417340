"""ContractingR2DN: an R2DN contracting at rate abar (docs/math/r2dn.md#contracting)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from .._spec.r2dn import contracting_r2dn_explicit
from ..certify import lipschitz_multiplier
from ..config import Activation, Compat, ModelConfig, build_recurrent, check_identity_output, documented
from ..init import r2dn_shapes
from . import Family


@documented('An R2DN contracting at rate ``abar`` (docs/math/r2dn.md#contracting).\n\nAn LTI system in feedback with a 1-Lipschitz LBDN of widths ``nv -> hidden -> nv``: no\nequilibrium to solve, so each step is a few dense products.',
             '>>> import numpy as np, r2dn.numpy as rn\n>>> model = rn.ContractingR2DN(nu=2, nx=3, nv=4, ny=1, hidden=(8,))\n>>> xT, ys = model.simulate(model.init_state(5), np.zeros((10, 5, 2)))\n>>> ys.shape\n(10, 5, 1)',
             hidden_note=' of the network phi (``nv -> hidden -> nv``)')
def contracting_r2dn_config(nu: int, nx: int, nv: int, ny: int, hidden: Sequence[int], *,
                            abar: float = 1.0, activation: Activation = "relu", polar: bool = True,
                            eps: float | None = None,
                            init: Literal["random", "long_memory"] = "random",
                            identity_output: bool = False, seed: int = 0, dtype: str | None = None,
                            compat: Compat = None, default_dtype: str = "float64") -> ModelConfig:
    return build_recurrent("ContractingR2DN", nu, nx, nv, ny, dtype=dtype, default_dtype=default_dtype,
                           eps=eps, compat=compat, hidden=hidden, abar=abar, activation=activation,
                           polar=polar, init=init, identity_output=identity_output, seed=seed)


FAMILY = Family(name="ContractingR2DN", kind="r2dn", constructor=contracting_r2dn_config,
                shapes=r2dn_shapes, explicit=contracting_r2dn_explicit,
                options=frozenset({"identity_output"}), rules=(check_identity_output,),
                multiplier=lipschitz_multiplier, zeros=("D22",))
