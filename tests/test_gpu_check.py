"""benchmarks/gpu_check.py: its no-GPU path (a clear message, a skip record, exit 0) and a CPU dry
run of its GPU path (conformance on the device, the timing grid); benchmarks/vs_robustnn.py's
command line refuses a robustnn side without the authors' interpreter."""

from __future__ import annotations

import json
import math
import os
import runpy
import subprocess
import sys

import pytest

from helpers import REPO

torch = pytest.importorskip("torch")


def test_without_gpu_skips_with_a_record(tmp_path):
    # hide any GPU from both frameworks, so the no-GPU path runs on every machine
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "JAX_PLATFORMS": "cpu",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--out",
                           str(tmp_path)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SKIPPED: no CUDA GPU here" in proc.stdout
    record = json.loads((tmp_path / "results.json").read_text())
    assert record["skipped"] is True and "no CUDA GPU" in record["reason"]
    assert "torch.cuda.is_available() is False" in record["reason"]
    assert "conformance" not in record and "timing" not in record


def test_cpu_dry_run_of_the_gpu_path(tmp_path, capsys):
    main = runpy.run_path(str(REPO / "benchmarks" / "gpu_check.py"), run_name="gpu_check")["main"]
    tf32, precision = torch.backends.cuda.matmul.allow_tf32, torch.get_float32_matmul_precision()
    try:
        code = main(["--device", "cpu", "--quick", "--backends", "torch", "--cases",
                     "SandwichLayer-i3o2", "--repeats", "1", "--out", str(tmp_path)])
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.set_float32_matmul_precision(precision)
    assert code == 0
    assert "TF32 disabled" in capsys.readouterr().out
    record = json.loads((tmp_path / "results.json").read_text())
    assert record["skipped"] is False and record["passed"] is True
    conf = record["conformance"]["torch"]
    assert conf["cases"] == 1 and conf["checks"] > 0 and conf["failed"] == 0
    assert (tmp_path / "conformance_torch" / "report.json").is_file()
    rows = record["timing"]["torch"]
    assert [(r["model"], r["size"]) for r in rows] == [("ren", 4), ("ren", 8), ("r2dn", 4),
                                                       ("r2dn", 8)]
    assert all(math.isfinite(r[k]) and r[k] > 0 for r in rows
               for k in ("forward_median_s", "gradient_median_s"))


def test_vs_robustnn_needs_the_authors_interpreter(capsys):
    main = runpy.run_path(str(REPO / "benchmarks" / "vs_robustnn.py"), run_name="vs")["main"]
    with pytest.raises(SystemExit) as err:
        main(["--sides", "robustnn,torch"])
    assert err.value.code == 2
    assert "--robustnn-python is required" in capsys.readouterr().err
