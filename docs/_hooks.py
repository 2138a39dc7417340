"""MkDocs hook: give the API reference the installed package layout.

The source tree maps ``r2dn.numpy`` to ``backends/numpy`` (and so on: see pyproject's
``package-dir``), which griffe's finder does not follow. At import this hook lays out
``build/docs-pkg/r2dn`` as the installed package looks (symlinks into the source tree), and
mkdocs.yml points mkdocstrings there. Nothing is copied and nothing in the source tree changes.
"""

from __future__ import annotations

import shutil
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:                      # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
LAYOUT = ROOT / "build" / "docs-pkg"


def _lay_out() -> None:
    dirs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    shutil.rmtree(LAYOUT, ignore_errors=True)
    top = LAYOUT / "r2dn"
    top.mkdir(parents=True)
    for entry in (ROOT / dirs["r2dn"]).iterdir():
        if entry.name != "__pycache__":
            (top / entry.name).symlink_to(entry)
    for name, source in dirs.items():
        if name != "r2dn":
            (LAYOUT / Path(*name.split("."))).symlink_to(ROOT / source)


_lay_out()
