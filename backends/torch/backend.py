"""The torch backend's record for :mod:`r2dn.backends`: devices, the time loop of :mod:`.rollout`
(compiled cell, checkpointed chunks), the implicit-function derivatives of the REN equilibrium
(:mod:`.autograd`) and ``torch.relu`` as the relu kernel."""

from __future__ import annotations

from typing import Any

import array_api_compat.torch as xp_torch
import numpy as np
import torch

from r2dn.backends import Backend

from .autograd import implicit_equilibrium
from .rollout import rollout


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


BACKEND = Backend(name="torch", module="r2dn.torch", xp=xp_torch, default_dtype="float32",
                  from_numpy=torch.tensor, asarray=_asarray, all_finite=_all_finite,
                  rollout=rollout,
                  equilibrium=_equilibrium, adapter=_adapter, check_device=_check_input,
                  kernels={"relu": torch.relu},
                  # one block up to nv = 32: fewer operator calls per block in an eager loop
                  # (benchmarks/README.md#the-ren-equilibrium-against-the-release-before-it)
                  equilibrium_block=32)
