"""examples/jax_train_r2dn.py runs end to end in --quick mode and writes its plots."""

from __future__ import annotations

import importlib.util

import pytest

jax = pytest.importorskip("jax")
pytest.importorskip("optax")
pytest.importorskip("matplotlib")
pytest.importorskip("tqdm")
jax.config.update("jax_enable_x64", True)   # as in the other JAX tests: the example must not care

from helpers import REPO  # noqa: E402


def test_training_example_quick(tmp_path):
    path = REPO / "examples" / "jax_train_r2dn.py"
    spec = importlib.util.spec_from_file_location("jax_train_r2dn", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    result = example.main(["--quick", "--seed", "1", "--out", str(tmp_path)])
    for name in ("loss.png", "fit.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result["last_train"] < result["first_train"]
    assert result["certified"] == 1.0
