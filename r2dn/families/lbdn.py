"""LBDN: a gamma-Lipschitz MLP of Sandwich layers (docs/math/lbdn.md#lbdn-network)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .._spec.lbdn import lbdn_explicit
from ..config import Activation, Compat, ModelConfig, build, check_gamma, documented
from ..init import lbdn_network_shapes
from . import Family


@documented('A gamma-Lipschitz MLP of Sandwich layers with a linear last layer (docs/math/lbdn.md#lbdn-network).\n\nCalled as ``model(u)`` with ``u`` of shape ``(batch, in_features)``; returns\n``(batch, out_features)``, and ``||model(u1) - model(u2)|| <= gamma ||u1 - u2||`` for every pair.',
             '>>> import numpy as np, r2dn, r2dn.numpy as rn\n>>> model = rn.LBDN(4, (16, 16), 2, gamma=3.0)\n>>> model(np.ones((5, 4))).shape\n(5, 2)\n>>> bool(r2dn.certify(model).certified)\nTrue',
             hidden_note=' (``in_features -> hidden[0] -> ... -> out_features``)')
def lbdn_config(in_features: int, hidden: Sequence[int], out_features: int, gamma: float = 1.0, *,
                learn_gamma: bool = False, activation: Activation = "relu", seed: int = 0,
                dtype: str | None = None, compat: Compat = None,
                default_dtype: str = "float64") -> ModelConfig:
    return build("LBDN", dtype, default_dtype, None, compat, in_features=in_features,
                 hidden=hidden, out_features=out_features, gamma=gamma, learn_gamma=learn_gamma,
                 activation=activation, seed=seed)


def _recurrent(model: str, nu, nx, nv, ny, *, dtype, default_dtype, eps, compat, **kw) -> ModelConfig:
    return build(model, dtype, default_dtype, eps, compat, nu=nu, nx=nx, nv=nv, ny=ny, **kw)


def explicit(direct: Mapping[str, Any], cfg: ModelConfig, *, xp: Any) -> Any:
    """The network's explicit map (:func:`r2dn._spec.lbdn.lbdn_explicit`); a learned gamma is
    read from ``log_gamma``."""
    gamma = None if cfg.learn_gamma else cfg.gamma
    return lbdn_explicit(direct, len(cfg.hidden) + 1, gamma, cfg.compat, xp=xp)


FAMILY = Family(name="LBDN", kind="lbdn", constructor=lbdn_config, shapes=lbdn_network_shapes,
                explicit=explicit, options=frozenset({"gamma", "learn_gamma"}),
                rules=(check_gamma,))
