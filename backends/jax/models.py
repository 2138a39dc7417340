"""JAX models: immutable pytrees whose leaves are the free parameters and whose static data is the
:class:`~r2dn.config.ModelConfig`.

No Flax or Equinox: every subclass of :class:`JaxModel` (the generated catalogue classes, and any
user subclass) is registered with ``jax.tree_util``, so a model passes through ``jax.jit``,
``jax.grad`` (the gradient is a model of the same class holding the cotangents), ``jax.vmap`` and
``optax.apply_updates``. Two models share a tree structure when their configs are equal (the
config includes the seed): build variants with :func:`from_direct` from one config to stack them.

``explicit()``, ``simulate()`` and ``model(...)`` are compiled with ``jax.jit`` (one compilation
per config and input shape), so eager use does not dispatch the spec op by op; inside a user's
``jit``, ``grad`` or ``vmap`` they are traced as nested calls. Shapes and dtypes are checked while
tracing, so a wrong input raises at once, also under the user's ``jit``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from r2dn import checkpoint
from r2dn._model import ModelMixin, family_classes, from_direct as _from_direct, to_numpy
from r2dn.config import ModelConfig
from r2dn.init import direct_shapes, init_direct

from .backend import BACKEND
from .rollout import full_precision


def _check_dtype_available(config: ModelConfig) -> None:
    if jax.dtypes.canonicalize_dtype(np.dtype(config.dtype)) != np.dtype(config.dtype):
        raise ValueError(
            f"{config.model}: `dtype`={config.dtype!r} needs JAX's 64-bit mode, which is off; call "
            "jax.config.update('jax_enable_x64', True) before building the model (r2dn never "
            "changes JAX's global configuration), or use dtype='float32'.")


def _as_leaf(value: Any, dtype: str) -> jax.Array:
    """A parameter as a JAX array of ``dtype``. Non-JAX values are cast in NumPy first, so a seed
    gives the same bits as the NumPy backend; JAX arrays (tracers included) are cast by JAX."""
    if isinstance(value, jax.Array):
        return jnp.asarray(value, dtype=dtype)
    return jnp.asarray(np.asarray(to_numpy(value), dtype=dtype))


# -- compiled entry points (the model is a jit argument: its config is static) ---------------------

@jax.jit
def _explicit(model: "JaxModel") -> Any:
    with full_precision():
        return ModelMixin.explicit(model)


@jax.jit
def _forward(model: "JaxModel", *args: Any) -> Any:
    with full_precision():
        return super(JaxModel, model).forward(*args)


@functools.partial(jax.jit, static_argnames=("unroll",))
def _simulate(model: "JaxModel", x0: Any, us: Any, unroll: int) -> tuple[Any, Any]:
    with full_precision():
        c = model.config
        model._check_sequence(c, x0, us)
        return model._run(c, x0, us, unroll=unroll)


class JaxModel:
    """Parameter holder of the JAX backend (the public classes add the API of DESIGN §2).

    Leaves: the free parameters in the order of :func:`r2dn.init.direct_shapes`, keyed by their
    canonical names (``jax.tree_util.keystr`` gives ``['network.layers.0.XY']``). Static data:
    ``config`` (hashable). Instances are immutable; update them functionally (``optax``,
    ``jax.tree.map``, :func:`from_direct`). Move one to a device with ``jax.device_put(model, d)``.

    Every model computation is traced with ``precision=HIGHEST`` matmuls (see
    :data:`r2dn.jax.MATMUL_PRECISION`): the certificates assume full-precision arithmetic.

    Parameters
    ----------
    config : ModelConfig
    direct : Mapping[str, Array], optional
        Free parameters by canonical name (any backend's arrays, or JAX tracers), cast to
        ``config.dtype``; drawn from ``config.seed`` with :func:`r2dn.init.init_direct` (float64
        NumPy, then cast) when omitted, so a seed gives the same model bit for bit in every backend.
    """

    _backend = BACKEND
    _xp = jnp

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        jax.tree_util.register_pytree_with_keys(cls, cls._tree_flatten_with_keys,
                                                cls._tree_unflatten, cls._tree_flatten)

    def __init__(self, config: ModelConfig, direct: Mapping[str, Any] | None = None) -> None:
        _check_dtype_available(config)
        values = init_direct(config) if direct is None else direct
        shapes = direct_shapes(config)
        if set(values) != set(shapes):
            raise ValueError(f"{config.model}: parameters {sorted(values)} do not match the "
                             f"expected names {sorted(shapes)}.")
        params = {}
        for name, shape in shapes.items():
            arr = _as_leaf(values[name], config.dtype)
            if tuple(arr.shape) != shape:
                raise ValueError(f"{config.model}: parameter `{name}` must have shape {shape}; "
                                 f"got {tuple(arr.shape)}.")
            params[name] = arr
        object.__setattr__(self, "config", config)
        object.__setattr__(self, "_names", tuple(shapes))
        object.__setattr__(self, "_params", params)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{self.config.model}: JAX models are immutable pytrees; got an "
                             f"assignment to `{name}`. Build a new model instead "
                             "(optax.apply_updates, jax.tree.map or r2dn.jax.from_direct).")

    def __delattr__(self, name: str) -> None:
        self.__setattr__(name, None)

    # -- pytree protocol -----------------------------------------------------------------------
    def _tree_flatten_with_keys(self):
        keys = (jax.tree_util.DictKey(n) for n in self._names)
        return tuple(zip(keys, (self._params[n] for n in self._names))), (self.config, self._names)

    def _tree_flatten(self):
        return tuple(self._params[n] for n in self._names), (self.config, self._names)

    @classmethod
    def _tree_unflatten(cls, aux: tuple[ModelConfig, tuple[str, ...]], leaves) -> "JaxModel":
        # Transformations put tracers, None or sentinels in the leaves: no checks here.
        config, names = aux
        model = object.__new__(cls)
        object.__setattr__(model, "config", config)
        object.__setattr__(model, "_names", names)
        object.__setattr__(model, "_params", dict(zip(names, leaves)))
        return model

    # -- what the mixins need ------------------------------------------------------------------
    def _direct_arrays(self) -> dict[str, jax.Array]:
        return self._params

    def explicit(self) -> Any:
        """The explicit parameters (a NamedTuple of arrays, a pytree) from the current direct ones.

        Compiled once per config; full-precision matmuls. Returns ``RENExplicit``,
        ``R2DNExplicit``, ``LBDNExplicit`` or ``SandwichExplicit`` (see :mod:`r2dn._spec`).
        """
        return _explicit(self)

    def forward(self, *args: Any) -> Any:
        """One step ``(x (batch, nx), u (batch, nu)) -> (x_next (batch, nx), y (batch, ny))`` of a
        recurrent model, or ``u (batch, in_features) -> y (batch, out_features)`` of a feed-forward
        one. Compiled; full-precision matmuls; raises ``ValueError``/``TypeError`` on wrong shapes
        or dtypes (at trace time, so also inside ``jax.jit``)."""
        for name, arg in zip(("x", "u") if len(args) == 2 else ("u",), args):
            self._check_eager("forward", name, arg)
        return _forward(self, *args)


class JaxRecurrent:
    """``simulate`` of the recurrent JAX classes: compiled, with ``lax.scan``'s ``unroll``."""

    def simulate(self, x0: Any, us: Any, *, unroll: int | bool = 1) -> tuple[Any, Any]:
        """Run the model from ``x0`` over the inputs ``us`` with ``lax.scan``.

        The explicit matrices are built once per call, the input terms are one product before the
        loop and the outputs one product after it; every matmul is full precision. Compiled once per
        config, input shape and ``unroll``; works under ``jax.jit``, ``jax.grad`` and ``jax.vmap``.

        Parameters
        ----------
        x0 : jax.Array (batch, nx)
            Initial state, of the model's dtype.
        us : jax.Array (T, batch, nu)
            Inputs, time-major, of the model's dtype; T >= 1.
        unroll : int or bool, optional
            Time steps unrolled per loop iteration (``lax.scan``'s ``unroll``; ``True`` unrolls all).

        Returns
        -------
        x_T : jax.Array (batch, nx)
        ys : jax.Array (T, batch, ny)

        Raises
        ------
        ValueError
            Wrong shapes (also inside ``jax.jit``), ``T = 0`` or an invalid ``unroll``.
        TypeError
            Non-arrays, or a dtype other than the model's.
        """
        if not isinstance(unroll, bool) and (not isinstance(unroll, int) or unroll < 1):
            raise ValueError(f"{self.config.model}.simulate: `unroll` must be a positive integer or a "
                             f"bool; got unroll={unroll!r}.")
        if isinstance(unroll, bool):          # lax.scan's True is "all steps"; keep 1 != True for jit
            unroll = max(1, getattr(us, "shape", (1,))[0]) if unroll else 1
        self._check_eager("simulate", "x0", x0)
        self._check_eager("simulate", "us", us)
        return _simulate(self, x0, us, unroll=unroll)


_CLASSES = family_classes(JaxModel, __name__, "float32",       # registered by __init_subclass__
                          recurrent_bases=(JaxRecurrent,))

SandwichLayer = _CLASSES["SandwichLayer"]
LBDN = _CLASSES["LBDN"]
ContractingREN = _CLASSES["ContractingREN"]
LipschitzREN = _CLASSES["LipschitzREN"]
GeneralREN = _CLASSES["GeneralREN"]
PassiveREN = _CLASSES["PassiveREN"]
ContractingR2DN = _CLASSES["ContractingR2DN"]
LipschitzR2DN = _CLASSES["LipschitzR2DN"]
GeneralR2DN = _CLASSES["GeneralR2DN"]


def from_direct(config: ModelConfig, direct: Mapping[str, Any]) -> Any:
    """The JAX model with ``config`` and free parameters ``direct``.

    Parameters
    ----------
    config : ModelConfig
    direct : Mapping[str, Array]
        Canonical names to arrays of any backend (NumPy, torch, JAX, tracers included), cast to
        ``config.dtype``; shapes as :func:`r2dn.init.direct_shapes`.

    Returns
    -------
    The instance of the class named ``config.model``.

    Raises
    ------
    TypeError
        ``config`` is not a ModelConfig.
    ValueError
        Missing or extra names, a wrong shape, or float64 without JAX's 64-bit mode.
    """
    return _from_direct(_CLASSES, JaxModel, config, direct)


def convert(model: Any, *, dtype: str | None = None, check_finite: bool = True) -> Any:
    """A JAX copy of a model of any backend (NumPy, torch, JAX), with identical parameters.

    Parameters
    ----------
    model : r2dn model of any backend
    dtype : {"float32", "float64"}, optional
        Re-type the copy (default: the model's dtype).
    check_finite : bool
        Raise a ``ValueError`` naming the first parameter holding a NaN or an infinity.

    Returns
    -------
    The same class in :mod:`r2dn.jax`, on JAX's default device.
    """
    config = model.config if dtype is None else model.config.replace(dtype=dtype)
    direct = model.direct()
    if check_finite:
        for name, value in direct.items():
            if not np.all(np.isfinite(to_numpy(value))):
                raise ValueError(f"{config.model}: parameter `{name}` is not finite; pass "
                                 "check_finite=False to accept it.")
    return from_direct(config, direct)


def load(path: Any, *, check_finite: bool = True) -> Any:
    """The JAX model stored in an r2dn checkpoint (see :func:`r2dn.save`).

    Raises :class:`r2dn.errors.CheckpointError` for a bad file, ``FileNotFoundError`` for none.
    """
    return from_direct(*checkpoint.read(path, check_finite=check_finite))
