"""r2dn: robust recurrent networks (R2DN, REN) and Lipschitz networks (LBDN).

``import r2dn`` loads no framework. Pick a backend at import: ``import r2dn.numpy as rn``,
``import r2dn.torch as rn`` or ``import r2dn.jax as rn``; :func:`backend` returns the one named by
the ``R2DN_BACKEND`` environment variable. :func:`certify` checks any backend's model.
"""

from __future__ import annotations

import os
from types import ModuleType

from . import backends as _backends
from .certify import CertificateReport, certify
from .checkpoint import save
from .config import ModelConfig
from .errors import BSONError, CheckpointError, FormatError, R2DNWarning

__version__ = "0.1.0"
#: the shipped backends (the registry, :mod:`r2dn.backends`, may hold more).
BACKENDS = tuple(_backends.BUILTIN)

__all__ = [
    "BACKENDS", "BSONError", "CertificateReport", "CheckpointError", "FormatError", "ModelConfig",
    "R2DNWarning", "backend", "certify", "save",
]


def backend(name: str | None = None) -> ModuleType:
    """The backend module ``r2dn.<name>``; ``name`` defaults to ``$R2DN_BACKEND`` (else numpy)."""
    name = name if name is not None else os.environ.get("R2DN_BACKEND", "numpy")
    _backends.check_name("r2dn.backend", name)
    return _backends.module(name)
