"""The framework adapters: one training step and one simulation per framework.

The scripts are written once against :class:`Backend`; only :class:`TorchBackend` and
:class:`JaxBackend` know a framework, and each is a few lines: turn NumPy data into the framework's
arrays, run one optimiser step (Adam, elementwise gradient clipping, a learning rate set per step),
simulate without gradients. Losses are written once against the array API (``xp``), so the same
function is traced by JAX and run by torch.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable
from typing import Any

import numpy as np

BACKEND_CHOICES = ("torch", "jax")
#: Adam as in the paper's code (optax.adam defaults; torch.optim.Adam has the same ones).
ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8


class Backend(abc.ABC):
    """What a script needs from a framework. ``rn`` is ``r2dn.torch`` or ``r2dn.jax``."""

    name: str
    rn: Any
    xp: Any
    unroll: int = 1

    def sim(self, model: Any, x0: Any, us: Any) -> tuple[Any, Any]:
        """``model.simulate(x0, us)`` (JAX: with ``unroll=self.unroll``), for use in losses."""
        return model.simulate(x0, us)

    @abc.abstractmethod
    def asarray(self, a: np.ndarray) -> Any:
        ...

    def numpy(self, a: Any) -> np.ndarray:
        from r2dn._model import to_numpy
        return np.asarray(to_numpy(a), dtype=np.float64)

    @abc.abstractmethod
    def trainer(self, model: Any, loss_fn: Callable[..., Any], clip: float | None) -> "Trainer":
        ...

    @abc.abstractmethod
    def simulate(self, model: Any, x0: Any, us: Any) -> tuple[Any, Any]:
        """``model.simulate(x0, us)`` with no gradient (jitted in JAX)."""
        ...

    @abc.abstractmethod
    def evaluator(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn`` run without gradients: under ``torch.no_grad()``, or ``jax.jit``-compiled (so
        a function that calls a model many times is traced once, not dispatched op by op)."""
        ...

    @abc.abstractmethod
    def eager(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn`` run without gradients and without compiling it as a whole (JAX: op by op; the
        models' own methods are compiled by r2dn.jax), for loops too long to trace."""
        ...

    def sync(self, value: Any) -> Any:
        """Wait until ``value`` (an array or a pytree of arrays) is computed."""
        return value

    @abc.abstractmethod
    def grad_callable(self, model: Any, loss_fn: Callable[..., Any],
                      *args: Any) -> Callable[[], Any]:
        """A zero-argument callable computing the gradient of ``loss_fn(model, *args)`` with
        respect to every free parameter (forward and backward pass; jitted in JAX)."""
        ...

    def forward_callable(self, fn: Callable[..., Any], *args: Any) -> Callable[[], Any]:
        """A zero-argument callable running ``fn(*args)`` without gradients (jitted in JAX)."""
        ev = self.evaluator(fn)
        return lambda: ev(*args)

    @abc.abstractmethod
    def info(self) -> dict[str, Any]:
        ...


class Trainer(abc.ABC):
    """One optimiser step at a time: ``loss, aux = trainer.step(lr, *batch)``; ``trainer.model``.

    Adam (betas 0.9/0.999, eps 1e-8) on every free parameter, the gradient clipped elementwise to
    ``[-clip, clip]`` first (optax.clip, as the paper's code), the learning rate given per step (so
    any schedule is a plain Python function of the step or epoch). ``loss_fn(model, *batch)``
    returns ``(scalar loss, aux)``; ``aux`` comes back without gradient (e.g. the final state).
    """

    model: Any

    @abc.abstractmethod
    def step(self, lr: float, *batch: Any) -> tuple[float, Any]:
        ...


class TorchBackend(Backend):
    name = "torch"

    def __init__(self, threads: int = 1) -> None:
        import array_api_compat.torch as xp
        import torch

        import r2dn.torch as rn
        torch.set_num_threads(threads)
        self.torch, self.rn, self.xp, self.threads = torch, rn, xp, threads

    def asarray(self, a: np.ndarray) -> Any:
        return self.torch.as_tensor(np.asarray(a, dtype=np.float32))

    def trainer(self, model, loss_fn, clip):
        return _TorchTrainer(self.torch, model, loss_fn, clip)

    def simulate(self, model, x0, us):
        with self.torch.no_grad():
            return model.simulate(x0, us)

    def evaluator(self, fn):
        def run(*args):
            with self.torch.no_grad():
                return fn(*args)
        return run

    eager = evaluator

    def grad_callable(self, model, loss_fn, *args):
        params = [p for p in model.parameters() if p.requires_grad]

        def run():
            loss = loss_fn(model, *args)
            return self.torch.autograd.grad(loss, params)
        return run

    def info(self):
        return {"framework": "torch", "version": self.torch.__version__, "device": "cpu",
                "threads": self.torch.get_num_threads(), "dtype": "float32"}


class _TorchTrainer(Trainer):
    def __init__(self, torch, model, loss_fn, clip):
        self.torch, self.model, self.loss_fn, self.clip = torch, model, loss_fn, clip
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.opt = torch.optim.Adam(self.params, lr=1.0, betas=ADAM_BETAS, eps=ADAM_EPS)

    def step(self, lr, *batch):
        loss, aux = self.loss_fn(self.model, *batch)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.clip is not None:
            for p in self.params:
                p.grad.clamp_(-self.clip, self.clip)
        for group in self.opt.param_groups:
            group["lr"] = lr
        self.opt.step()
        return float(loss.detach()), _detach(self.torch, aux)


def _detach(torch, value: Any) -> Any:
    """``value`` (a tensor, None, or tuples/lists of them) cut from the autograd graph."""
    if isinstance(value, torch.Tensor):
        return value.detach()
    if isinstance(value, (tuple, list)):
        return type(value)(_detach(torch, v) for v in value)
    return value


class JaxBackend(Backend):
    name = "jax"

    def __init__(self, threads: int = 1) -> None:
        import jax
        import jax.numpy as jnp

        import r2dn.jax as rn
        self.jax, self.jnp, self.rn, self.xp = jax, jnp, rn, jnp
        self.device = jax.devices()[0]
        self._simulate = jax.jit(lambda m, x0, us: self.sim(m, x0, us))

    def asarray(self, a: np.ndarray) -> Any:
        # committed to the device, as jit outputs are: a jitted function called first with
        # uncommitted arrays and then with its own (committed) outputs compiles twice
        return self.commit(np.asarray(a, dtype=np.float32))

    def commit(self, tree: Any) -> Any:
        """Every array of ``tree`` committed to the default device (see :meth:`asarray`)."""
        return self.jax.device_put(tree, self.device)

    def trainer(self, model, loss_fn, clip):
        return _JaxTrainer(self, model, loss_fn, clip)

    def sim(self, model, x0, us):
        return model.simulate(x0, us, unroll=self.unroll)

    def simulate(self, model, x0, us):
        return self._simulate(model, x0, us)

    def evaluator(self, fn):
        return self.jax.jit(fn)

    def eager(self, fn):
        return fn

    def sync(self, value):
        return self.jax.block_until_ready(value)

    def grad_callable(self, model, loss_fn, *args):
        g = self.jax.jit(self.jax.grad(loss_fn))
        args = self.commit(args)
        model = self.commit(model)
        return lambda: g(model, *args)

    def info(self):
        return {"framework": "jax", "version": self.jax.__version__, "unroll": self.unroll,
                "device": str(self.jax.devices()[0]), "dtype": "float32",
                "matmul_precision": self.rn.MATMUL_PRECISION}


class _JaxTrainer(Trainer):
    def __init__(self, bk, model, loss_fn, clip):
        import optax
        jax = bk.jax
        self.commit = bk.commit
        parts = ([optax.clip(clip)] if clip is not None else []) + [
            optax.scale_by_adam(b1=ADAM_BETAS[0], b2=ADAM_BETAS[1], eps=ADAM_EPS)]
        tx = optax.chain(*parts)
        self.model = bk.commit(model)
        self.state = bk.commit(tx.init(self.model))

        def step(model, state, lr, *batch):
            (loss, aux), grads = jax.value_and_grad(
                lambda m: loss_fn(m, *batch), has_aux=True)(model)
            updates, state = tx.update(grads, state, model)
            updates = jax.tree.map(lambda u: -lr * u, updates)
            return optax.apply_updates(model, updates), state, loss, jax.lax.stop_gradient(aux)

        self._step = jax.jit(step)

    def step(self, lr, *batch):
        self.model, self.state, loss, aux = self._step(self.model, self.state, np.float32(lr),
                                                       *self.commit(batch))
        return float(loss), aux


def make_backend(name: str, threads: int = 1, unroll: int | None = None,
                 model: str | None = None) -> Backend:
    """The adapter of ``name`` (``"torch"`` or ``"jax"``), importing only that framework.

    ``unroll`` (JAX's lax.scan unroll in :meth:`Backend.sim`) defaults to 8 for ``model="r2dn"``
    and 1 otherwise.
    """
    if name == "torch":
        return TorchBackend(threads)
    if name == "jax":
        bk = JaxBackend(threads)
        bk.unroll = unroll if unroll is not None else (8 if model == "r2dn" else 1)
        return bk
    raise ValueError(f"make_backend: `name` must be one of {BACKEND_CHOICES}; got {name!r}.")


def num_params(model: Any) -> int:
    """The number of free parameters (every entry of ``model.direct()``)."""
    return int(sum(math.prod(tuple(v.shape)) for v in model.direct().values()))
