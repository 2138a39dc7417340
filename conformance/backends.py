"""Adapters: what the conformance runner needs from each backend, behind one small interface.

Each adapter builds a model from ``(config, direct)`` with the backend's own ``from_direct`` and
evaluates, in one go, everything the checks compare: the explicit matrices (flattened with
:func:`r2dn._spec.flatten_explicit`), one step ``model(x, u)``, a rollout ``model.simulate(x0, us)``
and the gradient of the fixed loss ``sum(wy * ys) + sum(wx * x_T)`` (feed-forward:
``sum(wy * model(u))``) with respect to every free parameter. Results come back as float64 NumPy.

* ``numpy``: the reference backend itself (its float32 models are checked like any other); no
  gradients.
* ``torch``: eager; gradients by ``loss.backward()`` keyed by ``named_parameters()`` (which must
  equal ``direct()``'s keys: a mismatch is reported as a failure).
* ``jax``: one ``jax.jit`` of the whole evaluation per model configuration, with
  ``jax.value_and_grad`` w.r.t. the model pytree; runs with JAX's 64-bit mode enabled *inside*
  :meth:`Adapter.context` only (the suite never changes JAX's global configuration).
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

#: compiler options of the quick tier's JAX compilations on CPU: no LLVM optimisation and no
#: fusion emitters. They cut XLA's CPU compile time of a case about 4x (measured: ~6 s -> ~1.5 s
#: CPU time for a LipschitzR2DN) and change results only at rounding level (<= 3e-15 on the same
#: case). ``--jax-opt`` (``jax_fast_compile=False``) compiles with XLA's defaults instead.
JAX_FAST_COMPILE_OPTIONS = {"xla_backend_optimization_level": 0,
                            "xla_cpu_use_fusion_emitters": False}


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


def _np64(x: Any) -> np.ndarray:
    return np.asarray(to_numpy(x), dtype=np.float64)


def _dtype_names(*trees: Any) -> set[str]:
    out = set()
    for t in trees:
        if t is None:
            continue
        if isinstance(t, Mapping):
            out |= _dtype_names(*t.values())
        elif isinstance(t, (tuple, list)):
            out |= _dtype_names(*t)
        else:
            out.add(str(t.dtype).rsplit(".", 1)[-1])
    return out


def _explicit_dict(model: Any) -> dict[str, Any]:
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
        e = _explicit_dict(model)
        if not c.is_recurrent:
            y = model(cast(inputs.u))
            return Outputs({k: _np64(v) for k, v in e.items()}, None, (None, _np64(y)), None,
                           _dtype_names(e, y))
        step = model(cast(inputs.x), cast(inputs.u))
        roll = model.simulate(cast(inputs.x0), cast(inputs.us))
        return Outputs({k: _np64(v) for k, v in e.items()}, tuple(map(_np64, step)),
                       tuple(map(_np64, roll)), None, _dtype_names(e, step, roll))


class NumpyAdapter(ForwardAdapter):
    """The reference backend itself (its float32 models are checked like any other)."""

    name = "numpy"


class TorchAdapter(Adapter):
    name = "torch"
    autodiff = True
    computes = ("explicit", "step", "rollout", "grad")

    def __init__(self, device: str = "cpu") -> None:
        super().__init__(device)
        import torch
        import r2dn.torch as rt
        self.torch, self.rt = torch, rt
        self.dev = torch.device(device)
        if self.dev.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"torch has no CUDA device here (asked for device={device!r})")

    def describe(self):
        t = self.torch
        prec = t.get_float32_matmul_precision()
        extra = ""
        if self.dev.type == "cuda":
            extra = (f", {t.cuda.get_device_name(self.dev)}, "
                     f"allow_tf32={t.backends.cuda.matmul.allow_tf32}")
        return f"torch {t.__version__} on {self.dev} (float32 matmul precision {prec!r}{extra})"

    def build(self, config, direct):
        return self.rt.from_direct(config, direct, device=self.dev)

    def _t(self, a, dtype):
        return None if a is None else self.torch.tensor(np.asarray(a, dtype=dtype), device=self.dev)

    def evaluate(self, model, inputs):
        torch = self.torch
        c = model.config
        params = dict(model.named_parameters())
        for p in params.values():
            p.grad = None
        with torch.no_grad():
            e = _explicit_dict(model)
        x0, us, x, u = (self._t(a, c.dtype) for a in (inputs.x0, inputs.us, inputs.x, inputs.u))
        wy, wx = self._t(inputs.wy, c.dtype), self._t(inputs.wx, c.dtype)
        if not c.is_recurrent:
            y = model(u)
            loss = torch.sum(wy * y)
            step, roll, raw = None, (None, _np64(y)), (e, y)
        else:
            with torch.no_grad():
                s = model(x, u)
            xT, ys = model.simulate(x0, us)
            loss = torch.sum(wy * ys) + torch.sum(wx * xT)
            step, roll, raw = tuple(map(_np64, s)), (_np64(xT), _np64(ys)), (e, s, xT, ys)
        loss.backward()
        grads = {k: (_np64(p.grad) if p.grad is not None else np.zeros(tuple(p.shape)))
                 for k, p in params.items()}
        return Outputs({k: _np64(v) for k, v in e.items()}, step, roll, grads, _dtype_names(*raw))

    def adversarial_gain(self, model, *, steps, horizon, batch, seed):
        return _call_gain(self.rt.empirical_gain, model, steps=steps, horizon=horizon,
                          batch=batch, seed=seed)


def _call_gain(fn: Callable, model: Any, *, steps: int, horizon: int, batch: int,
               seed: int) -> float:
    """Call a backend's ``empirical_gain`` with the keywords its signature has; a float."""
    sig = inspect.signature(fn).parameters
    kw = {k: v for k, v in dict(steps=steps, horizon=horizon, batch=batch, seed=seed).items()
          if k in sig}
    out = fn(model, **kw)
    return float(getattr(out, "gain", out))


def _jax_eval(model, x0, us, x, u, wy, wx):
    """Everything the checks need from a JAX model, in one traced function (jitted by the adapter).

    The explicit matrices and the step are traced outside the differentiated function, so only
    the rollout (or the forward map) is traced under ``jax.value_and_grad``; XLA shares the
    explicit map between them.
    """
    import jax
    import jax.numpy as jnp

    c = model.config
    e = model.explicit()
    if not c.is_recurrent:
        def loss(m):
            y = m(u)
            return jnp.sum(wy * y), (y,)
        step = None
    else:
        def loss(m):
            xT, ys = m.simulate(x0, us)
            return jnp.sum(wy * ys) + jnp.sum(wx * xT), (xT, ys)
        step = model(x, u)
    (_, roll), g = jax.value_and_grad(loss, has_aux=True)(model)
    return e, step, roll, g.direct()


class _ExplicitView:
    """What :func:`r2dn.certify` reads (``config`` and ``explicit()``), for matrices already built."""

    def __init__(self, config: ModelConfig, explicit: Any) -> None:
        self.config, self._explicit = config, explicit

    def explicit(self) -> Any:
        return self._explicit


class JaxAdapter(Adapter):
    name = "jax"
    autodiff = True
    computes = ("explicit", "step", "rollout", "grad")

    def __init__(self, device: str = "cpu", fast_compile: bool = True) -> None:
        super().__init__(device)
        import jax
        import r2dn.jax as rj
        self.jax, self.rj = jax, rj
        kind, _, index = device.partition(":")
        platform_name = {"cuda": "gpu", "gpu": "gpu", "cpu": "cpu", "tpu": "tpu"}.get(kind, kind)
        try:
            devices = jax.devices(platform_name)
        except RuntimeError as err:
            raise RuntimeError(f"JAX has no {platform_name!r} device here ({err})") from err
        self.dev = devices[int(index or 0)]
        options = JAX_FAST_COMPILE_OPTIONS if fast_compile and self.dev.platform == "cpu" else None
        self.compile_options = options
        self._eval = jax.jit(_jax_eval, compiler_options=options)

    def describe(self):
        how = "fast-compile options" if self.compile_options else "default XLA options"
        return (f"jax {self.jax.__version__} on {self.dev} (x64 inside the suite only, "
                f"matmul precision {self.rj.MATMUL_PRECISION!r}, {how})")

    def context(self):
        stack = contextlib.ExitStack()
        stack.enter_context(self.jax.enable_x64(True))
        stack.enter_context(self.jax.default_device(self.dev))
        return stack

    def build(self, config, direct):
        model = self.rj.from_direct(config, direct)
        return self.jax.device_put(model, self.dev)

    def evaluate(self, model, inputs):
        jnp = self.jax.numpy
        c = model.config
        args = [None if a is None else self.jax.device_put(jnp.asarray(np.asarray(a, dtype=c.dtype)),
                                                           self.dev)
                for a in (inputs.x0, inputs.us, inputs.x, inputs.u, inputs.wy, inputs.wx)]
        tree, step, roll, grads = self._eval(model, *args)
        self.jax.block_until_ready(grads)
        e = _spec.flatten_explicit(tree)
        rollout = (None, _np64(roll[0])) if not c.is_recurrent else tuple(map(_np64, roll))
        return Outputs({k: _np64(v) for k, v in e.items()},
                       None if step is None else tuple(map(_np64, step)), rollout,
                       {k: _np64(v) for k, v in grads.items()}, _dtype_names(e, step, roll, grads),
                       tree)

    def certify(self, model, out):
        """``r2dn.certify`` of the model's explicit matrices as the jitted evaluation built them.

        The same function of the same parameters as ``model.explicit()``, which, called eagerly,
        dispatches the maps op by op and costs seconds of XLA compilation per case on a CPU.
        """
        return r2dn.certify(_ExplicitView(model.config, out.explicit_tree))

    def adversarial_gain(self, model, *, steps, horizon, batch, seed):
        return _call_gain(self.rj.empirical_gain, model, steps=steps, horizon=horizon,
                          batch=batch, seed=seed)

    def release(self):
        """Drop every compiled program: each case compiles new ones, and on a CPU each holds
        memory mappings of JIT code; a few hundred cases in one process otherwise exhaust the
        mappings (LLVM "Cannot allocate memory", then a crash)."""
        self.jax.clear_caches()


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
            return Outputs(None, None, (None, _np64(y)), None, set())
        xT, ys = self.rjl.simulate_in_julia(model, cast(inputs.x0), cast(inputs.us))
        return Outputs(None, None, (_np64(xT), _np64(ys)), None, set())


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
