"""JAX models: immutable pytrees whose leaves are the free parameters and whose static data is the
:class:`~r2dn.config.ModelConfig`.

No Flax or Equinox: every subclass of :class:`JaxModel` (the generated catalogue classes, and any
user subclass) is registered with ``jax.tree_util``, so a model passes through ``jax.jit``,
``jax.grad`` (the gradient is a model of the same class holding the cotangents), ``jax.vmap`` and
``optax.apply_updates``. The tree structure holds the config without the settings read only when
the parameters are drawn (``seed`` and ``init``, :data:`INIT_ONLY_FIELDS`): models of one
architecture share a treedef whatever their seeds, so a jitted function compiles once for all of
them and :func:`ensemble` stacks N of them for ``jax.vmap``.

``explicit()``, ``simulate()`` and ``model(...)`` are compiled with ``jax.jit`` (one compilation
per config and input shape), so eager use does not dispatch the spec op by op; inside a user's
``jit``, ``grad`` or ``vmap`` they are traced as nested calls. Shapes and dtypes are checked while
tracing, so a wrong input raises at once, also under the user's ``jit``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from r2dn import checkpoint
from r2dn._model import Catalogue, ModelMixin, from_direct as _from_direct, to_numpy
from r2dn.config import ModelConfig
from r2dn.init import direct_shapes, init_direct

from .backend import BACKEND, call
from .rollout import full_precision

#: ModelConfig fields read only when the parameters are drawn (by :func:`r2dn.init.init_direct`).
#: They are left out of the static tree structure (reset to their defaults there), so models that
#: differ only in them share a treedef: one compilation for every seed, and stackable ensembles.
INIT_ONLY_FIELDS = ("seed", "init")
_INIT_DEFAULTS = {f.name: f.default for f in dataclasses.fields(ModelConfig)
                  if f.name in INIT_ONLY_FIELDS}


def structure_config(config: ModelConfig) -> ModelConfig:
    """``config`` with its init-only fields (:data:`INIT_ONLY_FIELDS`) at their defaults: the
    static part of a JAX model's tree, which decides what a computation compiles to."""
    return config.replace(**_INIT_DEFAULTS)


def _check_dtype_available(config: ModelConfig) -> None:
    if jax.dtypes.canonicalize_dtype(np.dtype(config.dtype)) != np.dtype(config.dtype):
        raise ValueError(
            f"{config.model}: `dtype`={config.dtype!r} needs JAX's 64-bit mode, which is off. "
            "Either call jax.config.update('jax_enable_x64', True) first (r2dn never changes JAX's "
            "global configuration), or ask for float32: dtype=\"float32\" (r2dn.jax.load(path, "
            "dtype=\"float32\"), r2dn.jax.convert(model, dtype=\"float32\")).")


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


class JaxModel:
    """Parameter holder of the JAX backend (the public classes add the API of docs/getting-started.md#model-api).

    Leaves: the free parameters in the order of :func:`r2dn.init.direct_shapes`, keyed by their
    canonical names (``jax.tree_util.keystr`` gives ``['network.layers.0.XY']``). Static data:
    ``config`` without its init-only fields (:func:`structure_config`), so a model rebuilt from
    its leaves by a JAX transformation (the output of ``jit``, a gradient, ``optax``'s update)
    reports ``seed=0, init="random"``: its parameters no longer come from a seed. Instances are
    immutable; update them functionally (``optax``,
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
        object.__setattr__(self, "_static", (structure_config(config), tuple(shapes)))
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
        return tuple(zip(keys, (self._params[n] for n in self._names))), self._static

    def _tree_flatten(self):
        return tuple(self._params[n] for n in self._names), self._static

    @classmethod
    def _tree_unflatten(cls, aux: tuple[ModelConfig, tuple[str, ...]], leaves) -> "JaxModel":
        # Transformations put tracers, None or sentinels in the leaves: no checks here.
        config, names = aux
        model = object.__new__(cls)
        object.__setattr__(model, "config", config)
        object.__setattr__(model, "_static", aux)
        object.__setattr__(model, "_names", names)
        object.__setattr__(model, "_params", dict(zip(names, leaves)))
        return model

    # -- what the mixins need ------------------------------------------------------------------
    def _direct_arrays(self) -> dict[str, jax.Array]:
        return self._params

    def __call__(self, *args: Any) -> Any:
        # optax.multi_transform(transforms, labels) calls a callable `labels` on the parameters:
        # a model holding labels (str leaves) called on a model of its structure is that tree.
        if (len(args) == 1 and isinstance(args[0], JaxModel) and self._params
                and all(isinstance(v, str) for v in self._params.values())
                and jax.tree.structure(args[0]) == jax.tree.structure(self)):
            return self
        return self.forward(*args)

    def explicit(self) -> Any:
        """The explicit parameters (a NamedTuple of arrays, a pytree) from the current direct ones.

        Compiled once per config; full-precision matmuls. Returns ``RENExplicit``,
        ``R2DNExplicit``, ``LBDNExplicit`` or ``SandwichExplicit`` (see :mod:`r2dn._spec`).
        """
        return _explicit(self)


class JaxRecurrent:
    """``simulate`` of the recurrent JAX classes: compiled, with ``lax.scan``'s ``unroll`` and
    chunked checkpointing."""

    def simulate(self, x0: Any, us: Any, *, unroll: int | bool = 1,
                 chunk: int | None = None) -> tuple[Any, Any]:
        """Run the model from ``x0`` over the inputs ``us`` with ``lax.scan``.

        The explicit matrices are built once per call, the input terms are one product before the
        loop and the outputs one product after it; every matmul is full precision. Compiled once
        per config, input shape, ``unroll`` and ``chunk``; works under ``jax.jit``, ``jax.grad``
        and ``jax.vmap``.

        Parameters
        ----------
        x0 : jax.Array (batch, nx)
            Initial state, of the model's dtype.
        us : jax.Array (T, batch, nu)
            Inputs, time-major, of the model's dtype; T >= 1.
        unroll : int or bool, optional
            Time steps unrolled per loop iteration (``lax.scan``'s ``unroll``; ``True`` unrolls all).
        chunk : int, optional
            Run the sequence in chunks of ``chunk`` steps, each under ``jax.checkpoint``: a
            gradient keeps only the state between chunks and recomputes each chunk's steps in the
            backward pass, so its memory grows with ``T / chunk + chunk`` steps instead of ``T``
            (the same outputs and gradients, about one more forward pass of time). ``None``: one
            loop.

        Returns
        -------
        x_T : jax.Array (batch, nx)
        ys : jax.Array (T, batch, ny)

        Raises
        ------
        ValueError
            Wrong shapes (also inside ``jax.jit``), ``T = 0``, or an invalid ``unroll`` or
            ``chunk``.
        TypeError
            Non-arrays, or a dtype other than the model's.
        """
        if not isinstance(unroll, bool) and (not isinstance(unroll, int) or unroll < 1):
            raise ValueError(f"{self.config.model}.simulate: `unroll` must be a positive integer "
                             f"or a bool; got unroll={unroll!r}.")
        if isinstance(unroll, bool):      # lax.scan's True is "all steps"; keep 1 != True for jit
            unroll = max(1, getattr(us, "shape", (1,))[0]) if unroll else 1
        return call(self, "simulate", (x0, us), chunk, unroll=unroll)


#: one class per registered family (``r2dn.jax.LipschitzR2DN``, ...), generated on first use
#: (each registered as a pytree by ``JaxModel.__init_subclass__``).
CLASSES = Catalogue(JaxModel, __name__, "float32", recurrent_bases=(JaxRecurrent,))


def __getattr__(name: str) -> type:
    return CLASSES.attribute(name, __name__)


def __dir__() -> list[str]:
    return sorted({*globals(), *CLASSES})


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
    return _from_direct(CLASSES, JaxModel, config, direct)


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


def load(path: Any, *, dtype: str | None = None, check_finite: bool = True) -> Any:
    """The JAX model stored in an r2dn checkpoint (see :func:`r2dn.save`).

    Parameters
    ----------
    path : str or os.PathLike
    dtype : {"float32", "float64"}, optional
        Re-type the model (default: the stored dtype). A float64 file (the NumPy backend's default)
        needs JAX's 64-bit mode; without it, ``dtype="float32"`` loads it in single precision.
    check_finite : bool
        Raise a ``ValueError`` naming the first parameter holding a NaN or an infinity.

    Raises
    ------
    r2dn.errors.CheckpointError
        A bad file.
    FileNotFoundError
        No file.
    ValueError
        A float64 model without JAX's 64-bit mode (the message names ``dtype="float32"``).
    """
    config, direct = checkpoint.read(path, check_finite=check_finite)
    return from_direct(config if dtype is None else config.replace(dtype=dtype), direct)


def ensemble(model: type | ModelConfig, seeds: Sequence[int], *args: Any, **kwargs: Any) -> Any:
    """``len(seeds)`` models of one architecture, stacked: every leaf gains a leading axis.

    The models differ only in their seed, so they share a treedef and the stack is one model
    pytree to map over with ``jax.vmap`` (``jax.vmap(lambda m, x: m.simulate(...))(models, x)``);
    index member ``i`` with ``jax.tree.map(lambda p: p[i], models)``. Drawing happens in NumPy
    (as for one model), so member ``i`` equals ``cls(*args, seed=seeds[i], **kwargs)`` bit for bit.

    Parameters
    ----------
    model : a model class of :mod:`r2dn.jax` (e.g. ``r2dn.jax.LipschitzR2DN``) or a ModelConfig
    seeds : sequence of int
    *args, **kwargs
        The class's constructor arguments except ``seed`` (none with a config).

    Returns
    -------
    A model of the class whose leaves have shape ``(len(seeds), *shape)``.
    """
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("ensemble: `seeds` must hold at least one seed; got none.")
    if "seed" in kwargs:
        raise TypeError("ensemble: pass the seeds as `seeds`, not `seed`.")
    if isinstance(model, ModelConfig):
        if args or kwargs:
            raise TypeError("ensemble: a ModelConfig takes no constructor arguments; got "
                            f"{args!r} and {kwargs!r}.")
        members = [from_direct(model.replace(seed=s), init_direct(model.replace(seed=s)))
                   for s in seeds]
    else:
        members = [model(*args, seed=s, **kwargs) for s in seeds]
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *members)
