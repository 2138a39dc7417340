"""Write BSON.jl files that Julia's ``BSON.load`` reads back into RobustNeuralNetworks.jl objects.

The layout is what BSON.jl 0.3 writes (see the module docstring of :mod:`.bson` for the tags):
the top level is a ``Base.Dict{String, Any}`` struct document holding a list of keys and a list of
values; a struct is ``{tag: "struct", type: <datatype>, data: [fields...]}``; a datatype
``{tag: "datatype", params: [...], name: [module path..., type name]}``; a bits array
``{tag: "array", type: <eltype datatype>, size: [...], data: <column-major bytes>}``; a tuple
``{tag: "tuple", data: [...]}``; named functions are empty structs of types such as ``NNlib.#relu``.
Float64 and Int64 scalars are BSON doubles and int64s, Bool is a BSON boolean, a Float32 scalar a
primitive struct holding its 4 bytes. No ``_backrefs`` are written (every object is written where
it occurs; BSON.jl reads such files).

Loading the file in Julia needs the modules the types name to be reachable from ``Main``, as for
any BSON.jl file: ``using RobustNeuralNetworks, Flux, BSON`` then ``BSON.load(path)``.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from r2dn._model import to_numpy
from .bson import JuliaStruct, JuliaType

from .models import MLP
from .structs import JULIA_FUNCTION_TYPES, julia_function, julia_struct

__all__ = ["chain", "encode_bson", "julia_value", "write_bson"]

_ELTYPES = {np.dtype("float64"): "Core.Float64", np.dtype("float32"): "Core.Float32",
            np.dtype("int64"): "Core.Int64", np.dtype("int32"): "Core.Int32",
            np.dtype("uint8"): "Core.UInt8", np.dtype("bool"): "Core.Bool"}
_DICT_TYPE = JuliaType("Main.Base.Dict", (JuliaType("Core.String"), JuliaType("Core.Any")))


def _datatype(t: JuliaType) -> dict:
    return {"tag": "datatype", "params": [_lower(p) for p in t.params], "name": t.name.split(".")}


def _lower(v: Any) -> Any:
    """A Python value as the BSON.jl document tree (dicts, lists and BSON scalars)."""
    if isinstance(v, JuliaStruct):
        t = JuliaType(v.type_name, tuple(v.type_params))
        return {"tag": "struct", "type": _datatype(t), "data": [_lower(f) for f in v.fields]}
    if isinstance(v, JuliaType):
        return _datatype(v)
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, np.float32):
        return {"tag": "struct", "type": _datatype(JuliaType("Core.Float32")),
                "data": np.array(v, dtype="<f4").tobytes()}
    if isinstance(v, (float, np.floating)):
        return float(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, str) or v is None:
        return v
    if isinstance(v, np.ndarray):
        if v.dtype not in _ELTYPES:
            raise TypeError(f"write_bson: arrays of dtype {v.dtype} are not supported; use one of "
                            f"{', '.join(str(d) for d in _ELTYPES)}.")
        data = np.asarray(v, dtype=v.dtype.newbyteorder("<")).tobytes(order="F")
        return {"tag": "array", "type": _datatype(JuliaType(_ELTYPES[v.dtype])),
                "size": [int(n) for n in v.shape], "data": data}
    if isinstance(v, tuple):
        return {"tag": "tuple", "data": [_lower(x) for x in v]}
    if isinstance(v, list):
        return [_lower(x) for x in v]
    if isinstance(v, Mapping):
        if not all(isinstance(k, str) for k in v):
            raise TypeError("write_bson: dictionary keys must be str.")
        return {"tag": "struct", "type": _datatype(_DICT_TYPE),
                "data": [list(v), [_lower(x) for x in v.values()]]}
    raise TypeError(f"write_bson: cannot write a {type(v).__name__}; write r2dn models, MLPs, "
                    "JuliaStruct values, NumPy arrays, tuples, lists, dicts and scalars.")


def _element(key: str, v: Any) -> bytes:
    name = key.encode() + b"\0"
    if v is None:
        return b"\x0a" + name
    if isinstance(v, bool):
        return b"\x08" + name + (b"\x01" if v else b"\x00")
    if isinstance(v, int):
        return b"\x12" + name + struct.pack("<q", v)
    if isinstance(v, float):
        return b"\x01" + name + struct.pack("<d", v)
    if isinstance(v, str):
        raw = v.encode() + b"\0"
        return b"\x02" + name + struct.pack("<i", len(raw)) + raw
    if isinstance(v, bytes):
        return b"\x05" + name + struct.pack("<i", len(v)) + b"\x00" + v
    if isinstance(v, dict):
        return b"\x03" + name + encode_bson(v)
    if isinstance(v, list):
        return b"\x04" + name + encode_bson({str(i): x for i, x in enumerate(v)})
    raise TypeError(f"encode_bson: cannot encode a {type(v).__name__}.")


def encode_bson(doc: dict) -> bytes:
    """Raw BSON bytes of a document tree (dicts, lists, bytes, str, bool, int, float, None)."""
    body = b"".join(_element(k, v) for k, v in doc.items())
    if len(body) + 5 > 2**31 - 1:
        raise ValueError("encode_bson: a BSON document must be smaller than 2 GiB.")
    return struct.pack("<i", len(body) + 5) + body + b"\0"


def _mlp_struct(mlp: MLP) -> JuliaStruct:
    T = JuliaType("Core.Float32" if mlp.dtype == "float32" else "Core.Float64")
    layers = []
    for W, b, act in zip(mlp.weights, mlp.biases, mlp.activations):
        W, b = np.asarray(to_numpy(W)), np.asarray(to_numpy(b))
        f = julia_function(act)
        params = [JuliaType(JULIA_FUNCTION_TYPES[act]), JuliaType("Core.Array", (T, 2)),
                  JuliaType("Core.Array", (T, 1))]
        layers.append(JuliaStruct("Flux.Dense", params, [W, b, f]))
    return chain(*layers)


def chain(*layers: Any) -> JuliaStruct:
    """A Flux ``Chain`` of Julia values (JuliaStruct), e.g. ``chain(model_struct, softmax)``."""
    def type_of(x: Any) -> JuliaType:
        if not isinstance(x, JuliaStruct):
            raise TypeError(f"chain: layers must be JuliaStruct values; got {type(x).__name__}.")
        return JuliaType(x.type_name, tuple(x.type_params))
    params = [JuliaType("Core.Tuple", tuple(type_of(x) for x in layers))]
    return JuliaStruct("Flux.Chain", params, [tuple(layers)])


def julia_value(value: Any, after: tuple[str, ...] = ()) -> Any:
    """The Julia value :func:`write_bson` writes for ``value``.

    r2dn RENs and LBDNs become ``DiffREN``/``DiffLBDN`` (:func:`r2dn.julia.structs.julia_struct`),
    an :class:`MLP` a ``Chain`` of ``Dense``; with ``after`` (e.g. ``("softmax",)``) the model is
    wrapped in a ``Chain`` followed by those NNlib functions, as Julia's MNIST example saved it.
    """
    if isinstance(value, MLP):
        base = _mlp_struct(value)
        if after:
            return chain(*base.fields[0], *(_nnlib(name) for name in after))
        return base
    if hasattr(value, "config") and hasattr(value, "direct"):
        base = julia_struct(value)
        return chain(base, *(_nnlib(name) for name in after)) if after else base
    if after:
        raise ValueError("julia_value: `after` applies to models only.")
    return value


def _nnlib(name: str) -> JuliaStruct:
    if name not in ("softmax", "logsoftmax"):
        raise ValueError(f"julia_value: `after` entries must be 'softmax' or 'logsoftmax'; "
                         f"got {name!r}.")
    return JuliaStruct(f"NNlib.#{name}", [], [])


def write_bson(path: str | os.PathLike, content: Mapping[str, Any], *,
               after: Mapping[str, tuple[str, ...]] | None = None) -> Path:
    """Write ``content`` as a BSON.jl file (a ``Dict{String, Any}``) that Julia's ``BSON.load``
    and :func:`r2dn.julia.load_model` both read.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write (replaced atomically).
    content : mapping of str to value
        r2dn RENs and LBDNs (any backend; written as ``DiffREN(params)`` / ``DiffLBDN(params)``
        with Julia's field names, parameters in Julia's index order and the model's dtype as
        ``T``), :class:`MLP` (a ``Chain`` of ``Dense``), NumPy arrays, tuples, lists, dicts,
        ``JuliaStruct`` values and scalars.
    after : mapping of str to tuple of str, optional
        For a key holding a model, functions to put after it in a Flux ``Chain``, e.g.
        ``{"model": ("softmax",)}``.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    ValueError
        If a model has no RobustNeuralNetworks.jl counterpart (R2DNs, ``compat="robustnn"``).
    TypeError
        For a value the writer cannot encode.
    """
    if not isinstance(content, Mapping) or not all(isinstance(k, str) for k in content):
        raise TypeError("write_bson: `content` must be a mapping with str keys.")
    after = dict(after or {})
    unknown = sorted(set(after) - set(content))
    if unknown:
        raise ValueError(f"write_bson: `after` names keys {unknown} that `content` lacks.")
    values = {k: julia_value(v, tuple(after.get(k, ()))) for k, v in content.items()}
    raw = encode_bson(_lower(values))
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(raw)
    os.replace(tmp, path)
    return path
