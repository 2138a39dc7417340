"""The JAX backend's record for :mod:`r2dn.backends`: ``lax.scan`` (chunked under
``jax.checkpoint`` on request) and the REN equilibrium of :mod:`.rollout`, batch-parallel under
meshes (:mod:`.sharding`), and :func:`call`, the one hand-over of a model call, compiled."""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from r2dn._model import check_concrete, execute
from r2dn.backends import Backend

from .rollout import chunked_rollout, equilibrium_layer, full_precision
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


@functools.partial(jax.jit, static_argnames=("method", "chunk", "unroll"))
def _execute(model: Any, args: tuple[Any, ...], method: str, chunk: int | None, unroll: int
             ) -> Any:
    """:func:`r2dn._model.execute`, compiled once per config (the model's static data), input
    shapes, ``method``, ``chunk`` and ``unroll``, with full-precision matmuls."""
    c = model.config
    options = {"unroll": unroll} if c.is_recurrent else {}
    with full_precision():
        return execute(BACKEND, c, model.explicit, None, method, args, chunk, **options)


def call(model: Any, method: str, args: tuple[Any, ...], chunk: int | None = None, *,
         unroll: int = 1) -> Any:
    """The JAX model call: the checks that need concrete inputs (framework, finiteness,
    ``chunk``) first, then :func:`r2dn._model.execute` compiled with ``jax.jit`` (inside a user's
    ``jit``, ``grad`` or ``vmap`` it is traced as a nested call; shapes and dtypes are checked
    while tracing, so a wrong input raises at once). ``unroll`` is ``lax.scan``'s."""
    check_concrete(BACKEND, model.config, method, args, chunk)
    return _execute(model, args, method=method, chunk=chunk, unroll=unroll)


BACKEND = Backend(name="jax", module="r2dn.jax", xp=jnp, default_dtype="float32",
                  from_numpy=jnp.asarray, asarray=_asarray, all_finite=_all_finite,
                  rollout=chunked_rollout,
                  equilibrium=_equilibrium, adapter=_adapter, call=call)
