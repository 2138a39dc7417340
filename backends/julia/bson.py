"""A safe reader for BSON documents written by Julia's BSON.jl (standard library and NumPy only).

RobustNeuralNetworks.jl models are saved with BSON.jl. This module reads those files without Julia
and without ``eval``: it parses the raw BSON (https://bsonspec.org) with every length checked
against the bytes left, then turns BSON.jl's tagged documents into plain Python values:

=====================================  ==========================================================
BSON.jl document                       Python value
=====================================  ==========================================================
``{tag: array}`` of a bits type        C-contiguous :class:`numpy.ndarray`, ``A[i, j]`` equal to
                                       Julia's ``A[i+1, j+1]``
``{tag: array}`` of other types        ``numpy.ndarray`` of ``dtype=object`` (1-D ones: ``list``)
``{tag: struct}``                      :class:`JuliaStruct`; a ``Base.Dict`` becomes a ``dict``;
                                       a primitive (``Float32``, ``UInt8``...) a NumPy scalar
``{tag: datatype}``, ``jl_anonymous``  :class:`JuliaType`
``{tag: tuple}``, ``{tag: svec}``      ``tuple``
``{tag: symbol}``                      :class:`JuliaSymbol` (a ``str``)
``{tag: ref}`` (a module path)         :class:`JuliaRef`
``{tag: unionall}``                    :class:`JuliaUnionAll`
``{tag: jl_bottom_type}``              :data:`BOTTOM`
``{tag: backref, ref: k}``             the decoded ``_backrefs[k - 1]`` (shared, decoded once)
=====================================  ==========================================================

Untagged documents become ``dict`` and BSON arrays ``list``. Every failure on truncated,
malformed or hostile input is a :class:`r2dn.errors.BSONError` naming the file and the offset.
"""

from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from r2dn.errors import BSONError

__all__ = [
    "BOTTOM", "DEFAULT_MAX_SIZE", "FIELD_NAMES", "MAX_DEPTH", "JuliaRef", "JuliaStruct",
    "JuliaSymbol", "JuliaType", "JuliaUnionAll", "julia_function_name", "read_bson",
    "read_bson_raw",
]

MAX_DEPTH = 200
"""Deepest nesting of BSON documents, and of decoded values (backrefs included), accepted."""
DEFAULT_MAX_SIZE = 2 * 1024**3
"""Default largest input, in bytes, that :func:`read_bson` accepts (2 GiB)."""
_MAX_NDIM = 32

_I32, _I64, _F64 = struct.Struct("<i"), struct.Struct("<q"), struct.Struct("<d")

# Bits element types by the last component of their Julia name.
_DTYPES = {
    "Float16": "<f2", "Float32": "<f4", "Float64": "<f8", "Bool": "u1",
    "Int8": "i1", "Int16": "<i2", "Int32": "<i4", "Int64": "<i8",
    "UInt8": "u1", "UInt16": "<u2", "UInt32": "<u4", "UInt64": "<u8",
}
_COMPLEX = {"Float32": "<c8", "Float64": "<c16"}

#: Positional field names of known Julia structs (RobustNeuralNetworks.jl 0.3, Flux), by type name.
FIELD_NAMES: dict[str, tuple[str, ...]] = {
    "RobustNeuralNetworks." + k: tuple(v.split()) for k, v in {
        "DirectRENParams": "X Y1 X3 Y3 Z3 B2 C2 D12 D21 D22 bx bv by ϵ ρ polar_param D22_free "
                           "D22_zero output_map",
        "ExplicitRENParams": "A B1 B2 C1 C2 D11 D12 D21 D22 bx bv by",
        "ContractingRENParams": "nl nu nx nv ny direct αbar",
        "LipschitzRENParams": "nl nu nx nv ny direct αbar γ learn_γ",
        "GeneralRENParams": "nl nu nx nv ny direct αbar Q S R LQ LR",
        "PassiveRENParams": "nl nu nx nv ny direct αbar ν ρ",
        "DirectLBDNParams": "XY α d b log_γ learn_γ",
        "ExplicitLBDNParams": "A_T B Ψd b sqrtγ",
        "DenseLBDNParams": "nl nu nh ny direct",
        "DiffLBDN": "nl nu nh ny params", "LBDN": "nl nu nh ny explicit",
        "DiffREN": "nl nu nx nv ny params", "REN": "nl nu nx nv ny explicit",
        "WrapREN": "nl nu nx nv ny explicit params", "SandwichFC": "σ XY α d b",
    }.items()
} | {"Flux.Chain": ("layers",), "Flux.Dense": ("weight", "bias", "σ")}


class JuliaSymbol(str):
    """A Julia ``Symbol`` (``:relu``); it is a ``str`` and compares equal to its name."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"JuliaSymbol({str.__repr__(self)})"


@dataclass(frozen=True)
class JuliaType:
    """A Julia ``DataType``: ``name`` is the dotted module path and type name
    (``"Core.Float32"``, ``"NNlib.#relu"``); ``params`` its decoded type parameters;
    ``anonymous`` marks the type of an anonymous function or closure (``jl_anonymous``)."""

    name: str
    params: tuple = ()
    anonymous: bool = False

    @property
    def function_name(self) -> str | None:
        """The function's name if this is the type of a named function, else ``None``."""
        return julia_function_name(self)

    def __repr__(self) -> str:
        extra = (f", {self.params!r}" if self.params else "") + \
            (", anonymous=True" if self.anonymous else "")
        return f"JuliaType({self.name!r}{extra})"


@dataclass(frozen=True)
class JuliaRef:
    """A reference to a module or global by path (BSON.jl ``ref``), e.g. ``("Main", "Base")``."""

    path: tuple[str, ...]


@dataclass(frozen=True)
class JuliaUnionAll:
    """A Julia ``UnionAll`` type, ``body where var``."""

    var: Any
    body: Any


BOTTOM = JuliaType("Union{}")
"""The empty type ``Union{}`` (BSON.jl ``jl_bottom_type``)."""


@dataclass(eq=False)
class JuliaStruct:
    """A Julia struct as BSON.jl stores it: the type and the positional field values.

    Attributes
    ----------
    type_name : str
        Dotted module path and name, e.g. ``"RobustNeuralNetworks.DirectRENParams"``.
    type_params : list
        The decoded type parameters, e.g. ``[JuliaType("Core.Float32"), 2]``.
    fields : list
        The decoded field values in declaration order. For a primitive type that is not a
        known number (a ``Char``, say) it is ``[raw_bytes]``.
    """

    type_name: str
    type_params: list
    fields: list

    @property
    def function_name(self) -> str | None:
        """``"relu"`` for the empty struct of type ``NNlib.#relu``; ``None`` if not a function."""
        return julia_function_name(self)

    @property
    def field_names(self) -> tuple[str, ...] | None:
        """The field names from :data:`FIELD_NAMES`, or ``None`` for an unknown type."""
        name = self.type_name.removeprefix("Main.") if self.type_name.count(".") > 1 else \
            self.type_name
        return FIELD_NAMES.get(name)

    def as_dict(self) -> dict[str, Any]:
        """The fields by name.

        Raises
        ------
        BSONError
            If the type is not in :data:`FIELD_NAMES` or the number of fields differs.
        """
        names = self.field_names
        if names is None or len(names) != len(self.fields):
            raise BSONError(
                f"JuliaStruct.as_dict: no field names for `{self.type_name}` with "
                f"{len(self.fields)} fields; known: {names}. Use `.fields` by position.")
        return dict(zip(names, self.fields))

    def __getitem__(self, name: str) -> Any:
        """The field called ``name`` (see :meth:`as_dict`)."""
        fields = self.as_dict()
        if name not in fields:
            raise KeyError(f"JuliaStruct: `{self.type_name}` has no field {name!r}; "
                           f"fields: {tuple(fields)}")
        return fields[name]


def julia_function_name(value: Any) -> str | None:
    """Name of a named Julia function stored by BSON.jl, else ``None``.

    Functions such as ``relu`` are stored as empty structs of type ``NNlib.#relu``
    (``Main.Base.#tanh`` for Base). Accepts such a :class:`JuliaStruct` or its :class:`JuliaType`.

    Examples
    --------
    >>> julia_function_name(JuliaStruct("NNlib.#relu", [], []))
    'relu'
    >>> julia_function_name(JuliaType("Core.Float32")) is None
    True
    """
    if isinstance(value, JuliaStruct) and not value.fields and not value.type_params:
        name = value.type_name
    elif isinstance(value, JuliaType) and not value.anonymous and not value.params:
        name = value.name
    else:
        return None
    last = name.rsplit(".", 1)[-1]
    if len(last) > 1 and last[0] == "#" and "#" not in last[1:]:
        return last[1:]
    return None


class _Doc(dict):
    """A raw BSON document that remembers its offset (for error messages)."""

    __slots__ = ("offset",)


class _Arr(list):
    """A raw BSON array that remembers its offset."""

    __slots__ = ("offset",)


class _Parser:
    """Raw BSON to ``_Doc``/``_Arr``/scalars, every length checked before it is used."""

    def __init__(self, buf: bytes, origin: str):
        self.buf, self.origin, self.nodes = buf, origin, 0

    def fail(self, offset: int, msg: str):
        raise BSONError(f"read_bson: {self.origin}offset {offset}: {msg}")

    def document(self, off: int, limit: int, depth: int, is_array: bool):
        buf = self.buf
        if depth > MAX_DEPTH:
            self.fail(off, f"documents nested deeper than {MAX_DEPTH} levels")
        if limit - off < 5:
            self.fail(off, f"a document needs at least 5 bytes; only {limit - off} left")
        n = _I32.unpack_from(buf, off)[0]
        if not 5 <= n <= limit - off:
            self.fail(off, f"document length {n} is outside [5, {limit - off}] (bytes left)")
        end = off + n - 1  # offset of the terminating 0x00
        if buf[end] != 0:
            self.fail(end, "document does not end with a 0x00 byte")
        out = _Arr() if is_array else _Doc()
        out.offset = off
        o = off + 4
        while o < end:
            t, start = buf[o], o
            k = buf.find(b"\0", o + 1, end)
            if k < 0:
                self.fail(o, "element name is not terminated by 0x00 inside its document")
            try:
                key = buf[o + 1:k].decode("utf-8")
            except UnicodeDecodeError as err:
                self.fail(o + 1, f"element name is not valid UTF-8 ({err.reason})")
            o, left = k + 1, end - k - 1
            self.nodes += 1
            if t == 0x01 or t == 0x12 or t == 0x10:
                size = 4 if t == 0x10 else 8
                if left < size:
                    self.fail(o, f"{size}-byte value truncated ({left} bytes left)")
                val = (_F64 if t == 0x01 else _I64 if t == 0x12 else _I32).unpack_from(buf, o)[0]
                o += size
            elif t == 0x02 or t == 0x05:
                extra = 4 if t == 0x02 else 5
                if left < extra:
                    self.fail(o, f"length header truncated ({left} bytes left)")
                n = _I32.unpack_from(buf, o)[0]
                if not (1 if t == 0x02 else 0) <= n <= left - extra:
                    self.fail(o, f"{'string' if t == 2 else 'binary'} length {n} is outside "
                                 f"[{1 if t == 2 else 0}, {left - extra}] (bytes left)")
                o += extra
                if t == 0x05:
                    val = buf[o:o + n]
                else:
                    if buf[o + n - 1] != 0:
                        self.fail(o + n - 1, "string does not end with 0x00")
                    try:
                        val = buf[o:o + n - 1].decode("utf-8")
                    except UnicodeDecodeError as err:
                        self.fail(o, f"string is not valid UTF-8 ({err.reason})")
                o += n
            elif t == 0x03 or t == 0x04:
                val, o = self.document(o, end, depth + 1, t == 0x04)
            elif t == 0x08:
                if left < 1 or buf[o] > 1:
                    self.fail(o, "boolean must be one byte, 0x00 or 0x01")
                val, o = buf[o] == 1, o + 1
            elif t == 0x0A:
                val = None
            else:
                self.fail(start, f"unsupported BSON element type 0x{t:02x}")
            if is_array:
                out.append(val)
            elif key in out:
                self.fail(start, f"duplicate key {key!r}")
            else:
                out[key] = val
        return out, end + 1


class _Decoder:
    """BSON.jl's tagged documents to Python values; backrefs resolved lazily, once each."""

    def __init__(self, origin: str, refs: Any, budget: int):
        self.origin, self.refs, self.budget = origin, refs, budget
        self.memo: dict[int, Any] = {}
        self.busy: set[int] = set()

    def fail(self, node: Any, msg: str):
        where = f"offset {node.offset}: " if isinstance(node, (_Doc, _Arr)) else ""
        raise BSONError(f"read_bson: {self.origin}{where}{msg}")

    def need(self, doc: _Doc, key: str, kind: type | tuple[type, ...]) -> Any:
        if key not in doc:
            self.fail(doc, f"`{doc['tag']}` document lacks the key `{key}`")
        val = doc[key]
        if not isinstance(val, kind) or (isinstance(val, bool) and kind is int):
            self.fail(doc, f"`{doc['tag']}.{key}` has the wrong kind ({type(val).__name__})")
        return val

    def value(self, x: Any, depth: int) -> Any:
        self.budget -= 1
        if self.budget < 0:
            self.fail(x, "decoding work exceeds the budget (backrefs expanding?)")
        if depth > MAX_DEPTH:
            self.fail(x, f"values nested deeper than {MAX_DEPTH} levels")
        if isinstance(x, _Arr):
            out = []
            for v in x:
                out.append(self.value(v, depth + 1))
            return out
        if not isinstance(x, _Doc):
            return x
        tag = x.get("tag")
        if not isinstance(tag, str):
            out = {}
            for k, v in x.items():
                out[k] = self.value(v, depth + 1)
            return out
        handler = getattr(self, "tag_" + tag, None)
        if handler is None:
            self.fail(x, f"unsupported BSON.jl tag {tag!r}")
        return handler(x, depth + 1)

    def items(self, doc: _Doc, key: str, depth: int) -> list:
        out = []
        for v in self.need(doc, key, _Arr):
            out.append(self.value(v, depth))
        return out

    def datatype(self, doc: _Doc, depth: int) -> JuliaType:
        t = self.value(self.need(doc, "type", _Doc), depth)
        if not isinstance(t, JuliaType):
            self.fail(doc, f"`{doc['tag']}.type` is not a datatype; got {type(t).__name__}")
        return t

    def tag_datatype(self, doc: _Doc, depth: int) -> JuliaType:
        name = self.need(doc, "name", _Arr)
        if not name or not all(isinstance(s, str) for s in name):
            self.fail(doc, "`datatype.name` must be a non-empty list of strings")
        return JuliaType(".".join(name), tuple(self.items(doc, "params", depth)))

    def tag_jl_anonymous(self, doc: _Doc, depth: int) -> JuliaType:
        tn = self.value(self.need(doc, "typename", _Doc), depth)
        name = tn.fields[1] if isinstance(tn, JuliaStruct) and len(tn.fields) > 1 else None
        name = str(name) if isinstance(name, str) else "#anonymous"
        return JuliaType(name, tuple(self.items(doc, "params", depth)), anonymous=True)

    def tag_jl_bottom_type(self, doc: _Doc, depth: int) -> JuliaType:
        return BOTTOM

    def tag_tuple(self, doc: _Doc, depth: int) -> tuple:
        return tuple(self.items(doc, "data", depth))

    tag_svec = tag_tuple

    def tag_symbol(self, doc: _Doc, depth: int) -> JuliaSymbol:
        return JuliaSymbol(self.need(doc, "name", str))

    def tag_ref(self, doc: _Doc, depth: int) -> JuliaRef:
        path = self.need(doc, "path", _Arr)
        if not all(isinstance(s, str) for s in path):
            self.fail(doc, "`ref.path` must be a list of strings")
        return JuliaRef(tuple(path))

    def tag_unionall(self, doc: _Doc, depth: int) -> JuliaUnionAll:
        var = self.value(self.need(doc, "var", object), depth)
        return JuliaUnionAll(var, self.value(self.need(doc, "body", object), depth))

    def tag_backref(self, doc: _Doc, depth: int) -> Any:
        k = self.need(doc, "ref", int)
        if self.refs is None:
            self.fail(doc, "backref found but the file has no top-level `_backrefs` list")
        if not 1 <= k <= len(self.refs):
            self.fail(doc, f"backref {k} is outside [1, {len(self.refs)}]")
        if k not in self.memo:
            if k in self.busy:
                self.fail(doc, f"backref {k} refers to itself (cyclic structure)")
            self.busy.add(k)
            self.memo[k] = self.value(self.refs[k - 1], depth)
            self.busy.discard(k)
        return self.memo[k]

    def tag_array(self, doc: _Doc, depth: int) -> np.ndarray:
        eltype = self.datatype(doc, depth)
        size = self.need(doc, "size", _Arr)
        if len(size) > _MAX_NDIM or not all(
                isinstance(n, int) and not isinstance(n, bool) and 0 <= n < 2**62 for n in size):
            self.fail(doc, f"`array.size` must be at most {_MAX_NDIM} integers in "
                           f"[0, 2**62); got {list(size)[:_MAX_NDIM + 1]}")
        shape, count = tuple(size), math.prod(size)
        data = self.need(doc, "data", (bytes, _Arr))
        try:
            if isinstance(data, _Arr):
                if count != len(data):
                    self.fail(doc, f"array of size {shape} holds {len(data)} elements")
                flat = np.empty(count, dtype=object)
                for i, v in enumerate(data):
                    flat[i] = self.value(v, depth)
                return flat.reshape(shape, order="F").copy(order="C")
            dtype = _dtype(eltype)
            if dtype is None:
                self.fail(doc, f"unsupported bits element type `{eltype.name}`")
            if count * dtype.itemsize != len(data):
                self.fail(doc, f"array of size {shape} and element type `{eltype.name}` needs "
                               f"{count * dtype.itemsize} bytes; the data has {len(data)}")
            flat = np.frombuffer(data, dtype=dtype, count=count)
            if eltype.name.endswith("Bool"):
                flat = flat != 0
            return flat.reshape(shape, order="F").astype(flat.dtype.newbyteorder("="), order="C")
        except (ValueError, MemoryError) as err:
            if isinstance(err, BSONError):
                raise
            self.fail(doc, f"array of size {shape} cannot be built ({err})")

    def tag_struct(self, doc: _Doc, depth: int) -> Any:
        t = self.datatype(doc, depth)
        data = self.need(doc, "data", (bytes, _Arr))
        if isinstance(data, bytes):  # a primitive type: its raw little-endian bytes
            dtype = None if t.params else _dtype(t)
            if dtype is not None and dtype.itemsize == len(data):
                val = np.frombuffer(data, dtype=dtype)[0]
                return bool(val) if t.name.endswith("Bool") else val
            return JuliaStruct(t.name, list(t.params), [data])
        fields = self.items(doc, "data", depth)
        if t.name.rsplit(".", 2)[-2:] in (["Base", "Dict"], ["Base", "IdDict"]):
            if len(fields) != 2 or not all(isinstance(f, list) for f in fields) \
                    or len(fields[0]) != len(fields[1]):
                self.fail(doc, "a `Base.Dict` must hold two lists of equal length (keys, values)")
            try:
                out = dict(zip(fields[0], fields[1]))
            except TypeError as err:
                self.fail(doc, f"a `Base.Dict` key cannot be a Python dict key ({err})")
            if len(out) != len(fields[0]):
                self.fail(doc, "`Base.Dict` keys collide in Python (a symbol and a string?)")
            return out
        return JuliaStruct(t.name, list(t.params), fields)


def _dtype(t: JuliaType) -> np.dtype | None:
    """NumPy dtype (little-endian) of a Julia bits type, or ``None`` if unsupported."""
    mod, _, name = t.name.rpartition(".")
    if mod not in ("Core", "Base", "Main.Base", "Main.Core"):
        return None
    if name == "Complex" and len(t.params) == 1 and isinstance(t.params[0], JuliaType):
        code = _COMPLEX.get(t.params[0].name.rpartition(".")[2])
    else:
        code = None if t.params else _DTYPES.get(name)
    return None if code is None else np.dtype(code)


def _load(source: Any, max_size: int) -> tuple[bytes, str]:
    if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 5:
        raise ValueError(f"read_bson: `max_size` must be an integer >= 5; got {max_size!r}.")
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, origin = bytes(source), ""
    elif isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        origin = f"file {os.fsdecode(path)!r}: "
        if os.stat(path).st_size > max_size:
            raise BSONError(f"read_bson: {origin}larger than `max_size`={max_size} bytes; "
                            "pass a larger `max_size` if the file is trusted.")
        with open(path, "rb") as f:
            data = f.read(max_size + 1)
    else:
        raise TypeError(
            f"read_bson: `source` must be a path or bytes; got {type(source).__name__}.")
    if len(data) > max_size:
        raise BSONError(f"read_bson: {origin}{len(data)} bytes is more than "
                        f"`max_size`={max_size}; pass a larger `max_size` if the input is trusted.")
    return data, origin


def _parse(source: Any, max_size: int) -> tuple[_Doc, _Parser]:
    data, origin = _load(source, max_size)
    parser = _Parser(data, origin)
    try:
        doc, end = parser.document(0, len(data), 0, False)
    except RecursionError as err:
        raise BSONError(f"read_bson: {origin}nesting too deep for the Python stack") from err
    if end != len(data):
        parser.fail(end, f"{len(data) - end} unexpected bytes after the top-level document")
    return doc, parser


def read_bson_raw(source: Any, *, max_size: int = DEFAULT_MAX_SIZE) -> dict:
    """Parse BSON without interpreting BSON.jl's tags (for inspection and debugging).

    Parameters
    ----------
    source : str, os.PathLike, bytes, bytearray or memoryview
        A path to a file, or the file's content.
    max_size : int
        Largest input accepted, in bytes.

    Returns
    -------
    dict
        Documents as ``dict`` (string keys), arrays as ``list``, binary as ``bytes``, doubles as
        ``float``, int32/int64 as ``int``, booleans, strings and ``None``.

    Raises
    ------
    BSONError
        If the input is larger than ``max_size``, truncated, malformed, nested deeper than
        :data:`MAX_DEPTH`, or uses a BSON type other than 0x01-0x05, 0x08, 0x0A, 0x10, 0x12.
    OSError
        If the path cannot be read.
    """
    return _parse(source, max_size)[0]


def read_bson(source: Any, *, max_size: int = DEFAULT_MAX_SIZE) -> dict[str, Any]:
    """Read a BSON.jl file into Python values, safely.

    Parameters
    ----------
    source : str, os.PathLike, bytes, bytearray or memoryview
        A path to a ``.bson`` file, or the file's content.
    max_size : int
        Largest input accepted, in bytes (default 2 GiB).

    Returns
    -------
    dict of str to Any
        The top-level ``Base.Dict`` (or plain document) with string keys (symbol keys become
        ``str``). Values are decoded as the module docstring's table says; numeric arrays keep
        Julia's shape and element type, ``A[i, j] == A_julia[i+1, j+1]``.

    Raises
    ------
    BSONError
        If the input is larger than ``max_size``, truncated, malformed or hostile (a length or
        array size that does not match the data, nesting deeper than :data:`MAX_DEPTH`, a cyclic
        or out-of-range backref, an unknown tag or element type), or its top level is not a
        dictionary with string or symbol keys. The message names the file and offset.
    OSError
        If the path cannot be read.

    Examples
    --------
    >>> read_bson(b"\\x0f\\x00\\x00\\x00\\x10n\\x00\\x03\\x00\\x00\\x00\\nx\\x00\\x00")
    {'n': 3, 'x': None}
    """
    raw, parser = _parse(source, max_size)
    origin = parser.origin
    refs = raw.pop("_backrefs", None)
    if refs is not None and not isinstance(refs, _Arr):
        raise BSONError(f"read_bson: {origin}`_backrefs` must be a BSON array")
    dec = _Decoder(origin, refs, 2 * parser.nodes + 64)
    try:
        top = dec.value(raw, 0)
    except RecursionError as err:
        raise BSONError(f"read_bson: {origin}values nested too deep for the Python stack") from err
    except MemoryError as err:
        raise BSONError(f"read_bson: {origin}out of memory while decoding") from err
    if not isinstance(top, dict):
        name = top.type_name if isinstance(top, JuliaStruct) else type(top).__name__
        raise BSONError(f"read_bson: {origin}the top level must be a Dict; got {name}")
    if not all(isinstance(k, str) for k in top):
        bad = next(k for k in top if not isinstance(k, str))
        raise BSONError(f"read_bson: {origin}top-level keys must be strings or symbols; "
                        f"got {bad!r}")
    return {str(k): v for k, v in top.items()}
