"""The torch example script runs in --quick mode (the GPU check's tests: tests/test_gpu_check.py)."""

from __future__ import annotations

import math
import runpy
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("matplotlib")
pytest.importorskip("tqdm")

ROOT = Path(__file__).resolve().parents[1]


def _load(relative: str) -> dict:
    return runpy.run_path(str(ROOT / relative), run_name="r2dn_script_under_test")


def test_train_example_quick(tmp_path, capsys):
    threads = torch.get_num_threads()
    result = _load("examples/torch_train_r2dn.py")["main"](
        ["--quick", "--out", str(tmp_path), "--no-progress", "--seed", "1"])
    assert torch.get_num_threads() == threads          # the script restores what it changed
    out = capsys.readouterr().out
    assert "final train NRMSE" in out and "final validation NRMSE" in out
    assert "certified: True" in out
    assert all(math.isfinite(result[k]) and result[k] > 0 for k in ("train_nrmse", "val_nrmse"))
    for name in ("loss.png", "fit.png"):
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
