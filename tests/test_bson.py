"""Tests of :mod:`r2dn.julia.bson`, the safe reader for BSON.jl files.

Expected values come from construction (a tiny test-local BSON encoder below, and hand-written
bytes), from the data README's statements about the real Julia files, and from the accuracies the
Julia docs report for the two MNIST models (a wrong array orientation would destroy them).
"""

from __future__ import annotations

import functools
import gzip
import math
import os
import struct
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from r2dn.julia.bson import (
    BOTTOM, FIELD_NAMES, JuliaRef, JuliaStruct, JuliaSymbol, JuliaType, JuliaUnionAll,
    julia_function_name, read_bson, read_bson_raw,
)
from r2dn.errors import BSONError

REPO_ROOT = Path(__file__).resolve().parents[1]
FILES = ("pde_obsv", "lbdn_mnist", "dense_mnist", "echo_ren_params")
FUZZ = settings(deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
TIME_LIMIT_S = 5.0  # per decode of a mutated real file (the biggest decodes in ~10 ms)


def data_dir() -> Path:
    """The shared data folder: ``$R2DN_DATA``, else ``../shared/data`` beside the repository."""
    env = os.environ.get("R2DN_DATA")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


def julia_file(name: str) -> Path:
    path = data_dir() / "julia" / f"{name}.bson"
    if not path.is_file():
        pytest.skip(f"{path} is absent: set R2DN_DATA to the folder holding julia/*.bson")
    return path


@functools.lru_cache(maxsize=None)
def _read_bytes(name: str) -> bytes:
    return julia_file(name).read_bytes()


# ---------------------------------------------------------------------------------------------
# A tiny BSON encoder (test-local oracle): Python values to bytes, type chosen by Python type.


class I32(int):
    """An int to be written as BSON int32 (plain ints are written as int64)."""


def _value(v) -> tuple[int, bytes]:
    if isinstance(v, bool):
        return 0x08, bytes([v])
    if isinstance(v, I32):
        return 0x10, struct.pack("<i", v)
    if isinstance(v, int):
        return 0x12, struct.pack("<q", v)
    if isinstance(v, float):
        return 0x01, struct.pack("<d", v)
    if isinstance(v, str):
        b = v.encode()
        return 0x02, struct.pack("<i", len(b) + 1) + b + b"\0"
    if isinstance(v, bytes):
        return 0x05, struct.pack("<i", len(v)) + b"\0" + v
    if v is None:
        return 0x0A, b""
    if isinstance(v, dict):
        return 0x03, enc(v)
    if isinstance(v, list):
        return 0x04, enc({str(i): x for i, x in enumerate(v)})
    if isinstance(v, tuple):  # (type byte, raw payload) for types the encoder does not know
        return v
    raise TypeError(v)


def enc(doc: dict) -> bytes:
    body = b""
    for key, v in doc.items():
        t, payload = _value(v)
        body += bytes([t]) + key.encode() + b"\0" + payload
    return struct.pack("<i", len(body) + 5) + body + b"\0"


def dt(name: str, *params) -> dict:
    return {"tag": "datatype", "name": name.split("."), "params": list(params)}


def jarray(eltype, size, data) -> dict:
    return {"tag": "array", "type": dt(eltype) if isinstance(eltype, str) else eltype,
            "size": list(size), "data": data}


def jstruct(type_, *fields) -> dict:
    return {"tag": "struct", "type": dt(type_) if isinstance(type_, str) else type_,
            "data": list(fields)}


def jdict(mapping: dict, backrefs: list | None = None) -> bytes:
    top = jstruct(dt("Main.Base.Dict", dt("Core.String"), dt("Core.Any")),
                  list(mapping), list(mapping.values()))
    if backrefs is not None:
        top["_backrefs"] = backrefs
    return enc(top)


def read_one(value, backrefs=None):
    return read_bson(jdict({"x": value}, backrefs))["x"]


# ---------------------------------------------------------------------------------------------
# Raw BSON


def test_hand_written_bytes():
    raw = b"\x0f\x00\x00\x00\x10n\x00\x03\x00\x00\x00\nx\x00\x00"
    assert read_bson(raw) == {"n": 3, "x": None}
    assert read_bson(bytearray(raw)) == read_bson(memoryview(raw)) == {"n": 3, "x": None}


def test_every_bson_type_in_a_plain_document():
    doc = {"d": -1.5, "s": "héllo ϵ", "e": "", "doc": {"a": I32(1)}, "arr": [2, "x", None],
           "bin": b"\x00\xff", "t": True, "f": False, "n": None, "i32": I32(-7), "i64": 2**40}
    want = doc | {"doc": {"a": 1}, "arr": [2, "x", None]}
    assert read_bson(enc(doc)) == want
    assert read_bson_raw(enc(doc)) == want
    assert type(read_bson(enc(doc))["i32"]) is int


def _patch(b: bytes, offset: int, new: bytes) -> bytes:
    return b[:offset] + new + b[offset + len(new):]


_GOOD = enc({"a": 1.0})  # 4 + (1 + 2 + 8) + 1 = 16 bytes


@pytest.mark.parametrize("data, message", [
    pytest.param(b"", "at least 5 bytes", id="empty"),
    pytest.param(_GOOD[:-1], "outside [5, 15]", id="truncated"),
    pytest.param(_patch(_GOOD, 0, struct.pack("<i", 2**31 - 1)), "document length", id="huge-len"),
    pytest.param(_patch(_GOOD, 0, struct.pack("<i", -1)), "document length -1", id="neg-len"),
    pytest.param(_GOOD[:-1] + b"\x01", "does not end with a 0x00", id="no-terminator"),
    pytest.param(_GOOD + b"\0", "1 unexpected bytes", id="trailing"),
    pytest.param(struct.pack("<i", 12) + b"\x01a\0" + bytes(4) + b"\0",
                 "8-byte value truncated (4 bytes left)", id="double-truncated"),
    pytest.param(_patch(enc({"s": "ab"}), 7, struct.pack("<i", -3)), "string length -3",
                 id="string-neg-len"),
    pytest.param(_patch(enc({"s": "ab"}), 7, struct.pack("<i", 99)), "string length 99",
                 id="string-long"),
    pytest.param(_patch(enc({"s": "ab"}), 13, b"x"), "string does not end", id="string-no-nul"),
    pytest.param(_patch(enc({"s": "ab"}), 11, b"\xff"), "not valid UTF-8", id="string-utf8"),
    pytest.param(_patch(enc({"b": b"xyz"}), 7, struct.pack("<i", -1)), "binary length -1",
                 id="binary-neg-len"),
    pytest.param(_patch(enc({"b": b"xyz"}), 7, struct.pack("<i", 2**31 - 1)), "binary length",
                 id="binary-huge-len"),
    pytest.param(_patch(enc({"t": True}), 7, b"\x02"), "boolean", id="bool-2"),
    pytest.param(_patch(enc({"ab": None}), 7, b"c"), "not terminated", id="key-no-nul"),
    pytest.param(_patch(enc({"ab": None}), 5, b"\xff"), "name is not valid UTF-8", id="key-utf8"),
    pytest.param(enc({"a": None, "b": None}).replace(b"b\0", b"a\0"), "duplicate key", id="dup"),
    pytest.param(enc({"x": (0x07, bytes(12))}), "unsupported BSON element type 0x07",
                 id="objectid"),
    pytest.param(enc({"x": (0x09, bytes(8))}), "offset 4: unsupported BSON element type 0x09",
                 id="datetime"),
])
def test_malformed_raw_bson(data, message):
    with pytest.raises(BSONError, match="offset") as err:
        read_bson(data)
    assert message in str(err.value)
    with pytest.raises(BSONError):
        read_bson_raw(data)


def test_nesting_depth_is_capped():
    doc, tup = enc({"leaf": None}), enc({"tag": "tuple", "data": [1]})
    for _ in range(300):  # nested iteratively: (0x03, bytes) is a pre-encoded document
        doc = enc({"d": (0x03, doc)})
        tup = enc({"tag": "tuple", "data": [(0x03, tup)]})
    with pytest.raises(BSONError, match="deeper than 200"):
        read_bson(doc)
    with pytest.raises(BSONError, match="deeper than 200"):
        read_bson(jdict({"x": (0x03, tup)}))


def test_paths_and_sizes(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_bson(tmp_path / "missing.bson")
    bad = tmp_path / "bad.bson"
    bad.write_bytes(_GOOD[:-1])
    with pytest.raises(BSONError, match=r"file '.*bad\.bson': offset 0"):
        read_bson(bad)
    good = tmp_path / "good.bson"
    good.write_bytes(_GOOD)
    assert read_bson(str(good)) == read_bson(good) == {"a": 1.0}
    with pytest.raises(BSONError, match="max_size"):
        read_bson(good, max_size=15)
    with pytest.raises(BSONError, match="max_size"):
        read_bson(_GOOD, max_size=15)
    with pytest.raises(ValueError, match="`max_size`"):
        read_bson(_GOOD, max_size=0)
    with pytest.raises(TypeError, match="`source` must be a path or bytes; got int"):
        read_bson(3)


# ---------------------------------------------------------------------------------------------
# BSON.jl tags

DTYPES = {"Float16": np.float16, "Float32": np.float32, "Float64": np.float64,
          "Int8": np.int8, "Int16": np.int16, "Int32": np.int32, "Int64": np.int64,
          "UInt8": np.uint8, "UInt16": np.uint16, "UInt32": np.uint32, "UInt64": np.uint64,
          "Bool": np.bool_}


def test_array_is_column_major_hand_written():
    # Julia's [1 2 3; 4 5 6] is stored column by column: 1 4 2 5 3 6.
    got = read_one(jarray("Core.Int64", [2, 3], struct.pack("<6q", 1, 4, 2, 5, 3, 6)))
    np.testing.assert_array_equal(got, [[1, 2, 3], [4, 5, 6]])
    assert got.dtype == np.int64 and got.flags.c_contiguous and got.flags.writeable
    got = read_one(jarray("Core.Bool", [3], b"\x01\x00\x01"))
    assert got.dtype == np.bool_ and got.tolist() == [True, False, True]
    got = read_one(jarray(dt("Base.Complex", dt("Core.Float64")), [1], struct.pack("<2d", 1, 2)))
    assert got.dtype == np.complex128 and got[0] == 1 + 2j


def _encode_array(a: np.ndarray, eltype: str, order: str = "F") -> dict:
    return jarray(f"Core.{eltype}", a.shape, a.astype(a.dtype.newbyteorder("<")).tobytes(order))


@settings(FUZZ, max_examples=40)
@given(eltype=st.sampled_from(sorted(DTYPES)), seed=st.integers(0, 2**32 - 1),
       shape=st.lists(st.integers(0, 4), max_size=4).map(tuple))
def test_array_round_trip(eltype, seed, shape):
    rng, dtype = np.random.default_rng(seed), np.dtype(DTYPES[eltype])
    if dtype.kind == "f":
        a = rng.standard_normal(shape).astype(dtype)
    elif dtype.kind == "b":
        a = rng.random(shape) < 0.5
    else:
        a = rng.integers(0 if dtype.kind == "u" else -100, 100, shape).astype(dtype)
    got = read_one(_encode_array(a, eltype))
    assert got.dtype == a.dtype and got.shape == a.shape and got.flags.c_contiguous
    np.testing.assert_array_equal(got, a)


def test_array_round_trip_negative_control():
    # The same check rejects data written in C order, so it does test the orientation.
    a = np.arange(6.0).reshape(2, 3)
    got = read_one(_encode_array(a, "Float64", order="C"))
    assert got.shape == a.shape and not np.array_equal(got, a)


@pytest.mark.parametrize("array, message", [
    pytest.param(jarray("Core.Float64", [2, 2], bytes(24)), "needs 32 bytes", id="short"),
    pytest.param(jarray("Core.Float64", [-1], b""), "array.size", id="negative"),
    pytest.param(jarray("Core.Float64", [1.0], bytes(8)), "array.size", id="float-size"),
    pytest.param(jarray("Core.Float64", [True], bytes(8)), "array.size", id="bool-size"),
    pytest.param(jarray("Core.Float64", [1] * 40, bytes(8)), "array.size", id="ndim"),
    pytest.param(jarray("Core.Float64", [0, 2**62], b""), "array.size", id="dim-overflow"),
    pytest.param(jarray("Main.Point", [1], bytes(8)), "unsupported bits element type",
                 id="eltype"),
    pytest.param(jarray("Core.Float64", [1], "x"), "wrong kind", id="data-kind"),
    pytest.param(jarray(I32(3), [1], bytes(8)), "wrong kind", id="type-kind"),
    pytest.param(jarray(jstruct("Core.Int"), [1], bytes(8)), "not a datatype", id="type-struct"),
    pytest.param(jarray("Core.Any", [2, 2], [1, 2, 3]), "holds 3 elements", id="objects"),
    pytest.param({"tag": "array", "size": [1], "data": bytes(8)}, "lacks the key `type`",
                 id="no-type"),
])
def test_malformed_arrays(array, message):
    with pytest.raises(BSONError, match="offset") as err:
        read_one(array)
    assert message in str(err.value)


def test_forged_array_size_is_rejected_without_allocating():
    """Negative control: 2**40 float64 elements (8 TiB) with 8 bytes of data."""
    data = jdict({"x": jarray("Core.Float64", [2**40], bytes(8))})
    tracemalloc.start()
    start = time.perf_counter()
    with pytest.raises(BSONError, match="needs 8796093022208 bytes; the data has 8"):
        read_bson(data)
    elapsed = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert elapsed < 1.0 and peak < 1 << 20


def test_object_arrays_are_column_major():
    sym = [{"tag": "symbol", "name": s} for s in "acbd"]  # Julia [:a :b; :c :d]
    got = read_one(jarray("Core.Symbol", [2, 2], sym))
    assert got.dtype == object and got.shape == (2, 2) and got.tolist() == [["a", "b"], ["c", "d"]]
    assert isinstance(got[0, 0], JuliaSymbol)
    assert read_one([1, "two", [3.0]]) == [1, "two", [3.0]]  # Vector{Any}: a plain BSON array


def test_structs_and_field_names():
    relu = jstruct("NNlib.#relu")
    dense = jstruct(dt("Flux.Dense", dt("NNlib.#relu")),
                    jarray("Core.Float32", [2, 1], struct.pack("<2f", 1, 2)),
                    jarray("Core.Float32", [2], bytes(8)), relu)
    got = read_one(dense)
    assert isinstance(got, JuliaStruct) and got.type_name == "Flux.Dense"
    assert got.type_params == [JuliaType("NNlib.#relu")]
    assert got.field_names == ("weight", "bias", "σ")
    assert list(got.as_dict()) == list(got.field_names)
    np.testing.assert_array_equal(got["weight"], [[1], [2]])
    assert got["σ"].function_name == "relu" and got.function_name is None
    assert got.type_params[0].function_name == "relu"
    with pytest.raises(KeyError, match="no field 'W'"):
        got["W"]
    other = read_one(jstruct("Main.Point", 1.0, 2.0))
    assert other.fields == [1.0, 2.0] and other.field_names is None
    with pytest.raises(BSONError, match="no field names for `Main.Point`"):
        other.as_dict()
    assert FIELD_NAMES["RobustNeuralNetworks.DirectRENParams"][13:15] == ("ϵ", "ρ")


@pytest.mark.parametrize("name, want", [
    ("NNlib.#relu", "relu"), ("Main.Base.#tanh", "tanh"), ("NNlib.#sigmoid", "sigmoid"),
    ("Main.Base.#identity", "identity"), ("Main.#3#4", None), ("Core.Float64", None),
])
def test_function_names(name, want):
    assert read_one(jstruct(name)).function_name == want
    assert julia_function_name(JuliaType(name)) == want
    assert julia_function_name("relu") is None


def test_primitive_structs():
    f32 = read_one(jstruct("Core.Float32", 0) | {"data": struct.pack("<f", 0.5)})
    assert type(f32) is np.float32 and f32 == 0.5
    u8 = read_one(jstruct("Core.UInt8") | {"data": b"\xfe"})
    assert type(u8) is np.uint8 and u8 == 254
    char = read_one(jstruct("Core.Char") | {"data": b"a\0\0\0"})
    assert isinstance(char, JuliaStruct) and char.fields == [b"a\0\0\0"]


def test_other_tags():
    assert read_one({"tag": "tuple", "data": [1, "a", I32(2)]}) == (1, "a", 2)
    assert read_one({"tag": "svec", "data": []}) == ()
    sym = read_one({"tag": "symbol", "name": "relu"})
    assert isinstance(sym, JuliaSymbol) and sym == "relu" and repr(sym) == "JuliaSymbol('relu')"
    assert read_one({"tag": "ref", "path": ["Main", "Base"]}) == JuliaRef(("Main", "Base"))
    assert read_one(dt("Core.Array", dt("Core.Float32"), 2)) == JuliaType(
        "Core.Array", (JuliaType("Core.Float32"), 2))
    assert read_one({"tag": "jl_bottom_type"}) is BOTTOM
    var = jstruct("Core.TypeVar", {"tag": "symbol", "name": "T"}, {"tag": "jl_bottom_type"},
                  dt("Core.Any"))
    ua = read_one({"tag": "unionall", "var": var, "body": dt("Core.Array", var, 1)})
    assert isinstance(ua, JuliaUnionAll) and ua.var.fields[0] == "T"
    assert ua.body.params[0] is not None and ua.body.name == "Core.Array"
    typename = jstruct("Core.TypeName", "1.9.0", {"tag": "symbol", "name": "#3#4"}, [])
    anon = read_one({"tag": "jl_anonymous", "typename": typename, "params": []})
    assert anon == JuliaType("#3#4", (), anonymous=True) and anon.function_name is None
    assert read_one({"plain": 1}) == {"plain": 1}  # an untagged document


@pytest.mark.parametrize("value, message", [
    pytest.param({"tag": "nonsense"}, "unsupported BSON.jl tag 'nonsense'", id="tag"),
    pytest.param({"tag": "tuple"}, "lacks the key `data`", id="tuple-data"),
    pytest.param({"tag": "tuple", "data": 1}, "wrong kind", id="tuple-kind"),
    pytest.param({"tag": "symbol", "name": 1}, "wrong kind", id="symbol-kind"),
    pytest.param({"tag": "datatype", "name": [], "params": []}, "non-empty", id="dt-name"),
    pytest.param({"tag": "datatype", "name": ["A", 1], "params": []}, "strings", id="dt-int"),
    pytest.param({"tag": "ref", "path": [1]}, "strings", id="ref-path"),
    pytest.param({"tag": "struct", "type": dt("A"), "data": "x"}, "wrong kind", id="struct"),
    pytest.param({"tag": "struct", "type": {"tag": "tuple", "data": []}, "data": []},
                 "not a datatype", id="struct-type"),
    pytest.param({"tag": "unionall", "var": 1}, "lacks the key `body`", id="unionall"),
    pytest.param({"tag": "backref", "ref": 1}, "no top-level `_backrefs`", id="no-backrefs"),
    pytest.param(jstruct(dt("Base.Dict"), [1, 2], [3]), "two lists of equal", id="dict-len"),
    pytest.param(jstruct(dt("Base.Dict"), [[1]], [3]), "cannot be a Python dict key",
                 id="dict-key"),
])
def test_malformed_tags(value, message):
    with pytest.raises(BSONError, match="offset") as err:
        read_one(value)
    assert message in str(err.value)


def _backref(k: int) -> dict:
    return {"tag": "backref", "ref": k}


def test_backrefs():
    f32 = dt("Core.Float32")
    refs = [dt("Core.Array", _backref(2), 1), f32]  # ref 1 uses ref 2; used before `_backrefs`
    got = read_bson(jdict({"a": _backref(1), "b": {"tag": "tuple", "data": [_backref(1)]}},
                          refs))
    assert got["a"] == JuliaType("Core.Array", (JuliaType("Core.Float32"), 1))
    assert got["b"][0] is got["a"]  # a shared object is decoded once
    for k in (0, 3, -1):
        with pytest.raises(BSONError, match=rf"backref {k} is outside \[1, 2\]"):
            read_bson(jdict({"a": _backref(k)}, refs))
    with pytest.raises(BSONError, match="wrong kind"):
        read_bson(jdict({"a": _backref(True)}, refs))
    with pytest.raises(BSONError, match="cyclic"):
        read_bson(jdict({"a": _backref(1)}, [{"tag": "tuple", "data": [_backref(1)]}]))
    with pytest.raises(BSONError, match="`_backrefs` must be a BSON array"):
        read_bson(enc({"a": 1, "_backrefs": 2}))


def test_backref_bomb_is_linear():
    """Each entry holds two backrefs to the previous one: 2**60 leaves if expanded naively."""
    refs = [{"tag": "tuple", "data": [1]}] + [
        {"tag": "tuple", "data": [_backref(k), _backref(k)]} for k in range(1, 60)]
    start = time.perf_counter()
    got = read_bson(jdict({"x": _backref(60)}, refs))["x"]
    assert time.perf_counter() - start < 1.0
    for _ in range(59):
        assert got[0] is got[1]
        got = got[0]
    assert got == (1,)
    chain = [_backref(k + 1) for k in range(1, 300)] + [1]  # ref k points to ref k + 1
    with pytest.raises(BSONError, match="deeper than 200"):
        read_bson(jdict({"x": _backref(1)}, chain))


def test_top_level_dicts():
    sym = {"tag": "symbol", "name": "model"}
    top = jstruct(dt("Main.Base.Dict", dt("Core.Symbol"), dt("Core.Any")), [sym], [1.0])
    got = read_bson(enc(top))
    assert got == {"model": 1.0} and type(next(iter(got))) is str
    nested = read_one(jstruct(dt("Base.Dict"), [I32(1), sym], ["a", "b"]))
    assert nested == {1: "a", "model": "b"}
    assert read_bson(enc({"plain": [1]})) == {"plain": [1]}  # BSON.jl's Dict{Symbol} at the top
    with pytest.raises(BSONError, match="the top level must be a Dict; got Main.Point"):
        read_bson(enc(jstruct("Main.Point", 1.0)))
    with pytest.raises(BSONError, match="top-level keys must be strings"):
        read_bson(enc(jstruct(dt("Base.Dict"), [I32(1)], [2])))
    with pytest.raises(BSONError, match="keys collide"):
        read_bson(enc(jstruct(dt("Base.Dict"), ["model", sym], [2, 3])))


# ---------------------------------------------------------------------------------------------
# The real Julia files (data README, section "julia/")


def _arrays_shapes(values):
    return [(a.shape, a.dtype) for a in values]


def test_pde_obsv():
    d = read_bson(julia_file("pde_obsv"))
    assert set(d) == {"model", "training_loss", "loss_std"}
    loss = d["training_loss"]
    assert loss.dtype == np.float64 and loss.shape == (51,)
    assert loss[-1] == pytest.approx(6.358e-6, rel=1e-3)
    assert isinstance(d["loss_std"], list) and len(d["loss_std"]) == 50
    model = d["model"]
    assert model.type_name == "RobustNeuralNetworks.DiffREN"
    assert model.type_params == [JuliaType("Core.Float64")]
    assert model.field_names == ("nl", "nu", "nx", "nv", "ny", "params")
    assert model["nl"].function_name == "tanh" and model["nl"].type_name == "Main.Base.#tanh"
    assert model.fields[1:5] == [3, 51, 500, 51]
    ps = model["params"]
    assert ps.type_name == "RobustNeuralNetworks.ContractingRENParams"
    assert ps.fields[1:5] == [3, 51, 500, 51] and ps["αbar"] == 1.0
    direct = ps["direct"]
    assert direct.type_name == "RobustNeuralNetworks.DirectRENParams"
    assert len(direct.fields) == 19
    shapes = {k: v.shape for k, v in direct.as_dict().items() if isinstance(v, np.ndarray)}
    assert shapes == {"X": (602, 602), "Y1": (51, 51), "X3": (0, 0), "Y3": (0, 0),
                      "Z3": (0, 0), "B2": (51, 3), "C2": (51, 51), "D12": (500, 3),
                      "D21": (51, 500), "D22": (51, 3), "bx": (51,), "bv": (500,),
                      "by": (51,), "ρ": (1,)}
    assert direct["X"].dtype == np.float64 and np.isfinite(direct["X"]).all()
    assert direct["ϵ"] == 0.01
    flags = [direct[k] for k in ("polar_param", "D22_free", "D22_zero", "output_map")]
    assert flags == [False, True, True, False]  # polar_param=false, output_map=false


def test_lbdn_mnist():
    model = read_bson(julia_file("lbdn_mnist"))["model"]
    assert model.type_name == "Flux.Chain" and model.field_names == ("layers",)
    lbdn, softmax = model["layers"]
    assert softmax.function_name == "softmax" and softmax.type_name == "NNlib.#softmax"
    assert lbdn.type_name == "RobustNeuralNetworks.DiffLBDN"
    assert lbdn.type_params == [JuliaType("Core.Float32"), 2]
    assert model.type_params[0].params[0] == JuliaType(  # resolved from a backref
        "RobustNeuralNetworks.DiffLBDN", (JuliaType("Core.Float32"), 2))
    assert lbdn["nl"].function_name == "relu"
    assert (lbdn["nu"], lbdn["nh"], lbdn["ny"]) == (784, (64, 64), 10)
    ps = lbdn["params"]
    assert ps.type_name == "RobustNeuralNetworks.DenseLBDNParams"
    assert ps.fields[1:4] == [784, (64, 64), 10]
    direct = ps["direct"]
    assert direct.type_name == "RobustNeuralNetworks.DirectLBDNParams"
    assert direct.type_params == [JuliaType("Core.Float32"), 3, 2]
    f32 = np.dtype(np.float32)
    assert _arrays_shapes(direct["XY"]) == [((848, 64), f32), ((128, 64), f32), ((74, 10), f32)]
    assert _arrays_shapes(direct["α"]) == [((1,), f32)] * 3
    assert _arrays_shapes(direct["d"]) == [((64,), f32)] * 2
    assert _arrays_shapes(direct["b"]) == [((64,), f32), ((64,), f32), ((10,), f32)]
    assert direct["log_γ"][0] == pytest.approx(math.log(5.0), rel=1e-6)  # γ = 5, not learned
    assert direct["learn_γ"] is False


def test_dense_mnist():
    model = read_bson(julia_file("dense_mnist"))["model"]
    assert model.type_name == "Flux.Chain"
    *dense, softmax = model["layers"]
    assert softmax.function_name == "softmax"
    assert [layer.type_name for layer in dense] == ["Flux.Dense"] * 3
    assert [layer["σ"].function_name for layer in dense] == ["relu", "relu", "identity"]
    f32 = np.dtype(np.float32)
    assert _arrays_shapes(layer["weight"] for layer in dense) == [
        ((64, 784), f32), ((64, 64), f32), ((10, 64), f32)]
    assert _arrays_shapes(layer["bias"] for layer in dense) == [
        ((64,), f32), ((64,), f32), ((10,), f32)]
    array2 = JuliaType("Core.Array", (JuliaType("Core.Float32"), 2))
    assert dense[0].type_params[1] == array2  # resolved from a backref


def test_echo_ren_params():
    d = read_bson(julia_file("echo_ren_params"))
    assert list(d) == ["params"]
    assert d["params"].shape == (1, 552) and d["params"].dtype == np.float64


@pytest.mark.parametrize("name", FILES)
def test_real_files_bytes_and_max_size(name):
    data = _read_bytes(name)
    assert read_bson(data).keys() == read_bson(julia_file(name)).keys()
    with pytest.raises(BSONError, match="max_size"):
        read_bson(julia_file(name), max_size=len(data) - 1)


def _mnist_test_set():
    folder = data_dir() / "mnist"
    if not (folder / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"{folder} has no MNIST test split")
    images = gzip.decompress((folder / "t10k-images-idx3-ubyte.gz").read_bytes())
    labels = gzip.decompress((folder / "t10k-labels-idx1-ubyte.gz").read_bytes())
    x = np.frombuffer(images, np.uint8, offset=16).reshape(-1, 784) / 255.0
    return x, np.frombuffer(labels, np.uint8, offset=8)


def test_dense_mnist_reproduces_julia_test_accuracy():
    """Julia docs: 96.61 % test accuracy; a transposed or scrambled weight gives ~10 %."""
    x, labels = _mnist_test_set()
    *dense, _ = read_bson(julia_file("dense_mnist"))["model"]["layers"]
    h = x
    for layer in dense:
        h = h @ layer["weight"].T.astype(np.float64) + layer["bias"]
        h = np.maximum(h, 0) if layer["σ"].function_name == "relu" else h
    assert np.mean(h.argmax(1) == labels) == pytest.approx(0.9661, abs=5e-4)


def test_lbdn_mnist_reproduces_julia_test_accuracy():
    """Julia docs: 97.24 % test accuracy, via the Sandwich layers of docs/math/lbdn.md#sandwich."""
    x, labels = _mnist_test_set()
    lbdn = read_bson(julia_file("lbdn_mnist"))["model"]["layers"][0]
    direct = lbdn["params"]["direct"]
    sizes = (*lbdn["nh"], lbdn["ny"])
    sqrt_gamma = math.sqrt(math.exp(direct["log_γ"][0]))

    def cayley(xy, alpha, n):
        w = alpha * xy.astype(np.float64) / np.linalg.norm(xy)
        u, v = w[:n], w[n:]
        z, eye = u - u.T + v.T @ v, np.eye(n)
        return np.linalg.solve(eye + z, eye - z), -2 * np.linalg.solve((eye + z).T, v.T)

    h = sqrt_gamma * x.T
    for k in range(len(sizes) - 1):
        a_t, b = cayley(direct["XY"][k], direct["α"][k][0], sizes[k])
        psi = np.exp(direct["d"][k].astype(np.float64))
        pre = math.sqrt(2) * (b / psi[:, None]) @ h + direct["b"][k][:, None]
        h = math.sqrt(2) * (a_t * psi) @ np.maximum(pre, 0)
    _, b = cayley(direct["XY"][-1], direct["α"][-1][0], sizes[-1])
    y = sqrt_gamma * b @ h + direct["b"][-1][:, None]
    assert np.mean(y.argmax(0) == labels) == pytest.approx(0.9724, abs=5e-4)


# ---------------------------------------------------------------------------------------------
# Fuzzing the real files: every mutation decodes or raises BSONError, quickly.


def _layout(data: bytes):
    """Test-local walk of a well-formed file: length fields (offset, width, kind) and the
    offsets of structural bytes (everything except binary payloads)."""
    fields, payload = [], []

    def doc(o: int, in_size: bool = False) -> int:
        fields.append((o, 4, "doc"))
        end = o + struct.unpack_from("<i", data, o)[0]
        o += 4
        while data[o] != 0:
            t, k = data[o], data.index(b"\0", o + 1)
            key, o = data[o + 1:k], k + 1
            if t in (1, 0x12):
                if in_size and t == 0x12:
                    fields.append((o, 8, "size"))
                o += 8
            elif t == 0x10:
                o += 4
            elif t in (2, 5):
                fields.append((o, 4, "len"))
                n = struct.unpack_from("<i", data, o)[0]
                if t == 5:
                    payload.append((o + 5, o + 5 + n))
                o += 4 + n + (t == 5)
            elif t in (3, 4):
                o = doc(o, key == b"size")
            elif t == 8:
                o += 1
        assert o == end - 1
        return end

    doc(0)
    mask = np.ones(len(data), bool)
    for a, b in payload:
        mask[a:b] = False
    return fields, np.flatnonzero(mask)


@pytest.fixture(scope="module")
def real_files():
    files = {}
    for name in FILES:
        data = _read_bytes(name)
        files[name] = (data, *_layout(data))
    return files


def decodes_or_raises_bson_error(data: bytes, reader=read_bson) -> None:
    start = time.perf_counter()
    try:
        reader(data)
    except BSONError:
        pass
    elapsed = time.perf_counter() - start
    assert elapsed < TIME_LIMIT_S, f"took {elapsed:.2f} s"


def test_fuzz_oracle_negative_control():
    def leaky(data):
        raise IndexError("index out of range")

    with pytest.raises(IndexError):
        decodes_or_raises_bson_error(b"", reader=leaky)


def _position(draw, data, structural):
    if draw(st.booleans()):
        return int(structural[draw(st.integers(0, len(structural) - 1))])
    return draw(st.integers(0, len(data) - 1))


@settings(FUZZ, max_examples=60)
@given(name=st.sampled_from(FILES), draw=st.data())
def test_fuzz_bit_flips(real_files, name, draw):
    data, _, structural = real_files[name]
    out = bytearray(data)
    for _ in range(draw.draw(st.integers(1, 8))):
        out[_position(draw.draw, data, structural)] ^= 1 << draw.draw(st.integers(0, 7))
    decodes_or_raises_bson_error(bytes(out))


@settings(FUZZ, max_examples=40)
@given(name=st.sampled_from(FILES), draw=st.data())
def test_fuzz_truncation(real_files, name, draw):
    data, _, structural = real_files[name]
    decodes_or_raises_bson_error(data[:_position(draw.draw, data, structural)])


@settings(FUZZ, max_examples=50)
@given(name=st.sampled_from(FILES), draw=st.data())
def test_fuzz_overwrites(real_files, name, draw):
    data, _, structural = real_files[name]
    out = bytearray(data)
    for _ in range(draw.draw(st.integers(1, 4))):
        at = _position(draw.draw, data, structural)
        new = draw.draw(st.binary(min_size=1, max_size=8))
        out[at:at + len(new)] = new[:len(data) - at]
    decodes_or_raises_bson_error(bytes(out))


@settings(FUZZ, max_examples=50)
@given(name=st.sampled_from(FILES), draw=st.data())
def test_fuzz_forged_lengths(real_files, name, draw):
    data, fields, _ = real_files[name]
    out = bytearray(data)
    for _ in range(draw.draw(st.integers(1, 2))):
        offset, width, kind = draw.draw(st.sampled_from(fields))
        if width == 4:
            value = draw.draw(st.sampled_from([2**31 - 1, 2**30, -1, -(2**31), 0, 4, 5]))
            out[offset:offset + 4] = struct.pack("<i", value)
        else:
            value = draw.draw(st.sampled_from([2**40, 2**62, 2**63 - 1, -1, -(2**63), 0]))
            out[offset:offset + 8] = struct.pack("<q", value)
    decodes_or_raises_bson_error(bytes(out))
