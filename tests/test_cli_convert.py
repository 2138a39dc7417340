"""``r2dn convert`` and ``r2dn certify``: checkpoints and Julia files in, checkpoints out."""

from __future__ import annotations

import numpy as np
import pytest

import r2dn
import r2dn.numpy as rn
from r2dn.cli import main

from helpers import build, data_dir, perturb


def test_convert_checkpoint_round_trip(tmp_path, capsys):
    model = perturb(rn, build(rn, "LipschitzR2DN", 2, 3, 4, 2, seed=1), 1)
    src = r2dn.save(model, tmp_path / "a.safetensors")
    assert main(["convert", str(src), str(tmp_path / "b.safetensors"), "--dtype", "float32"]) == 0
    out = rn.load(tmp_path / "b.safetensors")
    assert out.config == model.config.replace(dtype="float32")
    for k, v in model.direct().items():
        assert np.array_equal(out.direct()[k], v.astype(np.float32))
    assert "checked in numpy" in capsys.readouterr().out


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_convert_checks_in_another_backend(tmp_path, backend):
    pytest.importorskip(backend)
    src = r2dn.save(build(rn, "ContractingREN", 2, 3, 4, 2, seed=0, dtype="float32"),
                    tmp_path / "a.safetensors")
    assert main(["convert", str(src), str(tmp_path / "b.safetensors"), "--to", backend]) == 0
    assert rn.load(tmp_path / "b.safetensors").config.dtype == "float32"


@pytest.mark.parametrize("content", [b"", b"\x00" * 7, b"not a model at all, just some text",
                                     bytes(range(256))])
def test_convert_bad_files_exit_1_with_a_reason(tmp_path, capsys, content):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(content)
    assert main(["convert", str(bad), str(tmp_path / "out.safetensors")]) == 1
    assert "r2dn convert:" in capsys.readouterr().err
    assert not (tmp_path / "out.safetensors").exists()


def test_convert_missing_file(tmp_path, capsys):
    """A missing input is a usage error: exit status 2, one line naming the path."""
    assert main(["convert", str(tmp_path / "none"), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("r2dn convert: ") and f"{tmp_path / 'none'} does not exist" in err


@pytest.mark.skipif(data_dir("julia") is None, reason="../shared/data/julia not found")
def test_convert_julia_bson_to_checkpoint(tmp_path):
    src = data_dir("julia") / "lbdn_mnist.bson"
    assert main(["convert", str(src), str(tmp_path / "lbdn.safetensors")]) == 0
    model = rn.load(tmp_path / "lbdn.safetensors")
    assert model.config.compat == "julia" and model.config.in_features == 784
    assert main(["certify", str(tmp_path / "lbdn.safetensors")]) == 0
    # a plain Flux Dense chain is not a model of the catalogue: refused with a reason
    assert main(["convert", str(data_dir("julia") / "dense_mnist.bson"), str(tmp_path / "d")]) == 1


def test_certify_exit_status(tmp_path, capsys):
    good = r2dn.save(build(rn, "GeneralREN", 2, 3, 4, 2, seed=0), tmp_path / "g.safetensors")
    assert main(["certify", str(good)]) == 0
    assert "certified        True" in capsys.readouterr().out
