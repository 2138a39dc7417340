"""Move a model between files and frameworks: what ``r2dn convert`` does.

:func:`load_any` reads an r2dn checkpoint (safetensors) or a RobustNeuralNetworks.jl BSON file
(decided by content, not by name) into a backend; :func:`convert_file` writes it back out as an
r2dn checkpoint after checking that it runs and says what it is.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from . import backends
from .checkpoint import read, save

BSON_SUFFIX = ".bson"


def _looks_like_bson(path: Path) -> bool:
    """BSON starts with its own little-endian int32 length; safetensors with an 8-byte header
    length followed by ``{``."""
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) == 9 and head[8:9] == b"{":
        return False
    return path.suffix.lower() == BSON_SUFFIX or (
        len(head) >= 4 and int.from_bytes(head[:4], "little") == path.stat().st_size)


def load_any(path: str | os.PathLike, backend: str = "numpy", *, key: str = "model",
             dtype: str | None = None) -> Any:
    """A model of ``r2dn.<backend>`` from an r2dn checkpoint or a RobustNeuralNetworks.jl file.

    Raises ``FileNotFoundError`` for a missing file and a :class:`r2dn.errors.FormatError`
    subclass for a corrupt one; ``ValueError`` when the BSON file holds something that is not a
    model of r2dn's catalogue (a plain Flux ``Chain`` of ``Dense`` layers, say).
    """
    path = Path(path)
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise FileNotFoundError(f"{path} {what}; give the path of an r2dn checkpoint "
                                "(.safetensors) or a RobustNeuralNetworks.jl BSON file.")
    rn = backends.module(backends.check_name("r2dn.porting.load_any", backend))
    if _looks_like_bson(path):
        from r2dn.julia import load_model
        model = load_model(path, key=key, backend=backend, dtype=dtype)
        if not hasattr(model, "config"):
            raise ValueError(f"{path}: holds a {type(model).__name__}, not a model of r2dn's "
                             "catalogue; it cannot be stored as an r2dn checkpoint.")
        return model
    config, direct = read(path)                   # re-typed before the backend builds it: a
    if dtype is not None:                         # float64 file loads into float32-only JAX
        config = config.replace(dtype=dtype)
    return rn.from_direct(config, direct)


def convert_file(src: str | os.PathLike, dst: str | os.PathLike, *, backend: str = "numpy",
                 key: str = "model", dtype: str | None = None) -> tuple[Any, Path]:
    """Load ``src`` into ``backend``, check one step runs and is finite, save ``dst``.

    Returns ``(model, dst_path)``. Raises ``ValueError`` if the model's outputs are not finite.
    """
    import numpy as np

    model = load_any(src, backend, key=key, dtype=dtype)
    c = model.config
    probe = np.zeros((1, c.nu if c.is_recurrent else c.in_features))
    args = (model.init_state(1),) if c.is_recurrent else ()
    record = backends.get(backend)
    like = next(iter(model.direct().values()))
    out = model(*args, record.asarray(probe, like))
    values = out if isinstance(out, tuple) else (out,)
    if not all(record.all_finite(v) for v in values):
        raise ValueError(f"{src}: the loaded {c.model} gives non-finite outputs.")
    return model, save(model, dst)

