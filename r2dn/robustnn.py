"""Load the R2DN authors' JAX (Flax) parameter trees into r2dn models (``compat="robustnn"``).

Their ``params`` trees and r2dn's canonical names agree but for the layer keys and a few entries
their models carry without using. The name map:

=============================================  ============================================
authors' tree (``params[...]``)                 r2dn canonical name
=============================================  ============================================
``X``, ``p``, ``Y`` / ``Y1``, ``B1``, ``C1``,  the same name
``B2``, ``C2``, ``D12``, ``D21``, ``D22``,
``X3``, ``Y3``, ``Z3``, ``bx``, ``bv``, ``by``
``network/layers_<k>/{XY,a,d,b}``               ``network.layers.<k>.{XY,a,d,b}``
``layers_<k>/{XY,a,d,b}`` (an LBDN)             ``layers.<k>.{XY,a,d,b}``
``D22`` of a Lipschitz or general REN           dropped (they build D22 from X3, Y3, Z3)
``X3``, ``Y3``, ``Z3`` of a contracting REN     dropped (its D22 is free)
``p`` when ``polar=False``                      dropped
=============================================  ============================================
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from ._model import to_numpy
from .config import ModelConfig
from .init import direct_shapes

_LAYER = re.compile(r"layers_(\d+)")


def flatten_tree(tree: Mapping[str, Any], sep: str = "/") -> dict[str, Any]:
    """A nested dict of arrays as ``{"a/b/c": array}`` (already-flat keys pass through)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            for k, v in flatten_tree(value, sep).items():
                out[f"{key}{sep}{k}"] = v
        else:
            out[str(key)] = value
    return out


def direct_from_robustnn(tree: Mapping[str, Any], config: ModelConfig) -> dict[str, np.ndarray]:
    """Canonical float64 direct parameters from the authors' ``params`` tree (nested or flat
    with ``/`` separators; a top-level ``"params"`` key is unwrapped).

    Raises ``ValueError`` naming the missing entries or the entry with the wrong shape.
    """
    if config.compat != "robustnn":
        raise ValueError(f"direct_from_robustnn: the config must have compat='robustnn'; got "
                         f"compat={config.compat!r}.")
    if set(tree) == {"params"}:
        tree = tree["params"]
    flat = {_LAYER.sub(r"layers.\1", k).replace("/", "."): v for k, v in flatten_tree(tree).items()}
    shapes = direct_shapes(config)
    missing = sorted(set(shapes) - set(flat))
    if missing:
        raise ValueError(f"direct_from_robustnn: the tree lacks {missing} for a {config.model}.")
    out = {}
    for name, shape in shapes.items():
        arr = np.asarray(to_numpy(flat[name]), dtype=np.float64)
        if arr.shape != shape:
            raise ValueError(f"direct_from_robustnn: `{name}` has shape {arr.shape}; the "
                             f"{config.model} needs {shape}.")
        out[name] = arr
    return out
