"""r2dn's NumPy backend: the float64 reference implementation of the whole catalogue.

``import r2dn.numpy as rn`` gives ``rn.LBDN``, ``rn.ContractingREN``, ..., ``rn.GeneralR2DN`` with
the API of docs/getting-started.md#model-api, plus :func:`convert` and :func:`from_direct`. Every formula comes from
:mod:`r2dn._spec`; this module only owns the parameters (NumPy arrays) and the dtype.

>>> import numpy as np
>>> import r2dn.numpy as rn
>>> model = rn.ContractingR2DN(2, 3, 4, 1, hidden=(8,), seed=0)
>>> xT, ys = model.simulate(model.init_state(5), np.zeros((10, 5, 2)))
>>> ys.shape
(10, 5, 1)
"""

from r2dn import families as _families

from .models import CLASSES, NumpyModel, convert, from_direct, load

__all__ = ["NumpyModel", "convert", "from_direct", "load", *_families.names()]


def __getattr__(name: str) -> type:
    """The model class of each registered family (:mod:`r2dn.families`), generated on first use."""
    return CLASSES.attribute(name, __name__)


def __dir__() -> list[str]:
    return sorted({*globals(), *_families.names()})
