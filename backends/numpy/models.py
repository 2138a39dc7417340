"""NumPy models: parameters are NumPy arrays of the model's dtype (float64 by default)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import array_api_compat.numpy as xp_numpy
import numpy as np

from r2dn import checkpoint
from r2dn._model import Catalogue, from_direct as _from_direct, to_numpy
from r2dn.config import ModelConfig
from r2dn.init import direct_shapes, init_direct

from .backend import BACKEND


class NumpyModel:
    """Parameter holder of the NumPy backend (the public classes add the API of docs/getting-started.md#model-api)."""

    _backend = BACKEND
    _xp = xp_numpy

    def __init__(self, config: ModelConfig, direct: Mapping[str, Any] | None = None) -> None:
        self.config = config
        values = init_direct(config) if direct is None else direct
        shapes = direct_shapes(config)
        if set(values) != set(shapes):
            raise ValueError(f"{config.model}: parameters {sorted(values)} do not match the "
                             f"expected names {sorted(shapes)}.")
        params = {}
        for name, shape in shapes.items():
            arr = to_numpy(values[name])
            if arr.shape != shape:
                raise ValueError(f"{config.model}: parameter `{name}` must have shape {shape}; "
                                 f"got {arr.shape}.")
            params[name] = np.array(arr, dtype=config.dtype)
        self._params = params

    def _direct_arrays(self) -> dict[str, np.ndarray]:
        return self._params


#: one class per registered family (``r2dn.numpy.LipschitzR2DN``, ...), generated on first use.
CLASSES = Catalogue(NumpyModel, __name__, "float64")


def __getattr__(name: str) -> type:
    return CLASSES.attribute(name, __name__)


def __dir__() -> list[str]:
    return sorted({*globals(), *CLASSES})


def from_direct(config: ModelConfig, direct: Mapping[str, Any], *,
                check_finite: bool = True) -> Any:
    """The NumPy model with ``config`` and free parameters ``direct`` (arrays of any backend).

    ``check_finite`` raises a ``ValueError`` naming the first parameter holding a NaN or an
    infinity.
    """
    model = _from_direct(CLASSES, NumpyModel, config, direct)
    if check_finite:
        for name, value in model._direct_arrays().items():
            if not np.all(np.isfinite(value)):
                raise ValueError(f"{config.model}: parameter `{name}` is not finite; pass "
                                 "check_finite=False to accept it.")
    return model


def convert(model: Any, *, dtype: str | None = None, check_finite: bool = True) -> Any:
    """A NumPy copy of a model of any backend, with identical parameters (optionally re-typed)."""
    config = model.config if dtype is None else model.config.replace(dtype=dtype)
    return from_direct(config, model.direct(), check_finite=check_finite)


def load(path: Any, *, check_finite: bool = True) -> Any:
    """The NumPy model stored in an r2dn checkpoint (see :func:`r2dn.save`)."""
    config, direct = checkpoint.read(path, check_finite=check_finite)
    return from_direct(config, direct, check_finite=False)
