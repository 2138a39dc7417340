"""The torch example and GPU-check scripts run (the example in --quick mode, the GPU check on its
no-CUDA path, or as a CPU dry run when CUDA is absent)."""

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


def test_gpu_check_without_cuda(capsys):
    if torch.cuda.is_available():
        pytest.skip("CUDA present: run benchmarks/gpu_check_torch.py itself")
    main = _load("benchmarks/gpu_check_torch.py")["main"]
    assert main([]) == 0
    assert "CUDA is not available" in capsys.readouterr().out


def test_gpu_check_cpu_dry_run_parity(capsys):
    main = _load("benchmarks/gpu_check_torch.py")["main"]
    matmul_tf32 = torch.backends.cuda.matmul.allow_tf32
    precision = torch.get_float32_matmul_precision()
    try:
        assert main(["--device", "cpu", "--no-timing"]) == 0
    finally:
        torch.backends.cuda.matmul.allow_tf32 = matmul_tf32
        torch.set_float32_matmul_precision(precision)
    out = capsys.readouterr().out
    assert "TF32 disabled" in out and out.count(" PASS  worst") == 9
