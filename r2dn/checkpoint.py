"""Portable checkpoints: one safetensors file per model, readable by every backend
(docs/guides/porting.md#checkpoint-format).

Tensors are ``model.direct()`` by canonical name; the metadata holds
``{"format": "r2dn/1", "config": <model.config as JSON>}``. The file is written and read here
with NumPy alone (the safetensors layout: an 8-byte little-endian header length, a JSON header,
then raw little-endian tensor bytes), so ``import r2dn`` needs no framework and no pickle is ever
involved; files interoperate with the ``safetensors`` package.

Every defect of a file raises :class:`r2dn.errors.CheckpointError` (a ``ValueError``) naming the
file and the key; a missing file raises ``FileNotFoundError``.
"""

from __future__ import annotations

import json
import math
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np

from ._model import to_numpy
from .config import ModelConfig
from .errors import CheckpointError
from .init import direct_shapes

FORMAT = "r2dn/1"
_DTYPES = {"F32": np.dtype("<f4"), "F64": np.dtype("<f8")}
_CODES = {v: k for k, v in _DTYPES.items()}
#: refuse headers larger than this (a forged length must not trigger a giant read).
MAX_HEADER_BYTES = 16 * 2**20


def save(model: Any, path: str | os.PathLike) -> Path:
    """Write ``model`` (any backend) to ``path`` as an r2dn safetensors checkpoint.

    The write goes to a temporary file in the same folder that replaces ``path`` only when
    complete, so an interrupted save never leaves a truncated checkpoint.

    Parameters
    ----------
    model : r2dn model
        A model of any backend (its ``config`` and ``direct()`` are stored).
    path : str or os.PathLike
        The file to write (conventionally ``*.safetensors``); its folder must exist.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    TypeError
        If ``model`` is not an r2dn model (for example a state dict or a plain dict).
    FileNotFoundError
        If the folder of ``path`` does not exist.

    Examples
    --------
    >>> import tempfile, pathlib, r2dn, r2dn.numpy as rn
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "lbdn.safetensors"
    >>> r2dn.save(rn.LBDN(2, (8,), 1), path).name
    'lbdn.safetensors'
    >>> rn.load(path).config.model
    'LBDN'
    """
    if not isinstance(getattr(model, "config", None), ModelConfig) or not callable(
            getattr(model, "direct", None)):
        raise TypeError(f"save: `model` must be an r2dn model (of r2dn.numpy, r2dn.torch or "
                        f"r2dn.jax); got {type(model).__name__}. To store a torch state dict or "
                        "raw parameters, build the model first, e.g. "
                        "r2dn.torch.from_direct(config, params).")
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"save: the folder {path.parent} of {path} does not exist; create "
                                "it first (e.g. Path(path).parent.mkdir(parents=True)).")
    config_json = model.config.to_json()
    tensors = {k: np.ascontiguousarray(to_numpy(v)) for k, v in model.direct().items()}
    header: dict[str, Any] = {"__metadata__": {"format": FORMAT, "config": config_json}}
    offset = 0
    for name in sorted(tensors):
        arr = tensors[name].astype(tensors[name].dtype.newbyteorder("<"), copy=False)
        if arr.dtype not in _CODES:
            raise TypeError(f"save: parameter `{name}` has dtype {arr.dtype}; expected float32/64.")
        tensors[name] = arr
        header[name] = {"dtype": _CODES[arr.dtype], "shape": list(arr.shape),
                        "data_offsets": [offset, offset + arr.nbytes]}
        offset += arr.nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for name in sorted(tensors):
            f.write(tensors[name].tobytes())
    os.replace(tmp, path)
    return path


def _fail(path: Path, msg: str) -> CheckpointError:
    return CheckpointError(f"{path}: {msg}")


def _read_header(path: Path, blob: bytes) -> dict[str, Any]:
    if len(blob) < 8:
        raise _fail(path, f"truncated: {len(blob)} bytes, no safetensors header.")
    # a safetensors header is JSON right after its 8-byte length (whose first byte may be 0x80)
    if blob[8:9] != b"{" and (blob[:4] == b"PK\x03\x04" or blob[:1] == b"\x80"):
        raise _fail(path, "this is a pickle or zip file (as torch.save writes), not "
                          "an r2dn checkpoint; r2dn never unpickles. Load it with the tool that "
                          "wrote it, build the r2dn model (e.g. r2dn.torch.from_direct(config, "
                          "state)) and write it with r2dn.save(model, path).")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > MAX_HEADER_BYTES or 8 + n > len(blob):
        raise _fail(path, f"header length {n} exceeds the file ({len(blob)} bytes): truncated or "
                          "not a safetensors file.")
    try:
        header = json.loads(blob[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise _fail(path, f"header is not valid JSON ({err}).") from err
    if not isinstance(header, dict):
        raise _fail(path, "header is not a JSON object.")
    return header


def read(path: str | os.PathLike, *, check_finite: bool = True) -> tuple[ModelConfig, dict[str, np.ndarray]]:
    """Read a checkpoint: ``(config, direct)`` with NumPy arrays of the stored dtype.

    ``check_finite=False`` accepts non-finite parameters (refused by default).
    """
    path = Path(path)
    blob = path.read_bytes()
    header = _read_header(path, blob)
    meta = header.pop("__metadata__", None)
    if not isinstance(meta, dict) or "format" not in meta:
        raise _fail(path, "no r2dn metadata (`__metadata__.format`): not an r2dn checkpoint.")
    if meta["format"] != FORMAT:
        raise _fail(path, f"format {meta['format']!r} is not supported; expected {FORMAT!r}.")
    try:
        config = ModelConfig.from_json(meta.get("config", ""))
    except (ValueError, TypeError) as err:
        raise _fail(path, f"invalid config: {err}") from err
    shapes = direct_shapes(config)
    missing, extra = sorted(set(shapes) - set(header)), sorted(set(header) - set(shapes))
    if missing or extra:
        raise _fail(path, f"tensors do not match the {config.model} config: missing {missing}, "
                          f"unexpected {extra}.")
    data_start = 8 + struct.unpack("<Q", blob[:8])[0]
    data_len = len(blob) - data_start
    direct = {}
    for name, shape in shapes.items():
        info = header[name]
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise _fail(path, f"tensor `{name}` has a malformed header entry.")
        code = info["dtype"]
        expected = "F64" if config.dtype == "float64" else "F32"
        if code != expected:
            raise _fail(path, f"tensor `{name}` has dtype {code!r}; the config says {config.dtype} "
                              f"({expected}).")
        if list(info["shape"]) != list(shape):
            raise _fail(path, f"tensor `{name}` has shape {info['shape']}; the config needs {list(shape)}.")
        start, end = info["data_offsets"] if len(info["data_offsets"]) == 2 else (-1, -1)
        nbytes = math.prod(shape) * _DTYPES[code].itemsize
        if not (isinstance(start, int) and isinstance(end, int) and 0 <= start <= end <= data_len
                and end - start == nbytes):
            raise _fail(path, f"tensor `{name}` has data offsets {info['data_offsets']} outside the "
                              f"file's {data_len} data bytes or of the wrong size (truncated?).")
        arr = np.frombuffer(blob, dtype=_DTYPES[code], count=math.prod(shape),
                            offset=data_start + start).reshape(shape)
        if check_finite and not np.all(np.isfinite(arr)):
            raise _fail(path, f"tensor `{name}` holds non-finite values (pass check_finite=False "
                              "to load it anyway).")
        direct[name] = arr.astype(arr.dtype.newbyteorder("="))
    return config, direct
