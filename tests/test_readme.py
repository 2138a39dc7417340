"""The README's Python blocks run as written, in order, in a fresh interpreter."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def python_blocks(text: str) -> list[str]:
    """The bodies of the README's ```python fenced blocks, in order."""
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_python_blocks_are_found():
    blocks = python_blocks("x\n```python\na = 1\n```\n```bash\nls\n```\n```python\nb = a\n```\n")
    assert blocks == ["a = 1\n", "b = a\n"]


def test_readme_python_blocks_run(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("jax")
    blocks = python_blocks(README.read_text())
    assert len(blocks) >= 2, "the README lost its Python blocks"
    script = tmp_path / "readme.py"
    script.write_text("\n".join(blocks))
    env = {**os.environ, "PYTHON_JULIAPKG_OFFLINE": "yes"}
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300, env=env)
    assert proc.returncode == 0, f"README blocks failed:\n{proc.stdout}\n{proc.stderr}"
    assert (tmp_path / "model.safetensors").is_file()
    assert proc.stdout.splitlines()[0].startswith("True ")        # certified, then gamma
