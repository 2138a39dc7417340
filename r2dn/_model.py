"""What every backend's models share: input checks, the calls into the spec, class generation.

A backend supplies a base class that owns the parameters (it must define ``_direct_arrays()``,
``_backend`` (its :class:`r2dn.backends.Backend` record), ``config`` and
``__init__(self, config, direct=None)``), dtype and device. Everything else the mixins need from
the framework (input device checks, the time loop, the REN equilibrium, activation kernels) is
read from the record, so there are no hooks to override. The base comes first in each class's
MRO; these mixins add the public API of DESIGN §2 behind it, calling :mod:`r2dn._spec` for every
formula, so no backend holds any maths. ``forward`` does the work and ``__call__`` calls it
(a ``torch.nn.Module`` base supplies its own ``__call__``, which calls the same ``forward``).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import numpy as np

from . import _spec
from .backends import Backend
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


def _leading(x: Any) -> Any:
    """The first dimension of ``x`` (None when ``x`` is not an array: its own check then fails)."""
    shape = getattr(x, "shape", None)
    return shape[0] if shape else None


class ModelMixin:
    """API shared by every model of every backend (DESIGN §2)."""

    config: ModelConfig
    _backend: Backend

    def __call__(self, *args: Any) -> Any:
        return self.forward(*args)

    def direct(self) -> dict[str, Any]:
        """The free parameters as a flat dict of canonical dotted names (checkpoint keys)."""
        return dict(self._direct_arrays())

    def explicit(self) -> Any:
        """The explicit parameters (a NamedTuple of arrays) built from the current direct ones."""
        return _spec.direct_to_explicit(self._direct_arrays(), self.config, xp=self._backend.xp)

    def _check(self, c: ModelConfig, method: str, args: tuple[tuple[str, Any, tuple, str], ...]
               ) -> None:
        """Check each ``(name, x, shape, shape_text)`` of a call: dtype, shape, then device."""
        owner = f"{c.model}.{method}"
        for name, x, shape, text in args:
            check_array(owner, name, x, shape, c.dtype, text)
        device_check = self._backend.check_device
        if device_check is not None:
            like = next(iter(self._direct_arrays().values()))
            for name, x, _, _ in args:
                device_check(owner, name, x, like)

    def __repr__(self) -> str:
        c = self.config
        sizes = (f"{c.in_features}, {c.hidden}, {c.out_features}" if c.family in ("lbdn", "sandwich")
                 else f"nu={c.nu}, nx={c.nx}, nv={c.nv}, ny={c.ny}")
        return f"{type(self).__module__}.{c.model}({sizes}, dtype={c.dtype})"


class RecurrentMixin(ModelMixin):
    """``model(x, u)``, ``simulate(x0, us)`` and ``init_state`` of REN and R2DN models."""

    def _run(self, c: ModelConfig, x0: Any, us: Any, **options: Any) -> tuple[Any, Any]:
        """Build the explicit matrices and the nonlinearity once, then hand the whole sequence to
        the backend's time loop (the one crossing into the backend per call)."""
        b = self._backend
        e = self.explicit()
        act = b.activation(c.activation)
        solver = b.equilibrium(c.activation, act) if c.family == "ren" else None
        return b.rollout(e, _spec.nonlinearity(e, act, xp=b.xp, solver=solver), x0, us, **options)

    def forward(self, x: Any, u: Any) -> tuple[Any, Any]:
        """One step: ``x (batch, nx)``, ``u (batch, nu)`` -> ``(x_next (batch, nx), y (batch, ny))``."""
        c = self.config
        batch = _leading(x)
        self._check(c, "forward", (("x", x, (None, c.nx), f"(batch, nx) with nx={c.nx}"),
                                   ("u", u, (batch, c.nu), f"(batch, nu) = ({batch}, {c.nu})")))
        x_next, ys = self._run(c, x, u[None, ...])
        return x_next, ys[0, ...]

    def _check_sequence(self, c: ModelConfig, x0: Any, us: Any) -> None:
        """The input checks of :meth:`simulate`."""
        batch = _leading(x0)
        self._check(c, "simulate", (("x0", x0, (None, c.nx), f"(batch, nx) with nx={c.nx}"),
                                    ("us", us, (None, batch, c.nu),
                                     f"(T, batch, nu) with batch={batch}, nu={c.nu}")))
        if us.shape[0] < 1:
            raise ValueError(f"{c.model}.simulate: `us` must hold at least one time step; got T=0.")

    def simulate(self, x0: Any, us: Any) -> tuple[Any, Any]:
        """Run from ``x0 (batch, nx)`` over inputs ``us (T, batch, nu)``; returns
        ``(x_T (batch, nx), ys (T, batch, ny))``. Explicit matrices are built once per call."""
        c = self.config
        self._check_sequence(c, x0, us)
        return self._run(c, x0, us)

    def init_state(self, batch: int) -> Any:
        """Zero state ``(batch, nx)`` with the model's dtype and device."""
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise ValueError(f"{self.config.model}.init_state: `batch` must be a positive integer; "
                             f"got {batch!r}.")
        ref = next(iter(self._direct_arrays().values()))
        return _spec._xp.zeros_like_shape((batch, self.config.nx), ref, xp=self._backend.xp)


class FeedforwardMixin(ModelMixin):
    """``model(u)`` of LBDN and Sandwich layers."""

    def forward(self, u: Any) -> Any:
        """``u (batch, in_features)`` -> ``y (batch, out_features)``."""
        c = self.config
        n = c.in_features
        self._check(c, "forward", (("u", u, (None, n), f"(batch, in_features) with in_features={n}"),))
        return _spec.feedforward(self.explicit(), self._backend.activation(c.activation))(u)


def family_classes(base: type, module: str, default_dtype: str,
                   extra_bases: tuple[type, ...] = (),
                   recurrent_bases: tuple[type, ...] = ()) -> dict[str, type]:
    """One final class per catalogue entry: ``(base, [*recurrent_bases,] mixin, *extra_bases)``.

    A torch backend passes ``extra_bases=(torch.nn.Module,)`` so the mixin's ``forward`` wins over
    ``nn.Module.forward``, and sets ``__call__ = nn.Module.__call__`` on its base. A backend whose
    recurrent models take options of their own (JAX's ``simulate(..., unroll=)``) passes the class
    defining them as ``recurrent_bases``: it comes before :class:`RecurrentMixin`.

    Each class's constructor has the signature of its ``r2dn.config`` constructor (so arguments
    and their validation live in one place) and calls ``base.__init__(self, config)``.
    """
    classes = {}
    for name, ctor in CONSTRUCTORS.items():
        mixins = ((FeedforwardMixin,) if name in FEEDFORWARD_FAMILIES
                  else (*recurrent_bases, RecurrentMixin))

        def __init__(self, *args, _ctor=ctor, **kwargs):
            base.__init__(self, _ctor(*args, default_dtype=default_dtype, **kwargs))

        sig = inspect.signature(ctor)
        params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)]
        params += [p for p in sig.parameters.values() if p.name != "default_dtype"]
        __init__.__signature__ = sig.replace(parameters=params, return_annotation=None)
        doc = (ctor.__doc__ or "") + f"\n\n``dtype=None`` means {default_dtype!r} in this backend."
        classes[name] = type(name, (base, *mixins, *extra_bases), {"__init__": __init__, "__doc__": doc,
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
