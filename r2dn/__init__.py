"""r2dn: robust recurrent networks (R2DN, REN) and Lipschitz networks (LBDN).

``import r2dn`` loads no framework. Pick a backend at import: ``import r2dn.numpy as rn``,
``import r2dn.torch as rn`` or ``import r2dn.jax as rn``; :func:`backend` returns the one named by
the ``R2DN_BACKEND`` environment variable. :func:`certify` checks any backend's model.
"""

from __future__ import annotations

from . import backends as _backends
from ._model import check_finite_inputs, to_numpy
from .certify import CertificateReport, certify
from .checkpoint import save
from .config import ModelConfig
from .errors import BSONError, CheckpointError, FormatError, R2DNWarning

__version__ = "0.1.0"
#: the shipped backends (the registry, :mod:`r2dn.backends`, may hold more).
BACKENDS = tuple(_backends.BUILTIN)

__all__ = [
    "BACKENDS", "BSONError", "CertificateReport", "CheckpointError", "FormatError", "ModelConfig",
    "R2DNWarning", "backend", "certify", "check_finite_inputs", "save", "to_numpy",
]


def backend(name: str | None = None):
    """The backend module ``r2dn.<name>``.

    Parameters
    ----------
    name : {"numpy", "torch", "jax"}, optional
        The backend; defaults to the environment variable ``R2DN_BACKEND``, else ``"numpy"``.

    Returns
    -------
    module
        ``r2dn.numpy``, ``r2dn.torch`` or ``r2dn.jax`` (imported on first use).

    Raises
    ------
    ValueError
        If ``name`` is not one of :data:`BACKENDS`.

    Examples
    --------
    >>> import r2dn
    >>> rn = r2dn.backend("numpy")
    >>> rn.__name__
    'r2dn.numpy'
    """
    import os

    name = name if name is not None else os.environ.get("R2DN_BACKEND", "numpy")
    _backends.check_name("r2dn.backend", name)
    return _backends.module(name)


def __dir__() -> list[str]:
    """``dir(r2dn)``: the public API and the subpackages, not the implementation modules."""
    return sorted({*__all__, "__version__", "numpy", "torch", "jax", "julia", "conformance"})
