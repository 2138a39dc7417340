"""The torch backend's record for :mod:`r2dn.backends`: devices, the time loop of :mod:`.rollout`
(compiled cell, checkpointed chunks), the implicit-function derivatives of the REN equilibrium
(:mod:`.autograd`), ``torch.relu`` as the relu kernel, and :func:`call`, the one hand-over of a
model call with torch's guards (FSDP2's sharded parameters, autocast, the compiled blocks)."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Mapping
from typing import Any

import array_api_compat.torch as xp_torch
import numpy as np
import torch

from r2dn import _spec
from r2dn._model import execute, nonlinearity
from r2dn.backends import Backend
from r2dn.config import ModelConfig

from .autograd import BackwardOutsideAutocast, implicit_equilibrium
from .primitives import affine
from .rollout import autocast_devices, compiled, rollout


def _asarray(a: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(a, dtype=like.dtype, device=like.device)


def _all_finite(x: torch.Tensor) -> bool:
    return bool(torch.isfinite(x).all())


def _equilibrium(activation: Any, act: Any):
    return implicit_equilibrium(act)


def check_device(owner: str, name: str, x: Any, device: torch.device) -> None:
    """Raise a ``TypeError`` unless ``x`` is a tensor, a ``ValueError`` unless it is on ``device``.

    Parameters
    ----------
    owner : str     the model's class name, for the message
    name : str      the argument's name, for the message
    x : Any         the input
    device : torch.device   the parameters' device
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{owner}: `{name}` must be a torch.Tensor; got {type(x).__name__}. "
                        f"Use torch.as_tensor({name}, device={str(device)!r}).")
    if x.device != device:
        raise ValueError(f"{owner}: `{name}` is on device {str(x.device)!r} but the model's "
                         f"parameters are on {str(device)!r}; move it with "
                         f"{name}.to({str(device)!r}) or the model with "
                         f"model.to({str(x.device)!r}).")


def _check_input(owner: str, name: str, x: Any, like: torch.Tensor) -> None:
    check_device(owner, name, x, like.device)


def _adapter() -> type:
    from .conformance import TorchAdapter
    return TorchAdapter


def autocast_on(device: torch.device) -> bool:
    """Whether autocast is on for the CPU or for ``device``'s type."""
    return torch.is_autocast_enabled("cpu") or (
        device.type != "cpu" and device.type in autocast_devices(device)
        and torch.is_autocast_enabled(device.type))


@contextlib.contextmanager
def no_autocast(device: torch.device) -> Iterator[None]:
    """Autocast switched off for the CPU and ``device``'s type, where autocast exists."""
    with contextlib.ExitStack() as stack:
        for kind in autocast_devices(device):
            stack.enter_context(torch.autocast(kind, enabled=False))
        yield


def _in_dtype(args: tuple, dtype: torch.dtype) -> tuple:
    """``args`` with reduced-precision tensors (float16, bfloat16) cast to ``dtype``: under
    autocast, outputs of autocast layers may feed the model, which computes in its own dtype."""
    return tuple(a.to(dtype) if isinstance(a, torch.Tensor)
                 and a.dtype in (torch.float16, torch.bfloat16) else a for a in args)


def _is_sharded(direct: Mapping[str, torch.Tensor]) -> bool:
    """True when a parameter is a ``DTensor`` (FSDP2 keeps them sharded outside ``forward``)."""
    if not torch.distributed.is_available():
        return False
    from torch.distributed.tensor import DTensor
    return any(isinstance(v, DTensor) for v in direct.values())


@torch.compiler.disable
def explicit(direct: Mapping[str, torch.Tensor], config: ModelConfig, *, xp: Any = xp_torch
             ) -> Any:
    """:func:`r2dn._spec.direct_to_explicit`, run eagerly under ``torch.compile`` (a graph break:
    a few small dense factorisations per call gain nothing from compiling, while tracing them
    through the array-API layer costs many seconds), refusing FSDP2's sharded parameters."""
    if _is_sharded(direct):
        raise RuntimeError(
            f"{config.model}: the parameters are sharded DTensors (FSDP2 fully_shard); call the "
            "module itself, model(x0, us) or model(x, u), whose forward gathers them, instead of "
            "explicit() or simulate() on the sharded module.")
    return _spec.direct_to_explicit(direct, config, xp=xp)


def call(model: Any, method: str, args: tuple[Any, ...], chunk: int | None = None) -> Any:
    """The torch model call: :func:`r2dn._model.execute` with torch's guards.

    The explicit map is the model's ``explicit()`` (eager under ``torch.compile``, no sharded
    parameters: :func:`explicit`); under autocast, autocast is off for the call and
    float16/bfloat16 inputs are cast to the parameters' dtype (the model computes in its own
    dtype), and a ``backward()`` still inside the autocast region raises
    (:class:`.autograd.BackwardOutsideAutocast`); a recurrent model runs its whole blocks of
    steps with the block compiled by ``model.compile()`` (a compiled block under
    ``torch.compile``), else the spec's eager cell; a chunked call also passes ``prepare``
    (:func:`r2dn._model.nonlinearity`), with which a chunk rebuilds the map from its own inputs in
    the backward pass; its activation ``act``, with which a rollout that nothing differentiates
    runs its steps in C (:func:`.native.rollout`).
    """
    c = model.config
    options = {}
    if c.is_recurrent:
        block = model.__dict__.get("_block")
        options["block"] = compiled() if block is None and torch.compiler.is_compiling() else block
        if chunk is not None:                   # a chunk rebuilds the map in its backward pass
            options["prepare"] = functools.partial(nonlinearity, BACKEND, c)
        options["act"] = BACKEND.activation(c.activation)   # for the C time loop (no derivatives)
    ref = model._reference()
    if not autocast_on(ref.device):
        return execute(BACKEND, c, model.explicit, ref, method, args, chunk, **options)
    with no_autocast(ref.device):
        out = execute(BACKEND, c, model.explicit, ref, method, _in_dtype(args, ref.dtype), chunk,
                      **options)
    outputs = out if isinstance(out, tuple) else (out,)
    guarded = BackwardOutsideAutocast.apply(autocast_devices(ref.device), *outputs)
    return guarded if isinstance(out, tuple) else guarded[0]


BACKEND = Backend(name="torch", module="r2dn.torch", xp=xp_torch, default_dtype="float32",
                  from_numpy=torch.tensor, asarray=_asarray, all_finite=_all_finite,
                  rollout=rollout,
                  equilibrium=_equilibrium, adapter=_adapter, call=call,
                  check_device=_check_input,
                  kernels={"relu": torch.relu}, affine=affine,
                  # one block up to nv = 32: fewer operator calls per block in an eager loop
                  # (benchmarks/README.md#the-ren-equilibrium-against-the-release-before-it)
                  equilibrium_block=32)
