"""r2dn's PyTorch backend: every model of the catalogue as a ``torch.nn.Module``, CPU and CUDA.

``import r2dn.torch as rn`` gives ``rn.LBDN``, ``rn.ContractingREN``, ..., ``rn.GeneralR2DN`` with
the constructor arguments and the API of docs/getting-started.md#model-api (float32 by default), plus :func:`convert`,
:func:`from_direct` and :func:`empirical_gain`. Each model holds one ``nn.Parameter`` per free
parameter; ``state_dict()`` is keyed by the canonical names of ``model.direct()``. Every formula
comes from :mod:`r2dn._spec`; the REN equilibrium is differentiated by the implicit-function
theorem (:class:`Equilibrium`).

>>> import torch
>>> import r2dn.torch as rn
>>> model = rn.ContractingR2DN(2, 3, 4, 1, hidden=(8,), seed=0)
>>> xT, ys = model.simulate(model.init_state(5), torch.zeros(10, 5, 2))
>>> tuple(ys.shape)
(10, 5, 1)
>>> sorted(model.state_dict()) == sorted(model.direct())
True
"""

from r2dn import families as _families

from .autograd import Equilibrium, activation_slope, implicit_equilibrium
from .gain import empirical_gain
from .models import (CLASSES, TorchModel, check_device, convert, from_direct, load,
                     torch_dtype)

__all__ = [
    "Equilibrium", "TorchModel", "activation_slope", "check_device", "convert", "empirical_gain",
    "implicit_equilibrium", "from_direct", "load", "torch_dtype", *_families.names(),
]


def __getattr__(name: str) -> type:
    """The model class of each registered family (:mod:`r2dn.families`), generated on first use."""
    return CLASSES.attribute(name, __name__)


def __dir__() -> list[str]:
    return sorted({*globals(), *_families.names()})
