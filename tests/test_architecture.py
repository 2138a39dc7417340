"""The import rules of docs/architecture.md, checked on the source (AST, no imports run)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from r2dn import backends

from helpers import REPO

#: array frameworks and their ecosystems, by the backend that may import them.
FRAMEWORKS = {"numpy": set(), "torch": {"torch"}, "jax": {"jax", "jaxlib", "optax", "flax",
                                                         "equinox"}}
BRIDGES = {"julia": {"juliacall"}}
ALL_FRAMEWORKS = set().union(*FRAMEWORKS.values(), *BRIDGES.values())
BACKEND_PACKAGES = {name: f"r2dn.{name}" for name in (*backends.BUILTIN, *BRIDGES)}


def imported_modules(path: Path, *, module_level: bool) -> list[str]:
    """The absolute modules a file imports: at module level only, or anywhere (lazy imports)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if module_level else list(ast.walk(tree))
    out = []
    for node in nodes:
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append(node.module)
    return out


def violations(path: Path, *, module_level: bool, frameworks: set[str],
               packages: set[str]) -> list[str]:
    """The imports of ``path`` that name one of ``frameworks`` or ``packages`` (or below)."""
    return [m for m in imported_modules(path, module_level=module_level)
            if m.split(".")[0] in frameworks or any(m == p or m.startswith(p + ".") for p in packages)]


def _files(folder: str) -> list[Path]:
    files = sorted((REPO / folder).glob("*.py"))
    assert files, folder
    return files


def test_core_imports_no_framework_and_no_backend_at_module_level():
    """``r2dn/*.py`` reaches a backend only through the registry (or a lazy import)."""
    for path in _files("r2dn"):
        bad = violations(path, module_level=True, frameworks=ALL_FRAMEWORKS,
                         packages=set(BACKEND_PACKAGES.values()) | {"r2dn.conformance"})
        assert not bad, f"r2dn/{path.name} imports {bad} at module level"


def test_families_import_no_framework_and_no_backend():
    """``r2dn/families/*.py`` declare families: anywhere in them, no framework and no backend."""
    for path in _files("r2dn/families"):
        bad = violations(path, module_level=False, frameworks=ALL_FRAMEWORKS,
                         packages=set(BACKEND_PACKAGES.values()) | {"r2dn.conformance"})
        assert not bad, f"r2dn/families/{path.name} imports {bad}"


def test_conformance_imports_no_framework_at_module_level():
    for path in _files("conformance"):
        bad = violations(path, module_level=True, frameworks=ALL_FRAMEWORKS, packages=set())
        assert not bad, f"conformance/{path.name} imports {bad} at module level"


@pytest.mark.parametrize("name", [*backends.BUILTIN, *BRIDGES])
def test_a_backend_imports_no_other_backend(name):
    """Anywhere in ``backends/<name>/``: no other backend's package or framework."""
    own = FRAMEWORKS[name] if name in FRAMEWORKS else BRIDGES[name]
    others = {p for n, p in BACKEND_PACKAGES.items() if n != name}
    for path in _files(f"backends/{name}"):
        bad = violations(path, module_level=False, frameworks=ALL_FRAMEWORKS - own, packages=others)
        assert not bad, f"backends/{name}/{path.name} imports {bad}"


def test_import_rule_check_catches_a_framework(tmp_path):
    """Negative control: the checks above, on a file that breaks each rule once."""
    src = tmp_path / "bad.py"
    src.write_text("import torch\nimport r2dn.jax as rj\n\ndef f():\n    import jax.numpy\n")
    assert violations(src, module_level=True, frameworks=ALL_FRAMEWORKS,
                      packages={"r2dn.jax"}) == ["torch", "r2dn.jax"]
    assert violations(src, module_level=False, frameworks={"jax"}, packages=set()) == ["jax.numpy"]
