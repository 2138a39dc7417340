"""Smoke runs of the paper's examples and the benchmarks: each script's ``--quick`` mode, end to end.

Each script runs in a subprocess (as a user runs it) with tiny data, model and epochs, on one
backend per script, alternating torch and JAX so both training loops (with and without gradient
clipping, REN and R2DN) are exercised while the CI cost of all runs together stays at about two
minutes on a 2-core CPU. The checks: exit status 0, ``results.json`` with the settings, the stated
deviations from the paper and finite figures, and the PNG plots. The F-16 run needs the
benchmark's data (``$R2DN_DATA/f16`` or ``../shared/data/f16``) and is skipped with the reason when
it is absent; a run pointed at a missing folder must say what is missing.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

from helpers import REPO, data_dir

#: (script, backend, model or None, PNG files the run must write)
QUICK_RUNS = [
    ("examples/f16_sysid.py", "torch", "r2dn", ["train_loss.png", "validation.png"]),
    ("examples/pde_observer.py", "jax", "r2dn", ["heatmap.png", "trajectory.png", "train_loss.png"]),
    ("examples/youla_control.py", "jax", "ren", ["step_response.png", "test_cost.png"]),
    ("benchmarks/expressivity.py", "torch", None, ["expressivity_timing.png"]),
    ("benchmarks/overhead.py", "torch", None, []),
]
#: per-run wall-clock limit (a quick run takes seconds to about a minute on a loaded 2-core CPU)
TIMEOUT_S = 300


def _run(args: list[str], tmp_path) -> subprocess.CompletedProcess:
    env = {**os.environ, "MPLBACKEND": "Agg", "TQDM_DISABLE": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, *args], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=TIMEOUT_S)


def _finite(value) -> bool:
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    if isinstance(value, float):
        return math.isfinite(value) or math.isnan(value)   # a slope's stderr of 2 points is nan
    return True


@pytest.mark.parametrize("script, backend, model, pngs", QUICK_RUNS,
                         ids=[f"{r[0].split('/')[-1][:-3]}-{r[1]}" for r in QUICK_RUNS])
def test_quick_run(script, backend, model, pngs, tmp_path):
    pytest.importorskip(backend)
    args = [str(REPO / script), "--quick", "--backend", backend, "--out", str(tmp_path / "out"),
            "--no-progress"]
    if model is not None:
        args += ["--model", model]
    if script.endswith("f16_sysid.py"):
        folder = data_dir("f16")
        if folder is None:
            pytest.skip("F-16 data absent: set R2DN_DATA to a folder holding f16/ "
                        "(the F16Data_FullMSine_Level*.csv.gz files)")
        args += ["--data", str(folder)]
    proc = _run(args, tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["args"]["quick"] is True
    assert results["deviations_from_paper"], "a quick run must state how it differs from the paper"
    assert "deviations from the paper" in proc.stdout
    assert results["figures"] and _finite(results["figures"])
    for png in pngs:
        assert (tmp_path / "out" / png).stat().st_size > 0, png


def test_f16_missing_data_message(tmp_path):
    proc = _run([str(REPO / "examples" / "f16_sysid.py"), "--quick", "--data",
                 str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")], tmp_path)
    assert proc.returncode != 0
    assert "F-16 data is not in" in proc.stderr and "--data" in proc.stderr
    assert not (tmp_path / "out" / "results.json").exists()


def test_expressivity_times_against_an_earlier_training(tmp_path):
    """``--parts time --nrmse-from DIR`` draws time against expressivity from a training run's
    NRMSE (timing on a quieter machine than the training had); a size the training lacks is an
    error naming it."""
    pytest.importorskip("torch")
    script = str(REPO / "benchmarks" / "expressivity.py")
    common = ["--quick", "--backend", "torch", "--no-progress"]
    train = _run([script, *common, "--parts", "train", "--out", str(tmp_path / "train")], tmp_path)
    assert train.returncode == 0, train.stderr[-3000:]
    timed = _run([script, *common, "--parts", "time", "--nrmse-from", str(tmp_path / "train"),
                  "--out", str(tmp_path / "time")], tmp_path)
    assert timed.returncode == 0, timed.stderr[-3000:]
    results = json.loads((tmp_path / "time" / "results.json").read_text())
    assert set(results["figures"]["time_vs_expressivity_slopes"]) >= {"torch/ren/forward"}
    assert (tmp_path / "time" / "expressivity_time_vs_expressivity.png").stat().st_size > 0
    assert any("NRMSE from the training run" in d and "(backends torch)" in d
               for d in results["deviations_from_paper"])
    rows = (tmp_path / "train" / "rows.jsonl").read_text().splitlines()
    (tmp_path / "train" / "rows.jsonl").write_text(rows[0] + "\n")       # one size left
    lacking = _run([script, *common, "--parts", "time", "--nrmse-from", str(tmp_path / "train"),
                    "--out", str(tmp_path / "time2")], tmp_path)
    assert lacking.returncode != 0 and "no trained" in lacking.stderr
