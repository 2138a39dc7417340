"""The JAX backend's record for :mod:`r2dn.backends`: ``lax.scan`` and the ``custom_vjp``
equilibrium of :mod:`.rollout`."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from r2dn.backends import Backend

from .rollout import equilibrium_layer, scan_rollout


def _asarray(a: np.ndarray, like: jax.Array) -> jax.Array:
    return jnp.asarray(a, dtype=like.dtype)


def _all_finite(x: Any) -> bool:
    return bool(np.all(np.isfinite(np.asarray(x))))


def _equilibrium(activation: Any, act: Any):
    return equilibrium_layer(activation)


def _adapter() -> type:
    from .conformance import JaxAdapter
    return JaxAdapter


BACKEND = Backend(name="jax", module="r2dn.jax", xp=jnp, default_dtype="float32",
                  from_numpy=jnp.asarray, asarray=_asarray, all_finite=_all_finite,
                  rollout=scan_rollout,
                  equilibrium=_equilibrium, adapter=_adapter)
