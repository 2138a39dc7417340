"""The backend record and the one registry of backends.

A backend is one folder (``backends/<name>/``) whose ``backend.py`` defines ``BACKEND``, a frozen
:class:`Backend` record: everything the framework-free core needs to know about an array framework
(its namespace, default dtype, conversions, input checks, time loop, REN equilibrium, the
conformance suite's adapter, and the ``call`` hook through which every model call enters the
backend once). The registry maps a name to the module holding that record and imports it only
when asked, so ``import r2dn`` loads no framework. Every switch on a backend name
(:func:`r2dn.backend`, :mod:`r2dn.porting`, the CLI, the conformance suite, the Julia bridge, the
tests) reads :func:`names` and :func:`get`; adding a backend is one folder plus one
:data:`BUILTIN` entry (or a :func:`register` call, as the tests do for array-api-strict).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import _spec
from ._spec import Activation
from ._spec._xp import Array, Namespace

Solver = Callable[[Array, Array, Any], Array]


def spec_equilibrium(xp: Namespace) -> Callable[[Any, Activation], Solver]:
    """The REN equilibrium factory of a backend with no custom gradient: the spec's forward
    substitution, ``(D11, v, plan) -> w`` with ``w = sigma(D11 w + v)`` (``plan``:
    :func:`r2dn._spec.substitution_plan` of D11, built once per rollout), differentiated (if at
    all) by
    the framework through the loop."""

    def factory(activation: Any, act: Activation) -> Solver:
        return lambda D11, v, plan: _spec.equilibrium(D11, v, act, xp=xp, plan=plan)

    return factory


def spec_rollout(xp: Namespace) -> Callable[..., tuple[Array, Array]]:
    """The time loop of a backend with none of its own: :func:`r2dn._spec.simulate_loop`."""

    def rollout(e: Any, nonlinearity: Callable[[Array], Array], x0: Array,
                us: Array, *, chunk: int | None = None) -> tuple[Array, Array]:
        # without autograd, checkpointed chunks change nothing: `chunk` is accepted and unused
        return _spec.simulate_loop(e, nonlinearity, x0, us, xp=xp)

    return rollout


@dataclass(frozen=True)
class Backend:
    """One array framework as the core sees it.

    Attributes
    ----------
    name : str
        Registry name, e.g. ``"torch"``.
    module : str
        The public module of its models, e.g. ``"r2dn.torch"`` (with ``from_direct``, ``convert``
        and ``load``).
    xp : namespace
        The array-API namespace the spec runs on.
    default_dtype : str
        ``dtype=None`` in a constructor means this.
    from_numpy : callable
        ``from_numpy(a: np.ndarray) -> Array``: a NumPy array as an array of this backend, same
        dtype, default device.
    asarray : callable
        ``asarray(a: np.ndarray, like: Array) -> Array``: a NumPy array as an array of this
        backend with the dtype and device of ``like`` (a parameter of the model).
    all_finite : callable
        ``all_finite(x) -> bool``: no NaN or infinity in ``x``.
    rollout : callable
        ``rollout(e, nonlinearity, x0, us, **options) -> (x_T, ys)``: the time loop.
    equilibrium : callable
        ``equilibrium(activation, act) -> solver``: the REN equilibrium ``(D11, v, plan) -> w`` this
        backend differentiates (``activation`` is ``config.activation``, ``act`` the spec's
        :class:`~r2dn._spec.Activation` of it).
    adapter : callable
        ``adapter() -> type``: the conformance suite's adapter class (imported on demand).
    call : callable
        ``call(model, method, args, chunk=None) -> outputs``: the one hand-over of a model call
        (``model(u)``, ``model(x, u)``, ``model(x0, us)``, ``simulate``) from the core's mixins to
        the backend. It reads the model's config and parameters, adds the framework's guards and
        runs :func:`r2dn._model.execute` (the checks, the explicit map, the rollout);
        :func:`r2dn._model.call` for a backend with nothing to add.
    check_device : callable or None
        ``check_device(owner, name, x, like)`` raises unless input ``x`` can meet parameter
        ``like`` (a tensor on its device); None for a backend without devices.
    kernels : Mapping[str, callable]
        The framework's own kernel for a named activation (same values and slopes as the spec's).
    affine : callable
        ``affine(x, W, c) -> x @ W + c`` (:data:`r2dn._spec.Affine`) for the loop body's and the
        LBDN layers' products: the framework's fused kernel, or the spec's two operations.
    equilibrium_block : int
        Most neurons per block of the REN equilibrium's substitutions
        (:func:`r2dn._spec.substitution_plan`): a compiled loop (JAX) traces one block step of
        this many neurons; an eager loop (torch) pays a few operator calls per block.
    """

    name: str
    module: str
    xp: Namespace
    default_dtype: str
    from_numpy: Callable[[np.ndarray], Array]
    asarray: Callable[[np.ndarray, Array], Array]
    all_finite: Callable[[Array], bool]
    rollout: Callable[..., tuple[Array, Array]]
    equilibrium: Callable[[Any, Activation], Solver]
    adapter: Callable[[], type]
    call: Callable[..., Any]
    check_device: Callable[[str, str, Any, Array], None] | None = None
    kernels: Mapping[str, Callable[[Array], Array]] = field(default_factory=dict)
    affine: _spec.Affine = _spec.affine
    equilibrium_block: int = _spec.BLOCK

    def activation(self, activation: Any) -> Activation:
        """The spec's activation of ``config.activation``, with the backend's kernel if any."""
        act = _spec.activation(activation, xp=self.xp)
        if isinstance(activation, str) and activation in self.kernels:
            return act._replace(fn=self.kernels[activation])
        return act


#: the shipped backends: name -> module defining ``BACKEND`` (imported on first use).
BUILTIN: dict[str, str] = {
    "numpy": "r2dn.numpy.backend",
    "torch": "r2dn.torch.backend",
    "jax": "r2dn.jax.backend",
}
_registry: dict[str, str | Backend] = dict(BUILTIN)


def register(backend: Backend) -> None:
    """Add (or replace) a backend under ``backend.name``: the hook a test or a plug-in uses."""
    if not isinstance(backend, Backend):
        raise TypeError(f"r2dn.backends.register: expected a Backend record; got "
                        f"{type(backend).__name__}.")
    _registry[backend.name] = backend


def unregister(name: str) -> None:
    """Remove a backend added with :func:`register` (a shipped one is restored)."""
    if name in BUILTIN:
        _registry[name] = BUILTIN[name]
    else:
        _registry.pop(name, None)


def names() -> tuple[str, ...]:
    """Every registered backend name, shipped ones first."""
    return tuple(_registry)


def check_name(owner: str, name: Any) -> str:
    """``name`` if it is a registered backend, else a ``ValueError`` listing the choices."""
    if name not in _registry:
        raise ValueError(f"{owner}: `backend` must be one of {', '.join(map(repr, names()))}; "
                         f"got {name!r}.")
    return name


def get(name: str) -> Backend:
    """The record of backend ``name`` (importing its framework on first use)."""
    entry = _registry[check_name("r2dn.backends.get", name)]
    if isinstance(entry, str):
        entry = importlib.import_module(entry).BACKEND
        _registry[name] = entry
    return entry


def module(name: str) -> Any:
    """The public module of backend ``name`` (``r2dn.torch`` for ``"torch"``)."""
    return importlib.import_module(get(name).module)
