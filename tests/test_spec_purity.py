"""The spec is pure array API: it runs on array-api-strict and read-only arrays, imports no
framework, and the backends hold no maths."""

from __future__ import annotations

import ast
import importlib.util
import re
import subprocess
import sys
import tokenize
from pathlib import Path

import numpy as np
import pytest

import r2dn
import r2dn.numpy as rn
from r2dn import _spec, backends

from helpers import REPO, RECURRENT, assert_close, build, perturb

FAMILIES = RECURRENT + ["LBDN", "SandwichLayer"]


def _run(direct, cfg, xp, x0, us):
    e = _spec.direct_to_explicit(direct, cfg, xp=xp)
    act = _spec.activation(cfg.activation, xp=xp)
    if cfg.is_recurrent:
        return _spec.flatten_explicit(e), _spec.simulate_loop(e, _spec.nonlinearity(e, act, xp=xp),
                                                              x0, us, xp=xp)
    return _spec.flatten_explicit(e), (_spec.feedforward(e, act)(us[0, ...]),)


@pytest.mark.parametrize("family", FAMILIES)
def test_spec_runs_unchanged_on_array_api_strict(family):
    xps = pytest.importorskip("array_api_strict")
    model = perturb(rn, build(rn, family, 3, 2, 4, 2, seed=1, hidden=(3, 2)), 1)
    cfg = model.config
    rng = np.random.default_rng(0)
    n_in = cfg.in_features if not cfg.is_recurrent else cfg.nu
    x0 = rng.normal(size=(4, cfg.nx or 1))
    us = rng.normal(size=(5, 4, n_in))
    ref_e, ref_out = _run(model.direct(), cfg, rn.NumpyModel._xp, x0, us)
    strict = {k: xps.asarray(v) for k, v in model.direct().items()}
    got_e, got_out = _run(strict, cfg, xps, xps.asarray(x0), xps.asarray(us))
    assert ref_e.keys() == got_e.keys()
    for k in ref_e:
        assert_close(np.asarray(got_e[k]), ref_e[k])
    for a, b in zip(got_out, ref_out):
        assert_close(np.asarray(a), b)


@pytest.mark.parametrize("family", FAMILIES)
def test_spec_writes_nothing_in_place(family):
    """Read-only NumPy parameters and inputs: any in-place write in the spec would raise."""
    model = perturb(rn, build(rn, family, 2, 3, 4, 2, seed=0), 0)
    direct = model.direct()
    for v in direct.values():
        v.setflags(write=False)
    x0 = np.zeros((2, model.config.nx or 1))
    us = np.ones((3, 2, model.config.nu or model.config.in_features))
    x0.setflags(write=False)
    us.setflags(write=False)
    _run(direct, model.config, rn.NumpyModel._xp, x0, us)


def test_import_r2dn_loads_no_framework():
    code = ("import sys, r2dn, r2dn.numpy, r2dn.certify, r2dn.config;"
            "bad = [m for m in ('torch', 'jax', 'juliacall', 'tensorflow') if m in sys.modules];"
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_spec_imports_no_framework():
    for path in (REPO / "r2dn" / "_spec").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for n in names:
                assert n.split(".")[0] not in ("numpy", "torch", "jax", "scipy"), f"{path.name} imports {n}"


FORBIDDEN = re.compile(r"linalg|solve|cholesky|cayley|inv|pinv|eigh?|qr|svd")


def maths_identifiers(path) -> list[str]:
    """The identifiers of a Python file (comments and docstrings aside) that name a
    linear-algebra routine."""
    with open(path) as f:
        names = {t.string for t in tokenize.generate_tokens(f.readline) if t.type == tokenize.NAME}
    return sorted(n for n in names if FORBIDDEN.fullmatch(n))


#: the array API's missing primitives that the spec takes as arguments (``TriSolve``,
#: ``Unstack``, ``Affine``): a backend's ``primitives.py`` may name linear-algebra routines, and
#: defines only these
PRIMITIVES = {"tri_solve", "unstack", "affine"}


def defined_functions(path) -> set[str]:
    """The names of the top-level functions and classes a Python file defines."""
    tree = ast.parse(Path(path).read_text())
    return {n.name for n in tree.body
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}


def backend_folders() -> dict[str, Path]:
    """The folder of every shipped backend, from the registry (no framework is imported)."""
    folders = {}
    for name, record_module in backends.BUILTIN.items():
        package = record_module.rsplit(".", 1)[0]
        (folder,) = importlib.util.find_spec(package).submodule_search_locations
        folders[name] = Path(folder)
    return folders


def test_backends_hold_no_maths():
    """No identifier in backend code names a linear-algebra routine: a formula found in a
    backend is a second copy of the spec."""
    folders = backend_folders()
    assert set(folders) == set(r2dn.BACKENDS)
    for name, folder in folders.items():
        files = sorted(folder.glob("*.py"))
        assert files, f"no Python files in {folder}"
        for path in files:
            if path.name == "primitives.py":
                extra = defined_functions(path) - PRIMITIVES
                assert not extra, f"backend {name}: primitives.py defines {extra}, not primitives"
                continue
            hits = maths_identifiers(path)
            assert not hits, f"backend {name}: {path.name} uses {hits}"


def test_backend_maths_check_catches_a_solve(tmp_path):
    """Negative control: the check above, on a file with a solve in code (and one only in a
    comment and a docstring, which it ignores)."""
    bad = tmp_path / "bad.py"
    bad.write_text("import torch\nA = torch.linalg.solve(B, C)\n")
    assert maths_identifiers(bad) == ["linalg", "solve"]
    quiet = tmp_path / "quiet.py"
    quiet.write_text('"""Uses solve."""\nA = B  # no cholesky here\n')
    assert maths_identifiers(quiet) == []


def test_primitives_check_catches_a_formula(tmp_path):
    """Negative control: a ``primitives.py`` that defines anything but a primitive is caught."""
    bad = tmp_path / "primitives.py"
    bad.write_text("def tri_solve(M, r, lower):\n    pass\n\ndef cayley(X):\n    pass\n")
    assert defined_functions(bad) - PRIMITIVES == {"cayley"}


def test_seed_gives_same_parameters():
    a = rn.ContractingR2DN(2, 3, 4, 2, (5,), seed=11).direct()
    b = rn.ContractingR2DN(2, 3, 4, 2, (5,), seed=11).direct()
    c = rn.ContractingR2DN(2, 3, 4, 2, (5,), seed=12).direct()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not all(np.array_equal(a[k], c[k]) for k in a if a[k].size > 1)
