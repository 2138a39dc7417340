"""Adapters: what the conformance runner needs from each backend, behind one small interface.

Each adapter builds a model from ``(config, direct)`` with the backend's own ``from_direct`` and
evaluates, in one go, everything the checks compare: the explicit matrices (flattened with
:func:`r2dn._spec.flatten_explicit`), one step ``model(x, u)``, a rollout ``model.simulate(x0, us)``
and the gradient of the fixed loss ``sum(wy * ys) + sum(wx * x_T)`` (feed-forward:
``sum(wy * model(u))``) with respect to every free parameter. Results come back as float64 NumPy.

* ``numpy``: the reference backend itself (its float32 models are checked like any other); no
  gradients.
* ``torch`` (``r2dn.torch.conformance``): eager; gradients by ``loss.backward()`` keyed by
  ``named_parameters()`` (which must equal ``direct()``'s keys: a mismatch is a failure).
* ``jax`` (``r2dn.jax.conformance``): one ``jax.jit`` of the whole evaluation per model
  configuration, with ``jax.value_and_grad`` w.r.t. the model pytree; runs with JAX's 64-bit
  mode enabled *inside* :meth:`Adapter.context` only (the suite never changes JAX's global
  configuration).
* ``julia``: RobustNeuralNetworks.jl through :mod:`r2dn.julia` (rollouts of recurrent models and
  LBDN evaluations), when ``r2dn.julia.available()``.

The array backends and their adapters come from the registry (:mod:`r2dn.backends`: each
record's ``adapter``); the Julia bridge, a reference rather than an array backend, is listed in
:data:`BRIDGES`. :func:`load` returns the adapters that import and the reason for each that does
not.
"""

from __future__ import annotations

import contextlib
import inspect
import platform
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np

import r2dn
from r2dn import _spec, backends
from r2dn._model import to_numpy
from r2dn.config import ModelConfig

from .cases import CaseInputs

class Outputs(NamedTuple):
    """What one backend computed for one case (float64 NumPy; None where not computed).

    explicit : dict name -> array (flattened explicit parameters)
    step : (x1, y1) of ``model(x, u)`` (recurrent) or None
    rollout : (x_T, ys) of ``model.simulate(x0, us)``, or ``(None, y)`` of ``model(u)`` (feed-forward)
    grads : dict name -> array, the gradient of the case's loss, or None
    dtypes : dtype names of what the backend returned (all must be the model's dtype)
    explicit_tree : the backend's explicit NamedTuple, when the adapter keeps it
    """

    explicit: dict[str, np.ndarray] | None
    step: tuple[np.ndarray, np.ndarray] | None
    rollout: tuple[np.ndarray | None, np.ndarray] | None
    grads: dict[str, np.ndarray] | None
    dtypes: set[str]
    explicit_tree: Any = None


def np64(x: Any) -> np.ndarray:
    return np.asarray(to_numpy(x), dtype=np.float64)


def dtype_names(*trees: Any) -> set[str]:
    out = set()
    for t in trees:
        if t is None:
            continue
        if isinstance(t, Mapping):
            out |= dtype_names(*t.values())
        elif isinstance(t, (tuple, list)):
            out |= dtype_names(*t)
        else:
            out.add(str(t.dtype).rsplit(".", 1)[-1])
    return out


def explicit_dict(model: Any) -> dict[str, Any]:
    return _spec.flatten_explicit(model.explicit())


class Adapter:
    """One backend as the runner sees it. Subclasses set ``name`` and ``autodiff``."""

    name = "?"
    autodiff = False
    #: what this backend can compute: a subset of ("explicit", "step", "rollout", "grad")
    computes: tuple[str, ...] = ("explicit", "step", "rollout")

    def __init__(self, device: str = "cpu") -> None:
        self.device = device

    def describe(self) -> str:
        return self.name

    def context(self) -> contextlib.AbstractContextManager:
        """Entered around every use of the backend's models (JAX: 64-bit mode and device)."""
        return contextlib.nullcontext()

    def supports(self, config: ModelConfig) -> str | None:
        """None when the backend can run ``config``, else the reason it cannot."""
        return None

    def build(self, config: ModelConfig, direct: Mapping[str, np.ndarray]) -> Any:
        raise NotImplementedError

    def evaluate(self, model: Any, inputs: CaseInputs) -> Outputs:
        raise NotImplementedError

    def certify(self, model: Any, out: Outputs) -> Any:
        """``r2dn.certify`` of the backend's model."""
        return r2dn.certify(model)

    def adversarial_gain(self, model: Any, *, steps: int, horizon: int, batch: int,
                         seed: int) -> float | None:
        """The backend's ``empirical_gain`` (adversarial ascent), or None when it has none."""
        return None

    def release(self) -> None:
        """Free what the finished cases left behind (called between cases of a long run)."""


class ForwardAdapter(Adapter):
    """A registered backend without autodiff in the suite: explicit matrices, step and rollout.

    Models come from the backend's ``from_direct`` and inputs from its record's ``from_numpy``
    (:mod:`r2dn.backends`), so any array backend registered under ``name`` runs the forward
    checks through this class.
    """

    def __init__(self, device: str = "cpu") -> None:
        super().__init__("cpu")
        self.record = backends.get(self.name)
        self.rn = backends.module(self.name)

    def build(self, config, direct):
        return self.rn.from_direct(config, direct)

    def evaluate(self, model, inputs):
        c = model.config
        cast = lambda a: self.record.from_numpy(np.asarray(a, dtype=c.dtype))  # noqa: E731
        e = explicit_dict(model)
        if not c.is_recurrent:
            y = model(cast(inputs.u))
            return Outputs({k: np64(v) for k, v in e.items()}, None, (None, np64(y)), None,
                           dtype_names(e, y))
        step = model(cast(inputs.x), cast(inputs.u))
        roll = model.simulate(cast(inputs.x0), cast(inputs.us))
        return Outputs({k: np64(v) for k, v in e.items()}, tuple(map(np64, step)),
                       tuple(map(np64, roll)), None, dtype_names(e, step, roll))


class NumpyAdapter(ForwardAdapter):
    """The reference backend itself (its float32 models are checked like any other)."""

    name = "numpy"


def call_gain(fn: Callable, model: Any, *, steps: int, horizon: int, batch: int,
               seed: int) -> float:
    """Call a backend's ``empirical_gain`` with the keywords its signature has; a float."""
    sig = inspect.signature(fn).parameters
    kw = {k: v for k, v in dict(steps=steps, horizon=horizon, batch=batch, seed=seed).items()
          if k in sig}
    out = fn(model, **kw)
    return float(getattr(out, "gain", out))


class ExplicitView:
    """What :func:`r2dn.certify` reads (``config`` and ``explicit()``), for matrices already built."""

    def __init__(self, config: ModelConfig, explicit: Any) -> None:
        self.config, self._explicit = config, explicit

    def explicit(self) -> Any:
        return self._explicit


class JuliaAdapter(Adapter):
    """RobustNeuralNetworks.jl through juliacall: rollouts (REN, R2DN) and LBDN evaluations."""

    name = "julia"
    computes = ("rollout",)

    def __init__(self, device: str = "cpu") -> None:
        super().__init__("cpu")
        import r2dn.julia as rjl
        import r2dn.numpy as rn
        if not rjl.available():
            raise RuntimeError(rjl.reason())
        self.rjl, self.rn = rjl, rn

    def describe(self):
        return f"julia: {self.rjl.reason()}"

    def supports(self, config):
        try:
            self.rjl.check_julia_compatible(config, config.model)
        except ValueError as err:
            return str(err)
        if config.family == "sandwich":
            return "a lone SandwichLayer has no RobustNeuralNetworks.jl counterpart"
        return None

    def build(self, config, direct):
        return self.rn.from_direct(config, direct)

    def evaluate(self, model, inputs):
        c = model.config
        cast = lambda a: np.asarray(a, dtype=c.dtype)  # noqa: E731
        if not c.is_recurrent:
            y = self.rjl.evaluate_in_julia(model, cast(inputs.u))
            return Outputs(None, None, (None, np64(y)), None, set())
        xT, ys = self.rjl.simulate_in_julia(model, cast(inputs.x0), cast(inputs.us))
        return Outputs(None, None, (np64(xT), np64(ys)), None, set())


#: references the suite compares against that are not array backends: name -> adapter class.
BRIDGES: dict[str, type[Adapter]] = {"julia": JuliaAdapter}


def known_names() -> tuple[str, ...]:
    """Every backend name the suite knows, in report order: the registry's, then the bridges."""
    return (*backends.names(), *BRIDGES)


def load(names: tuple[str, ...] | list[str] | None = None, *, device: str = "cpu",
         jax_fast_compile: bool = True) -> tuple[dict[str, Adapter], dict[str, str]]:
    """The adapters of ``names`` (default: all) that work here, and ``{name: reason}`` for those
    that do not.

    ``device`` (``"cpu"``, ``"cuda"``, ``"cuda:1"``) applies to torch (``.to(device)``) and JAX
    (``jax.device_put`` and ``jax.default_device``); NumPy and Julia always run on the CPU.
    ``jax_fast_compile`` goes to each adapter that takes ``fast_compile``.
    """
    known = known_names()
    wanted = known if names is None else tuple(names)
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise ValueError(f"conformance: unknown backend(s) {unknown}; choose from "
                         f"{', '.join(known)}.")
    adapters, absent = {}, {}
    for name in known:
        if name not in wanted:
            continue
        try:
            cls = BRIDGES[name] if name in BRIDGES else backends.get(name).adapter()
        except Exception as err:  # noqa: BLE001 - any import failure makes the backend absent
            absent[name] = f"backend {name!r} failed to import: {type(err).__name__}: {err}"
            continue
        try:
            kw = ({"fast_compile": jax_fast_compile}
                  if "fast_compile" in inspect.signature(cls).parameters else {})
            adapters[name] = cls(device, **kw)
        except Exception as err:  # noqa: BLE001
            absent[name] = f"{type(err).__name__}: {err}" if not isinstance(err, RuntimeError) \
                else str(err)
    return adapters, absent


def machine() -> str:
    """One line about the machine, for reports."""
    return f"{platform.machine()} {platform.system()}, Python {platform.python_version()}, " \
           f"NumPy {np.__version__}"
