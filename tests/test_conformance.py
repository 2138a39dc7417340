"""The conformance suite's quick tier in CI, its negative controls, golden fixtures and CLI.

``test_quick_tier[<case>-<backend>]`` runs every check of one backend on one case of
``r2dn.conformance.QUICK`` against the float64 NumPy reference (see ``conformance/runner.py``).
``R2DN_TEST_BACKENDS=torch,jax`` selects backends (an unknown name raises); a backend that does
not import or, for Julia, is not usable here is skipped with its reason. Known differences are
strict: a listed difference that does not occur fails its test.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from r2dn.cli import main as cli_main
from r2dn.conformance import backends as cb
from r2dn.conformance import golden
from r2dn.conformance.cases import FULL, QUICK, make_config
from r2dn.conformance.runner import (CHECKS, KNOWN_DIFFERENCES, KnownDifference, Runner,
                                     apply_known, load_known)
from r2dn.conformance.suite import run_suite


def _selected() -> tuple[str, ...]:
    text = os.environ.get("R2DN_TEST_BACKENDS")
    if not text:
        return cb.known_names()
    names = tuple(s.strip() for s in text.split(",") if s.strip())
    unknown = [n for n in names if n not in cb.known_names()]
    if unknown:
        raise ValueError(f"R2DN_TEST_BACKENDS: unknown backend(s) {unknown}; choose from "
                         f"{cb.known_names()}.")
    return names


SELECTED = _selected()


@pytest.fixture(scope="module")
def runner() -> Runner:
    adapters, absent = cb.load(SELECTED, jax_fast_compile=True)
    return Runner(adapters, absent, tier="quick")


def _report(results) -> str:
    return "\n".join(f"{r.status} {r.check}: error={r.error} tol={r.tol} {r.detail}"
                     for r in results if r.failed)


@pytest.mark.parametrize("backend", SELECTED)
@pytest.mark.parametrize("case", QUICK, ids=str)
def test_quick_tier(runner, case, backend):
    try:
        if backend in runner.absent:
            pytest.skip(f"backend {backend} absent: {runner.absent[backend]}")
        results = runner.check(case, backend)
    finally:
        if backend == SELECTED[-1]:          # the case's last test: free its compiled programs
            runner.drop(case)
    assert results, "no check ran"
    failing = [r for r in results if r.failed]
    assert not failing, _report(results)


# -- the matrix itself ---------------------------------------------------------------------------

def test_tiers_cover_the_matrix():
    """The quick tier meets every axis the suite promises; quick is part of full; ids unique."""
    assert len(QUICK) >= 50
    assert set(QUICK) <= set(FULL) and len(FULL) > len(QUICK)
    assert len({c.id for c in FULL}) == len(FULL)
    from r2dn.config import FAMILIES
    for tier in (QUICK, FULL):
        assert {c.family for c in tier} == set(FAMILIES)
        assert {c.dtype for c in tier} == {"float32", "float64"}
        assert {c.compat for c in tier} == {None, "julia", "robustnn"}
        rec = [c for c in tier if c.recurrent]
        assert any(not c.polar for c in rec) and any(c.abar < 1 for c in rec)
        assert any(c.init == "long_memory" for c in rec) and any(c.identity_output for c in rec)
        assert any(c.nu > c.ny for c in rec) and any(c.nu < c.ny for c in rec)
        assert any(c.nx == 1 for c in rec) and any(c.nv == 1 for c in rec)
        assert len({c.hidden for c in tier if "R2DN" in c.family}) >= 3
        assert len({c.activation for c in tier}) == 4
        assert any(c.adversarial for c in tier)
        for fam in FAMILIES:
            assert {c.dtype for c in tier if c.family == fam} == {"float32", "float64"}, fam


def test_case_parameters_are_deterministic_and_perturbed():
    from r2dn.conformance.cases import case_direct
    from r2dn.init import init_direct
    case = next(c for c in QUICK if c.init == "long_memory" and "R2DN" in c.family)
    a, b = case_direct(case), case_direct(case)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    init = init_direct(make_config(case, "float64"))
    assert all(not np.allclose(a[k], init[k]) for k in a if a[k].size)   # B1 = C1 = 0 moved too


# -- known differences -----------------------------------------------------------------------------

def test_known_differences_file_is_valid_and_not_stale():
    """Every entry has a reason and matches at least one case of the full tier."""
    known = load_known(KNOWN_DIFFERENCES)
    ids = [c.id for c in FULL]
    import fnmatch
    for k in known:
        assert k.reason.strip()
        for b in k.backend:
            assert any(fnmatch.fnmatchcase(n, b) for n in cb.known_names()), k
        for c in k.check:
            assert any(fnmatch.fnmatchcase(n, c) for n in CHECKS), k
        assert any(fnmatch.fnmatchcase(i, k.case) for i in ids), f"stale entry {k}"


def test_known_differences_are_strict():
    from r2dn.conformance.runner import CheckResult
    k = KnownDifference(case="X-*", backend=("torch",), check=("explicit",), reason="test")
    passed = CheckResult("X-1", "LBDN", "float64", "torch", "explicit", "pass", 0.0, 1e-12)
    failed = CheckResult("X-2", "LBDN", "float64", "torch", "explicit", "fail", 1.0, 1e-12)
    other = CheckResult("Y-1", "LBDN", "float64", "torch", "explicit", "fail", 1.0, 1e-12)
    apply_known([passed, failed, other], [k])
    assert (passed.status, failed.status, other.status) == ("xpass", "xfail", "fail")
    assert passed.failed and not failed.failed and other.failed


# -- negative controls: a deliberately broken backend is caught --------------------------------------

class _Broken(cb.Adapter):
    """Wraps a working adapter and breaks one thing of its models or outputs."""

    def __init__(self, inner: cb.Adapter, how: str) -> None:
        super().__init__(inner.device)
        self.inner, self.how = inner, how
        self.name, self.autodiff, self.computes = inner.name, inner.autodiff, inner.computes

    def context(self):
        return self.inner.context()

    def build(self, config, direct):
        model = self.inner.build(config, direct)
        if self.how in ("flip_B1", "scale_A"):
            original = model.explicit

            def explicit():
                e = original()
                return e._replace(B1=-e.B1) if self.how == "flip_B1" else e._replace(A=1.5 * e.A)

            object.__setattr__(model, "explicit", explicit)
        return model

    def evaluate(self, model, inputs):
        out = self.inner.evaluate(model, inputs)
        if self.how == "grad_X" and out.grads is not None:
            grads = dict(out.grads)
            grads["X"] = -grads["X"]
            out = out._replace(grads=grads)
        return out

    def certify(self, model, out):
        import r2dn
        return r2dn.certify(model)

    def adversarial_gain(self, model, **kw):
        return self.inner.adversarial_gain(model, **kw)


BREAK_CASES = ["ContractingREN-u2x3v3y2-sigmoid-f64", "LipschitzR2DN-u2x3v3y2-h3-tanh-g2-f64"]


@pytest.mark.parametrize("how, expected", [
    ("flip_B1", {"explicit", "step", "rollout"}),
    ("scale_A", {"explicit", "rollout", "certificate"}),
])
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_broken_backend_is_caught(backend, how, expected):
    adapters, absent = cb.load((backend,))
    if backend in absent:
        pytest.skip(f"backend {backend} absent: {absent[backend]}")
    broken = _Broken(adapters[backend], how)
    out = run_suite(tier="quick", cases=",".join(BREAK_CASES), adapters={backend: broken},
                    progress=False)
    assert out.failed > 0
    for cid in BREAK_CASES:
        failing = {r.check for r in out.results if r.case == cid and r.failed}
        assert expected <= failing, (cid, failing)


def test_broken_gradient_is_caught():
    adapters, absent = cb.load(("torch",))
    if "torch" in absent:
        pytest.skip(f"backend torch absent: {absent['torch']}")
    out = run_suite(tier="quick", cases=BREAK_CASES[1], adapters={"torch": _Broken(adapters["torch"], "grad_X")},
                    progress=False)
    assert {r.check for r in out.results if r.failed} == {"grad_fd"}


# -- golden fixtures ---------------------------------------------------------------------------------

def test_golden_fixtures_match_the_reference():
    for cid, err, where in golden.check_all():
        assert err <= 1e-12, (cid, err, where)


def test_golden_regeneration_is_deterministic_and_small(tmp_path):
    paths = golden.regenerate(tmp_path)
    assert {p.name for p in paths} == {p.name for p in golden.GOLDEN_DIR.glob("*.npz")}
    for p in paths:
        assert p.stat().st_size < 32_000
        with np.load(p) as new, np.load(golden.GOLDEN_DIR / p.name) as old:
            assert set(new.files) == set(old.files)
            for k in new.files:
                np.testing.assert_allclose(new[k], old[k], rtol=1e-12, atol=1e-12, err_msg=k)


def test_golden_catches_a_changed_map(tmp_path):
    """Negative control: a fixture whose stored rollout differs by 1e-9 fails the check."""
    case = golden.pinned_cases()[0]
    data = golden.load(case)
    data["rollout.ys"] = data["rollout.ys"] * (1 + 1e-9)
    np.savez(golden.path(case, tmp_path), **data)
    (cid, err, where), *_ = golden.check_all(tmp_path)
    assert err > 1e-12 and where == "rollout.ys"


# -- the CLI -----------------------------------------------------------------------------------------

def test_cli_writes_reports_and_exits_zero(tmp_path, capsys):
    code = cli_main(["conformance", "--quick", "--backends", "numpy,julia", "--no-progress",
                     "--cases", "LBDN-i3o2,ContractingREN-u2x3v3y2", "--report", str(tmp_path)])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "PASSED" in text and "numpy" in text
    report = json.loads((tmp_path / "report.json").read_text())
    assert [c["id"] for c in report["cases"]] == ["ContractingREN-u2x3v3y2-sigmoid-f64",
                                                   "LBDN-i3o2-h4.3-g2-f64"]
    assert all(c["results"] for c in report["cases"])
    assert report["summary"]["failed"] == 0
    if "julia" in report["absent"]:
        assert "ABSENT" in text and report["absent"]["julia"]
    assert (tmp_path / "report.md").read_text().startswith("# r2dn conformance report")
    png = tmp_path / "report.png"
    assert png.exists() and png.read_bytes()[:4] == b"\x89PNG"


def test_cli_exits_nonzero_on_failure(tmp_path, monkeypatch, capsys):
    adapters, _ = cb.load(("numpy",))
    monkeypatch.setattr(cb, "load", lambda *a, **k: ({"numpy": _Broken(adapters["numpy"], "flip_B1")}, {}))
    code = cli_main(["conformance", "--quick", "--backends", "numpy", "--no-progress",
                     "--cases", "ContractingREN-u2x3v3y2", "--report", str(tmp_path)])
    text = capsys.readouterr().out
    assert code == 1 and "FAILED" in text
    assert json.loads((tmp_path / "report.json").read_text())["summary"]["failed"] > 0


def test_cli_usage_errors():
    assert cli_main(["conformance", "--backends", "numpy,cobol", "--no-progress"]) == 2
    with pytest.raises(SystemExit):
        cli_main(["conformance", "--quick", "--full"])
    assert cli_main([]) == 2


def test_console_script_lists_cases():
    exe = shutil.which("r2dn")
    cmd = [exe] if exe else [sys.executable, "-m", "r2dn.cli"]
    run = subprocess.run([*cmd, "conformance", "--quick", "--list"], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == [c.id for c in QUICK]


def test_missing_device_makes_backends_absent_with_a_reason(capsys):
    """``--device cuda`` on a machine without CUDA: torch and JAX are reported absent, not failed."""
    adapters, absent = cb.load(("numpy", "torch", "jax"), device="cuda")
    for name in ("torch", "jax"):
        if name in adapters:
            continue                         # a CUDA machine (or the backend is not installed)
        assert absent[name]
    assert "numpy" in adapters
    code = cli_main(["conformance", "--quick", "--device", "cuda", "--backends", "numpy,torch",
                     "--cases", "SandwichLayer-i3o2", "--no-progress"])
    text = capsys.readouterr().out
    assert code == 0, text
    if "torch" in absent:
        assert "ABSENT" in text


def test_doctests():
    import doctest
    import r2dn.conformance.cases
    import r2dn.conformance.suite
    for module in (r2dn.conformance.cases, r2dn.conformance.suite):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.failed == 0, module.__name__


def test_julia_backend_plumbing_with_a_fake_bridge(monkeypatch):
    """The julia entry calls r2dn.julia's simulate/evaluate when available() says so, and skips
    what Julia has no counterpart for with the bridge's reason (a NumPy stand-in for Julia)."""
    rjl = pytest.importorskip("r2dn.julia")
    if not hasattr(rjl, "simulate_in_julia"):
        pytest.skip("r2dn.julia has no bridge yet")
    calls = []

    def fake_simulate(model, x0, us):
        calls.append(model.config.model)
        return tuple(np.asarray(a, dtype=np.float64) for a in model.simulate(x0, us))

    def fake_evaluate(model, u):
        calls.append(model.config.model)
        return np.asarray(model(u), dtype=np.float64)

    monkeypatch.setattr(rjl, "available", lambda **kw: True)
    monkeypatch.setattr(rjl, "reason", lambda: "fake bridge (NumPy stand-in)")
    monkeypatch.setattr(rjl, "simulate_in_julia", fake_simulate)
    monkeypatch.setattr(rjl, "evaluate_in_julia", fake_evaluate)
    out = run_suite(tier="quick", backends=("julia",), progress=False,
                    cases="ContractingREN-u2x3v1y1-sigmoid-lm-julia,LBDN-i2o1,"
                          "ContractingR2DN-u1x2v3y3-h4.2-tanh-nopolar-robustnn,SandwichLayer-i3o2")
    assert out.failed == 0, [r for r in out.results if r.failed]
    by = {(r.case.split("-")[0], r.check): r.status for r in out.results}
    assert by[("ContractingREN", "rollout")] == "pass" and by[("LBDN", "forward")] == "pass"
    assert by[("ContractingR2DN", "supported")] == "skip"       # compat="robustnn"
    assert by[("SandwichLayer", "supported")] == "skip"
    assert calls == ["ContractingREN", "LBDN"]


def test_measured_worst_errors_are_within_their_tolerances():
    """The recorded full-tier worst errors (``MEASURED``) name real checks and sit below the
    tolerances the suite enforces; a tolerance tightened below a measured error fails here."""
    from r2dn.conformance.tolerances import MEASURED, TOL
    assert set(MEASURED) == set(TOL)
    for dtype, worst in MEASURED.items():
        assert set(worst) <= set(CHECKS), sorted(set(worst) - set(CHECKS))
        for check, value in worst.items():
            assert 0.0 <= value <= TOL[dtype][check], (dtype, check, value)
