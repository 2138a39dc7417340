"""float64 checkpoints into JAX: in fresh processes, since 64-bit mode is fixed per process."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("jax")

import r2dn  # noqa: E402
import r2dn.numpy as rnp  # noqa: E402

from helpers import REPO  # noqa: E402

WITHOUT_X64 = """
import sys, numpy as np, jax, r2dn.jax as rn
assert not jax.config.jax_enable_x64
try:
    rn.load(sys.argv[1])
except ValueError as err:
    assert 'dtype="float32"' in str(err), err
else:
    raise SystemExit("a float64 file loaded without 64-bit mode")
model = rn.load(sys.argv[1], dtype="float32")
assert model.config.dtype == "float32"
ref = np.load(sys.argv[2])
for name, value in model.direct().items():
    assert value.dtype == np.float32 and np.array_equal(np.asarray(value), ref[name].astype(np.float32)), name
import r2dn.numpy as rnp
same = rn.convert(rnp.load(sys.argv[1]), dtype="float32")
assert all(np.array_equal(same.direct()[k], model.direct()[k]) for k in same.direct())
print("ok")
"""


def _env():
    return {k: v for k, v in os.environ.items() if k != "JAX_ENABLE_X64"}


def test_float64_file_without_64_bit_mode_names_float32_which_loads(tmp_path):
    model = rnp.LipschitzR2DN(2, 3, 4, 2, gamma=2.0, hidden=(5,), seed=3)      # float64
    path = r2dn.save(model, tmp_path / "m.safetensors")
    np.savez(tmp_path / "ref.npz", **model.direct())
    proc = subprocess.run([sys.executable, "-c", WITHOUT_X64, str(path), str(tmp_path / "ref.npz")],
                          env=_env(), capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_cli_converts_a_float64_file_to_jax(tmp_path, dtype):
    model = rnp.ContractingREN(2, 3, 4, 1, seed=1)
    src = r2dn.save(model, tmp_path / "m.safetensors")
    dst = tmp_path / "out.safetensors"
    proc = subprocess.run([sys.executable, "-m", "r2dn.cli", "convert", str(src), str(dst),
                           "--to", "jax", "--dtype", dtype], env=_env(), capture_output=True,
                          text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    back = rnp.load(dst)
    assert back.config == model.config.replace(dtype=dtype)
    for name, value in back.direct().items():
        assert np.array_equal(value, model.direct()[name].astype(dtype)), name
