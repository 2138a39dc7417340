"""r2dn's JAX backend: every model of the catalogue as a JAX pytree (jit, grad, vmap, optax).

``import r2dn.jax as rn`` gives ``rn.SandwichLayer``, ``rn.LBDN``, ``rn.ContractingREN``, ...,
``rn.GeneralR2DN`` with the API of docs/getting-started.md#model-api, plus :func:`convert`, :func:`from_direct` and
:func:`empirical_gain`. Models are immutable pytrees: the free parameters are the leaves and the
config is static data, so they pass straight through ``jax.jit``, ``jax.grad``, ``jax.vmap`` and
``optax.apply_updates``; the seed is not part of the tree structure, so one compilation serves
every seed and :func:`ensemble` stacks models for ``jax.vmap``. ``simulate`` runs ``lax.scan``
(``chunk=K`` checkpoints every K steps for long sequences); the REN equilibrium has a custom
implicit-function gradient; every matmul is full precision (HIGHEST), on CPU and GPU.
:func:`fast_compile_options` gives XLA options that compile several times faster on a CPU.

The default dtype is float32. float64 models need JAX's 64-bit mode, which is the user's choice
(``jax.config.update("jax_enable_x64", True)``); r2dn never changes JAX's configuration. Without
it, ``load(path, dtype="float32")`` and ``convert(model, dtype="float32")`` bring float64 models
over. One seed gives the same parameters, bit for bit, as ``r2dn.numpy`` (NumPy float64 draws,
then cast). Flax NNX: :mod:`r2dn.jax.nnx` (the ``r2dn[flax]`` extra). Guide:
``docs/guides/jax.md``.

>>> import jax, jax.numpy as jnp
>>> import r2dn.jax as rn
>>> model = rn.ContractingR2DN(2, 3, 4, 1, hidden=(8,), seed=0)
>>> def loss(m, us):
...     x_T, ys = m.simulate(m.init_state(us.shape[1]), us)     # us (T, batch, nu)
...     return jnp.mean(ys ** 2)
>>> us = jnp.ones((10, 5, 2), dtype=jnp.float32)
>>> value, grads = jax.jit(jax.value_and_grad(loss))(model, us)
>>> type(grads).__name__, grads.direct().keys() == model.direct().keys()
('ContractingR2DN', True)
"""

import re as _re

import jax as _jax

from r2dn import families as _families

#: the oldest JAX this backend runs on: it reads ``jax.typeof(x).manual_axis_type`` (new in jax
#: 0.10.0), and gradients of a batch sharded over an explicit-axis mesh need jax 0.10.1 (on 0.10.0
#: they raise ShardingTypeError). Found by running the JAX tests on 0.8.0, 0.9.2, 0.10.0 and 0.10.1.
MIN_JAX = (0, 10, 1)


def _check_jax(version: str) -> None:
    """Raise ImportError, naming the fix, when ``version`` is older than :data:`MIN_JAX`."""
    found = tuple(int(part) for part in _re.findall(r"\d+", version)[:3])
    if found < MIN_JAX:
        need = ".".join(map(str, MIN_JAX))
        raise ImportError(f"r2dn.jax needs jax >= {need}; this environment has jax {version}. "
                          f"Upgrade it: pip install -U 'jax>={need}' (or pip install -U "
                          "'r2dn[jax]').")


_check_jax(_jax.__version__)

from .gain import empirical_gain  # noqa: E402
from .models import (CLASSES, INIT_ONLY_FIELDS, JaxModel, convert, ensemble,  # noqa: E402
                     from_direct, load, structure_config)
from .rollout import (CPU_FAST_COMPILE_OPTIONS, MATMUL_PRECISION,  # noqa: E402
                      fast_compile_options)

__all__ = [
    "CPU_FAST_COMPILE_OPTIONS", "INIT_ONLY_FIELDS", "JaxModel", "MATMUL_PRECISION", "MIN_JAX",
    "convert",
    "empirical_gain", "ensemble", "fast_compile_options", "from_direct", "load",
    "structure_config", *_families.names(),
]


def __getattr__(name: str) -> type:
    """The model class of each registered family (:mod:`r2dn.families`), generated on first use."""
    return CLASSES.attribute(name, __name__)


def __dir__() -> list[str]:
    return sorted({*globals(), *_families.names()})
