"""SandwichLayer: a 1-Lipschitz dense layer (docs/math/lbdn.md#sandwich)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._spec.lbdn import sandwich_explicit
from ..compat import PRESETS
from ..config import Activation, Compat, ModelConfig, build, documented
from ..init import sandwich_shapes
from . import Family


@documented('A 1-Lipschitz dense layer ``in_features -> out_features`` (docs/math/lbdn.md#sandwich).\n\nCalled as ``layer(u)`` with ``u`` of shape ``(batch, in_features)``; returns\n``(batch, out_features)``.',
             '>>> import numpy as np, r2dn.numpy as rn\n>>> layer = rn.SandwichLayer(3, 2, activation="tanh")\n>>> layer(np.ones((4, 3))).shape\n(4, 2)')
def sandwich_config(in_features: int, out_features: int, *, activation: Activation = "relu",
                    seed: int = 0, dtype: str | None = None, compat: Compat = None,
                    default_dtype: str = "float64") -> ModelConfig:
    return build("SandwichLayer", dtype, default_dtype, None, compat, in_features=in_features,
                 out_features=out_features, activation=activation, seed=seed)


def explicit(direct: Mapping[str, Any], cfg: ModelConfig, *, xp: Any) -> Any:
    """The layer's explicit map (:func:`r2dn._spec.lbdn.sandwich_explicit` with the preset)."""
    return sandwich_explicit(direct, "", PRESETS[cfg.compat], xp=xp)


FAMILY = Family(name="SandwichLayer", kind="sandwich", constructor=sandwich_config,
                shapes=sandwich_shapes, explicit=explicit)
