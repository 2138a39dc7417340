"""What every backend's models share: input checks, the calls into the spec, class generation.

A backend supplies a base class that owns the parameters (it must define ``_direct_arrays()``,
the namespace ``_xp`` and ``__init__(self, config, direct=None)``), dtype and device, and may
override the hooks ``_check_device``, ``_rollout`` and ``_solver``. The base comes first in each
class's MRO; these mixins add the public API of DESIGN §2 behind it, calling :mod:`r2dn._spec` for
every formula, so no backend holds any maths. ``forward`` does the work and ``__call__`` calls it
(a ``torch.nn.Module`` base supplies its own ``__call__``, which calls the same ``forward``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from . import _spec
from .config import CONSTRUCTORS, FEEDFORWARD_FAMILIES, ModelConfig

FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")


def dtype_name(x: Any) -> str:
    """``"float64"`` for a NumPy, torch, JAX or array-api-strict float64 array, and so on."""
    return str(x.dtype).rsplit(".", 1)[-1]


def to_numpy(x: Any) -> np.ndarray:
    """Any backend's array as a NumPy array (torch tensors are detached and moved to the CPU)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu()
    return np.asarray(x)


def check_array(owner: str, name: str, x: Any, shape: tuple[Any, ...], dtype: str,
                shape_text: str) -> None:
    """Raise a clear error unless ``x`` is a floating array of the model's dtype and ``shape``.

    ``shape`` holds ints and ``None`` for free dimensions; ``shape_text`` is its description, e.g.
    ``"(batch, nx) with nx=3"``.
    """
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        raise TypeError(f"{owner}: `{name}` must be an array; got {type(x).__name__}.")
    got = dtype_name(x)
    if got not in FLOAT_DTYPES:
        raise TypeError(f"{owner}: `{name}` must be a floating array of dtype {dtype}; got dtype {got}.")
    if got != dtype:
        raise TypeError(f"{owner}: `{name}` has dtype {got} but the model is {dtype}; cast the input "
                        f"or build the model with dtype={got!r}.")
    s = tuple(x.shape)
    if len(s) != len(shape) or any(w is not None and w != g for w, g in zip(shape, s)):
        raise ValueError(f"{owner}: `{name}` must have shape {shape_text}; got {s}.")


class ModelMixin:
    """API shared by every model of every backend (DESIGN §2)."""

    config: ModelConfig
    _xp: Any

    def __call__(self, *args: Any) -> Any:
        return self.forward(*args)

    def _check_device(self, name: str, x: Any) -> None:
        """Backends with devices raise when ``x`` is not on the model's device."""

    def direct(self) -> dict[str, Any]:
        """The free parameters as a flat dict of canonical dotted names (checkpoint keys)."""
        return dict(self._direct_arrays())

    def explicit(self) -> Any:
        """The explicit parameters (a NamedTuple of arrays) built from the current direct ones."""
        return _spec.direct_to_explicit(self._direct_arrays(), self.config, xp=self._xp)

    def _activation(self) -> _spec.Activation:
        return _spec.activation(self.config.activation, xp=self._xp)

    def _check(self, method: str, name: str, x: Any, shape: tuple[Any, ...], text: str) -> None:
        check_array(f"{self.config.model}.{method}", name, x, shape, self.config.dtype, text)
        self._check_device(name, x)

    def __repr__(self) -> str:
        c = self.config
        sizes = (f"{c.in_features}, {c.hidden}, {c.out_features}" if c.family in ("lbdn", "sandwich")
                 else f"nu={c.nu}, nx={c.nx}, nv={c.nv}, ny={c.ny}")
        return f"{type(self).__module__}.{c.model}({sizes}, dtype={c.dtype})"


class RecurrentMixin(ModelMixin):
    """``model(x, u)``, ``simulate(x0, us)`` and ``init_state`` of REN and R2DN models."""

    def _solver(self) -> Callable[[Any, Any], Any] | None:
        """A backend's custom-gradient REN equilibrium ``(D11, v) -> w``, or None for the spec's."""
        return None

    def _rollout(self, e: Any, nonlinearity: Callable, x0: Any, us: Any, *,
                 chunk: int | None = None) -> tuple[Any, Any]:
        """The time loop; backends override (JAX uses lax.scan, torch checkpoints ``chunk``s).

        Without autograd ``chunk`` changes nothing, so this plain loop ignores it."""
        return _spec.simulate_loop(e, nonlinearity, x0, us, xp=self._xp)

    def _prepare(self):
        e = self.explicit()
        return e, _spec.nonlinearity(e, self._activation(), xp=self._xp, solver=self._solver())

    def forward(self, x: Any, u: Any, *, chunk: int | None = None) -> tuple[Any, Any]:
        """One step, or a whole sequence when ``u`` is 3-D (the same call as :meth:`simulate`).

        ``x (batch, nx)``, ``u (batch, nu)`` -> ``(x_next (batch, nx), y (batch, ny))``;
        ``x0 (batch, nx)``, ``us (T, batch, nu)`` -> ``(x_T (batch, nx), ys (T, batch, ny))``.
        Wrappers that act on the module's call (DDP, FSDP, hooks) see the whole sequence.
        """
        if getattr(u, "ndim", None) == 3:
            return self._sequence("forward", x, u, chunk)
        if chunk is not None:
            raise ValueError(f"{self.config.model}.forward: `chunk` applies to a sequence "
                             f"`u (T, batch, nu)`; got a 2-D `u` (one step) with chunk={chunk!r}.")
        c = self.config
        self._check("forward", "x", x, (None, c.nx), f"(batch, nx) with nx={c.nx}")
        self._check("forward", "u", u, (x.shape[0], c.nu), f"(batch, nu) = ({x.shape[0]}, {c.nu})")
        x_next, ys = self._rollout(*self._prepare(), x, u[None, ...])
        return x_next, ys[0, ...]

    def simulate(self, x0: Any, us: Any, *, chunk: int | None = None) -> tuple[Any, Any]:
        """Run from ``x0 (batch, nx)`` over inputs ``us (T, batch, nu)``; returns
        ``(x_T (batch, nx), ys (T, batch, ny))``. Explicit matrices are built once per call.

        ``chunk=K`` (a positive int) runs the rollout in chunks of K steps; where the backend
        records gradients it keeps only each chunk's first state and recomputes the chunk in the
        backward pass (memory grows with T/K + K instead of T; same outputs and gradients).
        """
        return self._sequence("simulate", x0, us, chunk)

    def _sequence(self, method: str, x0: Any, us: Any, chunk: int | None) -> tuple[Any, Any]:
        self._check_sequence(method, x0, us, chunk)
        if chunk is None:
            return self._rollout(*self._prepare(), x0, us)
        return self._rollout(*self._prepare(), x0, us, chunk=chunk)

    def _check_sequence(self, method: str, x0: Any, us: Any, chunk: int | None) -> None:
        """Raise a clear error for a bad ``x0``, ``us`` or ``chunk`` of ``method``."""
        c = self.config
        self._check(method, "x0", x0, (None, c.nx), f"(batch, nx) with nx={c.nx}")
        self._check(method, "us", us, (None, x0.shape[0], c.nu),
                    f"(T, batch, nu) with batch={x0.shape[0]}, nu={c.nu}")
        if us.shape[0] < 1:
            raise ValueError(f"{c.model}.{method}: `us` must hold at least one time step; got T=0.")
        if chunk is not None and (isinstance(chunk, bool) or not isinstance(chunk, int)
                                  or chunk < 1):
            raise ValueError(f"{c.model}.{method}: `chunk` must be a positive integer (time steps "
                             f"per checkpointed chunk) or None; got chunk={chunk!r}.")

    def init_state(self, batch: int) -> Any:
        """Zero state ``(batch, nx)`` with the model's dtype and device."""
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise ValueError(f"{self.config.model}.init_state: `batch` must be a positive integer; "
                             f"got {batch!r}.")
        ref = next(iter(self._direct_arrays().values()))
        return _spec._xp.zeros_like_shape((batch, self.config.nx), ref, xp=self._xp)


class FeedforwardMixin(ModelMixin):
    """``model(u)`` of LBDN and Sandwich layers."""

    def forward(self, u: Any) -> Any:
        """``u (batch, in_features)`` -> ``y (batch, out_features)``."""
        n = self.config.in_features
        self._check("forward", "u", u, (None, n), f"(batch, in_features) with in_features={n}")
        return _spec.feedforward(self.explicit(), self._activation())(u)


def family_classes(base: type, module: str, default_dtype: str,
                   extra_bases: tuple[type, ...] = ()) -> dict[str, type]:
    """One final class per catalogue entry: ``(base, mixin, *extra_bases)``.

    A torch backend passes ``extra_bases=(torch.nn.Module,)`` so the mixin's ``forward`` wins over
    ``nn.Module.forward``, and sets ``__call__ = nn.Module.__call__`` on its base.

    Each class's constructor has the signature of its ``r2dn.config`` constructor (so arguments
    and their validation live in one place) and calls ``base.__init__(self, config)``.
    """
    classes = {}
    for name, ctor in CONSTRUCTORS.items():
        mixin = FeedforwardMixin if name in FEEDFORWARD_FAMILIES else RecurrentMixin

        def __init__(self, *args, _ctor=ctor, **kwargs):
            base.__init__(self, _ctor(*args, default_dtype=default_dtype, **kwargs))

        sig = inspect.signature(ctor)
        params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)]
        params += [p for p in sig.parameters.values() if p.name != "default_dtype"]
        __init__.__signature__ = sig.replace(parameters=params, return_annotation=None)
        doc = (ctor.__doc__ or "") + f"\n\n``dtype=None`` means {default_dtype!r} in this backend."
        classes[name] = type(name, (base, mixin, *extra_bases), {"__init__": __init__, "__doc__": doc,
                                                  "__module__": module})
    return classes


def from_direct(classes: Mapping[str, type], base: type, config: ModelConfig,
                direct: Mapping[str, Any]) -> Any:
    """A model of ``classes`` with the given config and free parameters (any backend's arrays)."""
    if not isinstance(config, ModelConfig):
        raise TypeError(f"from_direct: `config` must be a ModelConfig; got {type(config).__name__}.")
    model = object.__new__(classes[config.model])
    base.__init__(model, config, direct)
    return model
