"""The NumPy backend's record for :mod:`r2dn.backends`: the float64 reference, no devices."""

from __future__ import annotations

from typing import Any

import array_api_compat.numpy as xp_numpy
import numpy as np

from r2dn._model import call
from r2dn.backends import Backend, spec_equilibrium, spec_rollout


def _asarray(a: np.ndarray, like: Any) -> np.ndarray:
    return np.asarray(a, dtype=like.dtype)


def _all_finite(x: Any) -> bool:
    return bool(np.all(np.isfinite(x)))


def _adapter() -> type:
    from r2dn.conformance.backends import NumpyAdapter
    return NumpyAdapter


BACKEND = Backend(name="numpy", module="r2dn.numpy", xp=xp_numpy, default_dtype="float64",
                  from_numpy=np.asarray, asarray=_asarray, all_finite=_all_finite,
                  rollout=spec_rollout(xp_numpy),
                  equilibrium=spec_equilibrium(xp_numpy), adapter=_adapter, call=call)
