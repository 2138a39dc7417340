"""What a new user meets first: the namespace, the errors for common mistakes, the CLI's exit
statuses and messages, and the opt-in check of non-finite inputs (docs/guides/errors.md)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import r2dn
import r2dn.numpy as rn
from r2dn.cli import main

ROOT = Path(__file__).resolve().parent.parent


# -- namespace -----------------------------------------------------------------------------------

def test_dir_shows_the_api_not_implementation_modules():
    names = dir(r2dn)
    for name in ("certify", "save", "to_numpy", "check_finite_inputs", "ModelConfig", "backend",
                 "CheckpointError", "numpy", "torch", "jax"):
        assert name in names
    for name in ("os", "importlib", "ModuleType", "checkpoint", "_model", "config"):
        assert name not in names


def test_to_numpy_of_a_torch_tensor():
    torch = pytest.importorskip("torch")
    t = torch.ones(2, 3, dtype=torch.float64, requires_grad=True) * 2
    out = r2dn.to_numpy(t)
    assert isinstance(out, np.ndarray) and out.dtype == np.float64
    np.testing.assert_array_equal(out, np.full((2, 3), 2.0))


# -- model inputs --------------------------------------------------------------------------------

def test_numpy_model_given_torch_tensors_names_both_and_the_fix():
    torch = pytest.importorskip("torch")
    model = rn.ContractingREN(1, 2, 3, 1)
    with pytest.raises(TypeError, match=r"`u` is a torch\.Tensor.*r2dn\.numpy model.*"
                                        r"r2dn\.to_numpy\(u\).*r2dn\.torch\.convert"):
        model(model.init_state(1), torch.zeros(1, 1, dtype=torch.float64))


def test_jax_model_given_torch_tensors_names_both_and_the_fix():
    torch = pytest.importorskip("torch")
    rj = pytest.importorskip("r2dn.jax")
    model = rj.ContractingR2DN(1, 2, 3, 1, hidden=(4,))
    with pytest.raises(TypeError, match=r"`us` is a torch\.Tensor.*r2dn\.jax model"):
        model.simulate(model.init_state(1), torch.zeros(3, 1, 1))
    with pytest.raises(TypeError, match=r"`u` is a torch\.Tensor.*r2dn\.jax model"):
        model(model.init_state(1), torch.zeros(1, 1))


def test_torch_model_given_numpy_arrays_names_the_fix():
    rt = pytest.importorskip("r2dn.torch")
    model = rt.LBDN(2, (3,), 1)
    with pytest.raises(TypeError, match=r"numpy\.ndarray.*r2dn\.torch model.*torch\.as_tensor"):
        model(np.zeros((1, 2), np.float32))


def test_jax_model_still_takes_numpy_arrays():
    rj = pytest.importorskip("r2dn.jax")
    model = rj.ContractingREN(1, 2, 3, 1)
    _, y = model(np.zeros((2, 2), np.float32), np.ones((2, 1), np.float32))
    assert y.shape == (2, 1)


@pytest.mark.parametrize("args, kwargs, missing", [
    ((2, 3, 4, 1, (4,)), {}, "gamma"),
    ((2, 3, 4, 1), {"gamma": 1.0}, "hidden"),
])
def test_constructor_errors_name_the_class_not_an_internal_function(args, kwargs, missing):
    with pytest.raises(TypeError) as info:
        rn.LipschitzR2DN(*args, **kwargs)
    msg = str(info.value)
    assert msg.startswith("LipschitzR2DN: ") and f"'{missing}'" in msg
    assert "_config" not in msg and "LipschitzR2DN(nu, nx, nv, ny, hidden, gamma, *" in msg


def test_constructor_unknown_keyword():
    with pytest.raises(TypeError, match=r"^LBDN: .*unexpected keyword argument 'gama'"):
        rn.LBDN(2, (3,), 1, gama=2.0)


# -- non-finite inputs ---------------------------------------------------------------------------

def test_non_finite_inputs_propagate_by_default_and_raise_when_checked():
    model = rn.ContractingREN(1, 2, 3, 1)
    us = np.ones((4, 1, 1))
    us[2] = np.nan
    _, ys = model.simulate(model.init_state(1), us)
    assert np.isfinite(ys[:2]).all() and np.isnan(ys[2:]).all()
    with r2dn.check_finite_inputs():
        with pytest.raises(ValueError, match=r"ContractingREN\.simulate: `us` holds NaN"):
            model.simulate(model.init_state(1), us)
        model.simulate(model.init_state(1), np.ones((4, 1, 1)))      # finite: passes
    assert not r2dn.check_finite_inputs.enabled                       # restored on exit
    model.simulate(model.init_state(1), us)                           # off again: no error


def test_non_finite_check_in_torch_and_under_jax_jit():
    torch = pytest.importorskip("torch")
    rt = pytest.importorskip("r2dn.torch")
    jax = pytest.importorskip("jax")
    rj = pytest.importorskip("r2dn.jax")
    mt = rt.LBDN(2, (3,), 1)
    mj = rj.ContractingREN(1, 2, 3, 1)
    bad = np.full((3, 1, 1), np.inf, np.float32)
    with r2dn.check_finite_inputs():
        with pytest.raises(ValueError, match=r"LBDN\.forward: `u` holds NaN or infinite"):
            mt(torch.tensor([[1.0, float("nan")]]))
        with pytest.raises(ValueError, match=r"`us` holds NaN or infinite"):
            mj.simulate(mj.init_state(1), bad)
        # traced arrays cannot be checked: jit runs (documented: use jax_debug_nans there)
        _, ys = jax.jit(lambda m, u: m.simulate(m.init_state(1), u))(mj, np.zeros_like(bad))
        assert ys.shape == (3, 1, 1)


# -- checkpoints ---------------------------------------------------------------------------------

def test_load_of_a_torch_save_file_says_what_it_is(tmp_path):
    torch = pytest.importorskip("torch")
    rt = pytest.importorskip("r2dn.torch")
    path = tmp_path / "sd.pt"
    torch.save(rt.LBDN(2, (3,), 1).state_dict(), path)
    with pytest.raises(r2dn.CheckpointError, match=r"sd\.pt: .*torch\.save.*r2dn\.save"):
        rt.load(path)


def test_save_of_a_dict_is_a_type_error_naming_it(tmp_path):
    with pytest.raises(TypeError, match=r"must be an r2dn model.*got dict"):
        r2dn.save({"a": 1}, tmp_path / "x.safetensors")


def test_save_into_a_missing_folder_names_the_folder(tmp_path):
    target = tmp_path / "missing" / "m.safetensors"
    with pytest.raises(FileNotFoundError) as info:
        r2dn.save(rn.LBDN(2, (3,), 1), target)
    assert f"folder {target.parent} " in str(info.value) and ".tmp" not in str(info.value)


# -- the command line ----------------------------------------------------------------------------

@pytest.fixture
def checkpoints(tmp_path):
    model = rn.LipschitzR2DN(2, 3, 4, 1, (4,), 1.0)
    good = r2dn.save(model, tmp_path / "good.safetensors")
    direct = model.direct()
    direct["X"] = direct["X"] * np.nan
    bad = r2dn.save(rn.from_direct(model.config, direct, check_finite=False),
                    tmp_path / "nan.safetensors")
    return good, bad


def test_cli_certify_prints_a_legend(checkpoints, capsys):
    assert main(["certify", str(checkpoints[0])]) == 0
    out = capsys.readouterr().out
    assert re.search(r"network_min_eig .*rounding, not a failure", out)
    assert re.search(r"certified\s+True", out)


def test_cli_certify_json(checkpoints, capsys):
    assert main(["certify", str(checkpoints[0]), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    ref = r2dn.certify(rn.load(checkpoints[0]))
    assert rep["model"] == "LipschitzR2DN" and rep["certified"] is True
    assert rep["gamma"] == ref.gamma and rep["min_eig"] == ref.min_eig


def test_cli_certify_non_finite_is_one_line_exit_1(checkpoints, capsys):
    assert main(["certify", str(checkpoints[1])]) == 1
    err = capsys.readouterr().err
    assert err.startswith("r2dn certify: ") and "non-finite" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_cli_missing_file_exit_2_without_a_repeated_prefix(tmp_path, capsys):
    assert main(["certify", str(tmp_path / "nope.safetensors")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("r2dn certify: ") and "r2dn: " not in err and "does not exist" in err
    assert main(["convert", str(tmp_path / "nope.bson"), str(tmp_path / "out.safetensors")]) == 2


def test_cli_usage_error_exit_2_in_a_subprocess(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "r2dn.cli", "certify"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "r2dn.cli", "certify",
                           str(tmp_path / "nope.safetensors")], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_docs_exist_for_the_errors_policy():
    text = (ROOT / "docs" / "guides" / "errors.md").read_text()
    assert "{#non-finite}" in text and "check_finite_inputs" in text
