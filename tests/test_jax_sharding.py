"""Data parallelism on two host CPU devices (in a subprocess: the device count is fixed when JAX
starts): batch-sharded gradients under meshes and shard_map equal the one-device gradient."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("jax")

from helpers import REPO, TOL  # noqa: E402


def test_batch_sharded_gradients_match_one_device_for_r2dn_and_ren():
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    proc = subprocess.run([sys.executable, str(REPO / "tests" / "jax_mesh_check.py")], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    errors = result["errors"]
    expected = {f"{m}-{how}-{kind}" for m in ("r2dn", "ren") for how in ("set_mesh", "shard_map")
                for kind in ("Explicit", "Auto")}
    assert set(errors) == expected
    assert all(err < TOL["f64"] for err in errors.values()), errors
    if result["native"] == "compiled":      # the REN's C loop (r2dn.jax.native): each device
        rows = result["rows"]               # solves its own 2 of the 4 rows, none the whole batch
        assert rows.pop("ren-set_mesh-Auto") == [], rows     # partitioned by XLA: the spec's loop
        assert all(r and set(r) == {2} for r in rows.values()), rows
        assert result["varying"] == ["data"]


def test_sharded_example_trains_on_two_devices():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    proc = subprocess.run([sys.executable, str(REPO / "examples" / "jax_sharded.py"), "--quick"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("step")]
    assert all("(2 devices)" in line for line in lines)
    losses = [float(line.split()[3]) for line in lines]
    assert losses[-1] < 0.5 * losses[0], losses
