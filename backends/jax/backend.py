"""The JAX backend's record for :mod:`r2dn.backends`: ``lax.scan`` (chunked under
``jax.checkpoint`` on request) and the REN equilibrium of :mod:`.rollout`, batch-parallel under
meshes (:mod:`.sharding`)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from r2dn.backends import Backend

from .rollout import chunked_rollout, equilibrium_layer
from .sharding import batch_parallel


def _asarray(a: np.ndarray, like: jax.Array) -> jax.Array:
    return jnp.asarray(a, dtype=like.dtype)


def _all_finite(x: Any) -> bool:
    return bool(np.all(np.isfinite(np.asarray(x))))


def _equilibrium(activation: Any, act: Any):
    return batch_parallel(equilibrium_layer(activation))


def _adapter() -> type:
    from .conformance import JaxAdapter
    return JaxAdapter


BACKEND = Backend(name="jax", module="r2dn.jax", xp=jnp, default_dtype="float32",
                  from_numpy=jnp.asarray, asarray=_asarray, all_finite=_all_finite,
                  rollout=chunked_rollout,
                  equilibrium=_equilibrium, adapter=_adapter)
