"""Checkpoints: exact round trips, interop with the safetensors package, and clear errors for
every kind of bad file (never a crash, never pickle)."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import r2dn
import r2dn.numpy as rn
from r2dn import checkpoint
from r2dn.errors import CheckpointError

from helpers import RECURRENT, build, perturb

FAMILIES = RECURRENT + ["LBDN", "SandwichLayer"]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("family", FAMILIES)
def test_round_trip_is_exact(tmp_path, family, dtype):
    model = perturb(rn, build(rn, family, 3, 2, 4, 2, seed=2, dtype=dtype), 2)
    path = r2dn.save(model, tmp_path / "m.safetensors")
    again = rn.load(path)
    assert again.config == model.config
    a, b = model.direct(), again.direct()
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k])


def test_interop_with_safetensors_package(tmp_path):
    st_numpy = pytest.importorskip("safetensors.numpy")
    model = build(rn, "GeneralR2DN", 3, 2, 4, 2, seed=1)
    path = r2dn.save(model, tmp_path / "m.safetensors")
    tensors = st_numpy.load_file(str(path))
    assert tensors.keys() == model.direct().keys()
    for k, v in model.direct().items():
        assert np.array_equal(tensors[k], v)
    # and a file the package wrote (with our metadata) loads here
    st_numpy.save_file(tensors, str(tmp_path / "b.safetensors"),
                       metadata={"format": "r2dn/1", "config": model.config.to_json()})
    assert rn.load(tmp_path / "b.safetensors").config == model.config


def _write_raw(path, header: dict, data: bytes = b""):
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)


@pytest.fixture
def saved(tmp_path):
    model = build(rn, "ContractingREN", 2, 3, 4, 2, seed=0)
    path = r2dn.save(model, tmp_path / "m.safetensors")
    blob = path.read_bytes()
    n = struct.unpack("<Q", blob[:8])[0]
    return model, path, json.loads(blob[8:8 + n]), blob[8 + n:]


def _rewrite(path, header, data):
    _write_raw(path, header, data)
    return path


@pytest.mark.parametrize("edit, match", [
    (lambda h: h["__metadata__"].update(format="r2dn/0"), r"format 'r2dn/0' is not supported"),
    (lambda h: h.pop("__metadata__"), r"no r2dn metadata"),
    (lambda h: h["__metadata__"].update(config='{"model": "ContractingREN", "nu": 2}'), r"invalid config"),
    (lambda h: h["__metadata__"].update(config="{oops"), r"invalid config: .*not valid JSON"),
    (lambda h: h.pop("X"), r"missing \['X'\]"),
    (lambda h: h.update(extra=h["bx"]), r"unexpected \['extra'\]"),
    (lambda h: h["X"].update(dtype="F32"), r"tensor `X` has dtype 'F32'; the config says float64"),
    (lambda h: h["X"].update(dtype="I64"), r"tensor `X` has dtype 'I64'"),
    (lambda h: h["X"].update(shape=[3, 3]), r"tensor `X` has shape \[3, 3\]"),
    (lambda h: h["X"].update(data_offsets=[0, 10**12]), r"data offsets"),
])
def test_bad_header_raises_checkpoint_error(saved, edit, match):
    _, path, header, data = saved
    edit(header)
    with pytest.raises(CheckpointError, match=match):
        rn.load(_rewrite(path, header, data))


def test_config_that_does_not_match_tensors(saved):
    _, path, header, data = saved
    cfg = json.loads(header["__metadata__"]["config"])
    cfg["nx"] = 4
    header["__metadata__"]["config"] = json.dumps(cfg)
    with pytest.raises(CheckpointError, match=r"tensor `\w+` has shape"):
        rn.load(_rewrite(path, header, data))


def test_non_finite_parameters_refused_unless_asked(tmp_path):
    model = build(rn, "LBDN", 3, 0, 0, 2, seed=0)
    d = model.direct()
    d["layers.0.b"] = d["layers.0.b"].copy()
    d["layers.0.b"][0] = np.nan
    with pytest.raises(ValueError, match=r"parameter `layers.0.b` is not finite"):
        rn.from_direct(model.config, d)
    path = r2dn.save(rn.from_direct(model.config, d, check_finite=False), tmp_path / "nan.safetensors")
    with pytest.raises(CheckpointError, match=r"`layers.0.b` holds non-finite values"):
        rn.load(path)
    assert np.isnan(rn.load(path, check_finite=False).direct()["layers.0.b"][0])


def test_missing_file_is_oserror(tmp_path):
    with pytest.raises(FileNotFoundError):
        rn.load(tmp_path / "nope.safetensors")


def test_pickle_and_empty_files_refused(tmp_path):
    import pickle
    p = tmp_path / "m.pkl"
    p.write_bytes(pickle.dumps({"X": np.zeros(3)}))
    with pytest.raises(CheckpointError):
        rn.load(p)
    (tmp_path / "e").write_bytes(b"")
    with pytest.raises(CheckpointError, match="truncated"):
        rn.load(tmp_path / "e")


@settings(max_examples=60, deadline=None, derandomize=True)
@given(data=st.data())
def test_truncated_and_mutated_files_never_crash(tmp_path_factory, data):
    model = build(rn, "ContractingR2DN", 2, 3, 4, 2, seed=0)
    path = tmp_path_factory.mktemp("fuzz") / "m.safetensors"
    blob = bytearray(r2dn.save(model, path).read_bytes())
    kind = data.draw(st.sampled_from(["truncate", "flip", "random"]))
    if kind == "truncate":
        blob = blob[: data.draw(st.integers(0, len(blob) - 1))]
    elif kind == "flip":
        for _ in range(data.draw(st.integers(1, 8))):
            i = data.draw(st.integers(0, len(blob) - 1))
            blob[i] ^= 1 << data.draw(st.integers(0, 7))
    else:
        blob = bytearray(data.draw(st.binary(min_size=0, max_size=256)))
    path.write_bytes(bytes(blob))
    try:
        loaded = rn.load(path)
    except CheckpointError:
        return
    # a mutation that still parses must give a valid model of the stored config
    assert set(loaded.direct()) == set(model.direct())


def test_save_is_atomic(tmp_path, monkeypatch):
    """An interrupted save leaves the previous checkpoint intact."""
    model = build(rn, "LBDN", 3, 0, 0, 2, seed=0)
    path = r2dn.save(model, tmp_path / "m.safetensors")
    before = path.read_bytes()

    class Boom(Exception):
        pass

    def fail(*a, **k):
        raise Boom

    monkeypatch.setattr(checkpoint.os, "replace", fail)
    with pytest.raises(Boom):
        r2dn.save(build(rn, "LBDN", 3, 0, 0, 2, seed=1), path)
    assert path.read_bytes() == before


def test_a_header_length_whose_first_byte_looks_like_pickle_still_reads(tmp_path):
    """A safetensors header length of 0x180 starts with the byte 0x80 (a pickle's first byte):
    the file is still read as a checkpoint, not refused as a torch.save file."""
    header = json.dumps({"__metadata__": {"format": "r2dn/1"}}).encode().ljust(0x180)
    blob = struct.pack("<Q", len(header)) + header
    assert blob[:1] == b"\x80"
    assert checkpoint._read_header(tmp_path / "m.safetensors", blob) == {"__metadata__": {"format": "r2dn/1"}}
