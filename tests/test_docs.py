"""The documentation: every pointer into docs/ from the code resolves to a page and an anchor,
and every page the site lists exists (the site itself is built by ``mkdocs build --strict``)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
POINTER = re.compile(r"docs/([\w/.-]+?\.md)(?:#([\w-]+))?")
SOURCES = ("r2dn", "backends", "conformance", "examples", "benchmarks", "tests")


def anchors(page: Path) -> set[str]:
    """Explicit ``{#id}`` anchors and the slugs MkDocs gives the other headings."""
    text = page.read_text()
    ids = set(re.findall(r"\{#([\w-]+)\}", text))
    for title in re.findall(r"^#+ (.*?)\s*$", text, flags=re.M):
        if "{#" not in title:
            ids.add(re.sub(r"[\s]+", "-", re.sub(r"[^\w\s-]", "", title).strip().lower()))
    return ids


def pointers() -> list[tuple[str, str, str | None]]:
    found = []
    files = [ROOT / "README.md"] + [p for d in SOURCES for p in (ROOT / d).rglob("*")
                                    if p.suffix in (".py", ".md", ".jl", ".toml")]
    for path in files:
        for page, anchor in POINTER.findall(path.read_text(errors="replace")):
            found.append((str(path.relative_to(ROOT)), page, anchor or None))
    return found


def test_anchor_parser():
    page = ROOT / "docs" / "math" / "certificates.md"
    got = anchors(page)
    assert {"dissipation-matrix", "certified", "sandwich-certificate"} <= got
    assert "no-such-anchor" not in got


def test_code_points_into_existing_docs():
    found = pointers()
    assert len(found) >= 10, "expected the code to cite the docs"
    bad = []
    for source, page, anchor in found:
        target = ROOT / "docs" / page
        if not target.is_file():
            bad.append(f"{source}: docs/{page} does not exist")
        elif anchor and anchor not in anchors(target):
            bad.append(f"{source}: docs/{page}#{anchor}: no such anchor")
    assert not bad, "\n".join(bad)


def test_mkdocs_nav_lists_existing_pages():
    yaml = pytest.importorskip("yaml")
    config = (ROOT / "mkdocs.yml").read_text()
    nav = yaml.safe_load("nav:" + config.split("\nnav:", 1)[1])["nav"]
    pages = []

    def walk(items):
        for item in items:
            for value in (item.values() if isinstance(item, dict) else [item]):
                walk(value) if isinstance(value, list) else pages.append(value)
    walk(nav)
    missing = [p for p in pages if not (ROOT / "docs" / p).is_file()]
    assert pages and not missing, missing


#: pages whose Python blocks run as a test (each page in one fresh interpreter, blocks in order).
RUNNABLE_PAGES = ("getting-started.md", "guides/porting.md", "guides/errors.md",
                  "guides/long-sequences.md", "guides/torch.md", "guides/jax.md")


@pytest.mark.parametrize("page", RUNNABLE_PAGES)
def test_docs_python_blocks_run(page, tmp_path):
    import subprocess
    import sys

    from test_readme import python_blocks

    text = (ROOT / "docs" / page).read_text()
    blocks = python_blocks(text)
    assert blocks, f"docs/{page} has no Python block"
    for module in ("torch", "jax", "optax"):
        if f"import {module}" in text:
            pytest.importorskip(module)
    script = tmp_path / "page.py"
    script.write_text("\n".join(blocks))
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, f"docs/{page}:\n{proc.stdout}\n{proc.stderr}"


@pytest.mark.parametrize("module", ["r2dn", "r2dn.config", "r2dn._model", "r2dn.checkpoint",
                                    "r2dn.certify", "r2dn.numpy",
                                    *(f"r2dn.families.{m}" for m in (
                                        "sandwich", "lbdn", "contracting_ren", "lipschitz_ren",
                                        "general_ren", "passive_ren", "contracting_r2dn",
                                        "lipschitz_r2dn", "general_r2dn"))])
def test_docstring_examples_run(module):
    import doctest
    import importlib

    mod = importlib.import_module(module)
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    tests = [t for t in finder.find(mod, module) if t.examples]
    assert tests, f"{module} has no docstring example"
    for test in tests:
        runner.run(test)
    assert runner.failures == 0, f"{runner.failures} failing docstring example(s) in {module}"
