"""The juliacall bridge to RobustNeuralNetworks.jl.

Three layers of evidence:

1. Without Julia (always run): the keyword arguments the bridge passes are exactly the ones the
   shim reads (parsed from ``r2dn_shim.jl``), they determine the model completely (a NumPy stand-in
   for the shim rebuilds the model from them alone), and the signal layout is transposed
   consistently on the way in and out. The availability probe never downloads, never hangs, and
   says why it fails.
2. With Julia (skipped with the reason otherwise; ``R2DN_REQUIRE_JULIA=1`` turns the skip into a
   failure): every family built in RobustNeuralNetworks.jl agrees with r2dn, and the real and the
   r2dn-written BSON files load in Julia's BSON.jl and simulate as r2dn's models do.
"""

from __future__ import annotations

import os
import re
import sys
import textwrap

import numpy as np
import pytest

import r2dn.julia as rj
import r2dn.numpy as rn
from r2dn import _spec
from r2dn.julia.bson import FIELD_NAMES, JuliaStruct
from r2dn.julia import bridge

from conftest import TOL
from helpers import build, data_dir, perturb

RNN = "RobustNeuralNetworks."
SHIM = bridge.SHIM_PATH.read_text()
FAMILIES = ["ContractingREN", "LipschitzREN", "GeneralREN", "PassiveREN", "LBDN",
            "ContractingR2DN", "LipschitzR2DN", "GeneralR2DN"]
SIZES = [(2, 3), (3, 2), (2, 2)]   # (nu, ny): ny > nu, ny < nu, equal


def _model(family, nu, ny, seed=0, **options):
    options.setdefault("compat", "julia")
    return perturb(rn, build(rn, family, nu, 3, 4, ny, seed=seed, hidden=(3, 2), **options),
                   seed + 10)


def require_julia() -> None:
    """Skip unless the bridge is available; fail instead when ``R2DN_REQUIRE_JULIA=1``."""
    if bridge.available():
        return
    message = f"the Julia bridge is unavailable: {bridge.reason()}"
    if os.environ.get("R2DN_REQUIRE_JULIA") == "1":
        pytest.fail(f"R2DN_REQUIRE_JULIA=1 but {message}")
    pytest.skip(message)


# -- 1. without Julia: the arguments -------------------------------------------------------------

def _shim_keywords(function: str) -> set[str]:
    """The keyword names a shim function reads: ``g(:name)``, ``M(:name)``, ``V(:name)`` and
    ``Symbol("XY_", k)``-style numbered names (returned as ``XY_*``)."""
    body = SHIM[SHIM.index(f"function {function}("):]
    body = body[:body.index("\nend\n")]
    names = set(re.findall(r"\b[gMV]\(:(\w+)\)", body))
    names |= {f"{m}_*" for m in re.findall(r'Symbol\("(\w+)_", k\)', body)}
    return names


def _normalise(keys) -> set[str]:
    return {re.sub(r"_\d+$", "_*", k) for k in keys}


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("nu, ny", SIZES)
def test_arguments_are_the_shims_keywords(family, nu, ny):
    if family == "PassiveREN" and nu != ny:
        pytest.skip("PassiveREN needs nu == ny")
    name, args, kwargs = rj.julia_call(_model(family, nu, ny))
    for v in kwargs.values():   # types juliacall converts unambiguously, Julia index order kept
        assert isinstance(v, (np.ndarray, bool, int, float)) and not isinstance(v, np.generic)
    if name == "r2dn":
        net = {k[len("network_"):] for k in kwargs if k.startswith("network_")}
        assert _normalise(net) == _shim_keywords("lbdn_params")
        assert {k for k in kwargs if not k.startswith("network_")} == _shim_keywords("r2dn")
        assert args[:3] == ("float64", "relu", 4) and list(args[3]) == [3, 2]
        return
    assert _normalise(kwargs) <= _shim_keywords(name)
    if name == "lbdn_params":
        assert _normalise(kwargs) == _shim_keywords(name)
        return
    extra = {"LipschitzREN": {"gamma", "learn_gamma"}, "GeneralREN": {"Q", "S", "R", "LQ", "LR"},
             "PassiveREN": {"nu_index", "rho_index"}, "ContractingREN": set()}
    others = set().union(*extra.values())
    assert set(kwargs) == (_shim_keywords(name) - others) | extra[family]
    assert args == (family, "float64", "relu", nu, 3, 4, ny)


def test_arguments_keep_julia_index_order_and_fill_like_julia():
    model = _model("ContractingREN", 2, 3, polar=False)
    _, _, kw = rj.julia_call(model)
    d = model.direct()
    assert kw["X"] is not d["X"] and np.array_equal(kw["X"], d["X"]) and kw["B2"].shape == (3, 2)
    assert kw["rho"].tolist() == [np.linalg.norm(d["X"])] and kw["polar_param"] is False
    assert kw["X3"].shape == (0, 0) and (kw["D22_free"], kw["D22_zero"]) == (True, False)
    model = rn.ContractingREN(2, 3, 4, 3, identity_output=True, compat="julia", dtype="float32")
    _, args, kw = rj.julia_call(model)
    assert args[1] == "float32" and kw["C2"].dtype == np.float32
    assert np.array_equal(kw["C2"], np.eye(3)) and kw["output_map"] is False


def test_models_julia_computes_differently_are_refused():
    with pytest.raises(ValueError, match="compat='julia'"):
        rj.julia_call(build(rn, "GeneralREN", 3, 3, 4, 2))
    with pytest.raises(ValueError, match="robustnn"):
        rj.julia_call(build(rn, "ContractingR2DN", 3, 3, 4, 2, compat="robustnn"))
    with pytest.raises(ValueError, match="custom activation"):
        rj.julia_call(rn.LBDN(2, (3,), 1, activation=lambda v: v))


class NumpyShim:
    """A stand-in for ``R2DNShim`` that rebuilds each model from the keyword arguments alone and
    runs it in Julia's signal layout ((n, batch), (n, batch, T)). It checks the Python half of the
    bridge; RobustNeuralNetworks.jl itself is checked by the tests that need Julia."""

    _DIRECT = {"eps": "ϵ", "rho": "ρ"}
    _OUTER = {"abar": "αbar", "gamma": "γ", "learn_gamma": "learn_γ", "nu_index": "ν",
              "rho_index": "ρ"}

    def ren_params(self, family, dtype, nl, nu, nx, nv, ny, **kw):
        names = FIELD_NAMES[RNN + "DirectRENParams"]
        inv = {v: k for k, v in self._DIRECT.items()}
        direct = JuliaStruct(RNN + "DirectRENParams", [], [kw[inv.get(n, n)] for n in names])
        outer = FIELD_NAMES[RNN + family + "Params"][7:]
        inv = {v: k for k, v in self._OUTER.items()}
        fields = [rj.structs.julia_function(nl), nu, nx, nv, ny, direct, kw["abar"]]
        fields += [kw[inv.get(n, n)] for n in outer]
        return rj.convert_value(JuliaStruct(RNN + family + "Params", [], fields)).model()

    def lbdn_params(self, dtype, nl, nu, nh, ny, **kw):
        L = len(nh)
        tup = lambda key, n: tuple(kw[f"{key}_{k}"] for k in range(1, n + 1))  # noqa: E731
        direct = JuliaStruct(RNN + "DirectLBDNParams", [], [
            tup("XY", L + 1), tup("alpha", L + 1), tup("d", L), tup("b", L + 1), kw["log_gamma"],
            kw["learn_gamma"]])
        ps = JuliaStruct(RNN + "DenseLBDNParams", [], [rj.structs.julia_function(nl), nu,
                                                       tuple(int(h) for h in nh), ny, direct])
        return rj.convert_value(ps).model()

    def r2dn(self, dtype, nl, nv, nh, **kw):
        net = self.lbdn_params(dtype, nl, nv, nh, nv, **{
            k[len("network_"):]: v for k, v in kw.items() if k.startswith("network_")})
        return {"explicit": {k: v for k, v in kw.items() if not k.startswith("network_")},
                "network": net}

    def simulate(self, model, dtype, x0, us):
        assert x0.shape[1] == us.shape[1]               # (nx, batch), (nu, batch, T)
        if isinstance(model, dict):                     # the R2DN step, column layout
            e, net = model["explicit"], model["network"]
            x, ys = x0, []
            for t in range(us.shape[2]):
                u = us[:, :, t]
                w = net((e["C1"] @ x + e["D12"] @ u + e["bv"][:, None]).T).T
                ys.append(e["C2"] @ x + e["D21"] @ w + e["D22"] @ u + e["by"][:, None])
                x = e["A"] @ x + e["B1"] @ w + e["B2"] @ u + e["bx"][:, None]
            return x, np.stack(ys, axis=2)
        xT, ys = model.simulate(x0.T, np.transpose(us, (2, 1, 0)))
        return xT.T, np.transpose(ys, (2, 1, 0))

    def evaluate(self, model, dtype, u):
        return model(u.T).T

    def explicit_dict(self, model):
        if isinstance(model, dict):
            net = _spec.flatten_explicit(model["network"].explicit())
            return {"network." + k: v for k, v in net.items()}
        flat = _spec.flatten_explicit(model.explicit())
        return {k: v for k, v in flat.items() if k not in ("E", "P", "Lambda")}


@pytest.fixture
def numpy_shim(monkeypatch):
    shim = NumpyShim()
    monkeypatch.setattr(bridge, "_shim", lambda: shim)
    return shim


@pytest.mark.parametrize("family", FAMILIES)
def test_bridge_plumbing_with_a_numpy_shim(family, numpy_shim):
    nu, ny = (2, 2) if family == "PassiveREN" else (3, 2)
    model = _model(family, nu, ny, seed=3, activation="tanh")
    rng = np.random.default_rng(0)
    if model.config.is_recurrent:
        x0, us = rng.normal(size=(5, 3)), rng.normal(size=(7, 5, nu))
        diffs = rj.compare(model, x0, us)
        assert {"xT", "ys", "max"} <= set(diffs)
        xT, ys = rj.simulate_in_julia(model, x0, us)
        assert xT.shape == (5, 3) and ys.shape == (7, 5, ny)
    else:
        diffs = rj.compare(model, rng.normal(size=(5, nu)))
        assert rj.evaluate_in_julia(model, np.ones((5, nu))).shape == (5, ny)
    assert any(k.startswith("explicit.") for k in diffs)
    assert diffs["max"] < 1e-12


def test_bridge_plumbing_negative_control(numpy_shim, monkeypatch):
    """A bridge that forgot to transpose the inputs would be caught by compare."""
    model = _model("LipschitzREN", 3, 3, seed=1)
    real = NumpyShim.simulate
    monkeypatch.setattr(NumpyShim, "simulate", lambda self, m, dt, x0, us: real(
        self, m, dt, x0, us[::-1].copy()))
    rng = np.random.default_rng(0)
    assert rj.compare(model, rng.normal(size=(2, 3)), rng.normal(size=(4, 2, 3)))["ys"] > 1e-3


def test_bridge_input_errors(numpy_shim):
    model = _model("ContractingREN", 2, 2)
    with pytest.raises(ValueError, match=r"`us` must have shape \(T, batch, nu\) with T >= 1, "
                                         r"batch=2, nu=2; got \(3, 2, 5\)"):
        rj.simulate_in_julia(model, np.zeros((2, 3)), np.zeros((3, 2, 5)))
    with pytest.raises(ValueError, match=r"`x0` must have shape \(batch, nx\) with nx=3"):
        rj.simulate_in_julia(model, np.zeros((2, 4)), np.zeros((3, 2, 2)))
    with pytest.raises(TypeError, match="takes 2 input array"):
        rj.compare(model, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="must be an LBDN"):
        rj.evaluate_in_julia(model, np.zeros((2, 2)))


# -- 1. without Julia: the probe -------------------------------------------------------------------

@pytest.fixture
def fresh_probe():
    bridge._probe.cache_clear()
    yield
    bridge._probe.cache_clear()
    bridge._shim.cache_clear()


def _fake_packages(tmp_path, monkeypatch, juliapkg: str, juliacall: str):
    for name, body in (("juliapkg", juliapkg), ("juliacall", juliacall)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(textwrap.dedent(body))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path)] + sys.path))


RESOLVED = """
import os
def resolve(dry_run=False):
    if os.environ.get("PYTHON_JULIAPKG_OFFLINE") != "yes" or not dry_run:
        raise SystemExit("probe must be offline and a dry run")
    return True
"""


def test_probe_without_juliacall(fresh_probe, monkeypatch):
    monkeypatch.setattr(bridge.importlib.util, "find_spec", lambda name: None)
    assert bridge.available() is False
    assert "juliacall is not installed" in bridge.reason()
    with pytest.raises(bridge.JuliaUnavailableError, match="juliacall is not installed"):
        rj.to_julia(_model("ContractingREN", 2, 2))


def test_probe_stops_before_resolving(fresh_probe, monkeypatch, tmp_path):
    _fake_packages(tmp_path, monkeypatch, RESOLVED.replace("return True", "return False"),
                   "raise SystemExit('juliacall must not be imported')")
    assert bridge.available() is False
    assert "not resolved" in bridge.reason() and "install()" in bridge.reason()


def test_probe_times_out_instead_of_hanging(fresh_probe, monkeypatch, tmp_path):
    _fake_packages(tmp_path, monkeypatch, RESOLVED, "import time\ntime.sleep(60)\n")
    monkeypatch.setenv("R2DN_JULIA_PROBE_TIMEOUT", "2")
    assert bridge.available() is False
    assert "timed out after 2 s" in bridge.reason()


@pytest.mark.parametrize("version, ok", [("0.3.3", True), ("0.4.0", False)])
def test_probe_loads_package_and_shim(fresh_probe, monkeypatch, tmp_path, version, ok):
    juliacall = f"""
    class Main:
        @staticmethod
        def seval(code):
            return "{version}" if code.startswith("string(pkgversion") else None
        @staticmethod
        def include(path):
            assert "module R2DNShim" in open(path).read()
    """
    _fake_packages(tmp_path, monkeypatch, RESOLVED, juliacall)
    assert bridge.available() is ok
    assert version in bridge.reason()


def test_probe_reports_julia_errors(fresh_probe, monkeypatch, tmp_path):
    _fake_packages(tmp_path, monkeypatch, RESOLVED,
                   "raise RuntimeError('Package RobustNeuralNetworks not found')")
    assert bridge.available() is False
    assert "RobustNeuralNetworks not found" in bridge.reason()


def test_bad_timeout_setting(fresh_probe, monkeypatch, tmp_path):
    _fake_packages(tmp_path, monkeypatch, RESOLVED, "")
    monkeypatch.setenv("R2DN_JULIA_PROBE_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="`R2DN_JULIA_PROBE_TIMEOUT` must be a number of "
                                         "seconds; got 'soon'"):
        bridge.available()


def test_require_julia_turns_skip_into_failure(monkeypatch):
    monkeypatch.setattr(bridge, "available", lambda **_: False)
    monkeypatch.setattr(bridge, "reason", lambda: "no Julia here")
    monkeypatch.setenv("R2DN_REQUIRE_JULIA", "1")
    with pytest.raises(pytest.fail.Exception, match="R2DN_REQUIRE_JULIA=1 but .*no Julia here"):
        require_julia()
    monkeypatch.delenv("R2DN_REQUIRE_JULIA")
    with pytest.raises(pytest.skip.Exception, match="no Julia here"):
        require_julia()


def test_install_registers_the_packages_with_juliapkg(fresh_probe, monkeypatch, tmp_path):
    log = tmp_path / "calls.txt"
    juliapkg = f"""
    import json
    def add(name, uuid, version=None):
        open({str(log)!r}, "a").write(json.dumps([name, uuid, version]) + "\\n")
    def resolve(dry_run=False, update=False):
        open({str(log)!r}, "a").write(json.dumps(["resolve", dry_run, update]) + "\\n")
        return False
    """
    _fake_packages(tmp_path, monkeypatch, juliapkg, "raise SystemExit('not resolved')")
    monkeypatch.delitem(sys.modules, "juliapkg", raising=False)
    rj.install()
    monkeypatch.delitem(sys.modules, "juliapkg", raising=False)
    import json
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert ["RobustNeuralNetworks", "a1f18e6b-8af1-433f-a85d-2e1ee636a2b8", "0.3"] in calls
    assert {c[0] for c in calls} >= {"Flux", "BSON", "resolve"}
    assert ["resolve", False, False] in calls                # the install resolves for real
    assert bridge.available() is False                       # and the probe ran again


def test_juliapkg_json_pins_robustneuralnetworks_03():
    import json
    spec = json.loads(bridge.JULIAPKG_JSON.read_text())
    rnn = spec["packages"]["RobustNeuralNetworks"]
    assert rnn == {"uuid": "a1f18e6b-8af1-433f-a85d-2e1ee636a2b8", "version": "0.3"}
    assert {"Flux", "BSON"} <= set(spec["packages"])       # the shim's `import Flux`; BSON.load
    assert "import Flux" in SHIM and "using RobustNeuralNetworks" in SHIM


# -- 2. with Julia ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def julia():
    require_julia()
    from juliacall import Main as jl
    return jl




@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("nu, ny", SIZES)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_julia_agrees_with_r2dn(julia, family, nu, ny, dtype):
    if family == "PassiveREN" and nu != ny:
        pytest.skip("PassiveREN needs nu == ny")
    extra = {"nu_index": 0.1, "rho_index": 0.5} if family == "PassiveREN" and nu == 2 else {}
    model = _model(family, nu, ny, seed=4, activation="tanh", dtype=dtype, **extra)
    rng = np.random.default_rng(1)
    if model.config.is_recurrent:
        diffs = rj.compare(model, rng.normal(size=(3, 3)), rng.normal(size=(6, 3, nu)))
    else:
        diffs = rj.compare(model, rng.normal(size=(3, nu)))
    assert diffs["max"] < TOL[f"julia_{dtype.removeprefix('float')}"], diffs


def test_julia_options(julia):
    rng = np.random.default_rng(2)
    for model in (rn.ContractingREN(2, 3, 4, 3, identity_output=True, compat="julia", polar=False),
                  rn.ContractingREN(2, 3, 4, 2, d22_zero=True, abar=0.9, compat="julia"),
                  rn.LipschitzREN(2, 3, 4, 2, 3.0, d22_zero=True, compat="julia"),
                  rn.LBDN(3, (4,), 2, 2.0, learn_gamma=True, compat="julia")):
        model = perturb(rn, model, 1)
        c = model.config
        args = (rng.normal(size=(2, c.nx)), rng.normal(size=(5, 2, c.nu))) if c.is_recurrent \
            else (rng.normal(size=(2, c.in_features)),)
        assert rj.compare(model, *args)["max"] < TOL["float64"]


def test_julia_reads_the_files_r2dn_writes(julia, tmp_path):
    """Julia's BSON.load of write_bson's file gives parameters whose explicit form is ours."""
    julia.seval("using BSON, Flux, RobustNeuralNetworks")
    for model in (_model("GeneralREN", 3, 2, seed=2), _model("LBDN", 3, 2, seed=2)):
        path = rj.write_bson(tmp_path / "m.bson", {"model": model})
        loaded = julia.seval(f'BSON.load(raw"{path}")["model"]')
        assert str(julia.seval("x -> string(nameof(typeof(x)))")(loaded)) in ("DiffREN", "DiffLBDN")
        theirs = bridge._shim().explicit_dict(julia.seval("x -> x.params")(loaded))
        ours = _spec.flatten_explicit(model.explicit())
        for name in theirs.keys():
            assert np.allclose(bridge._julia_array(theirs[name]), ours[str(name)], atol=1e-10)


def test_julia_runs_the_real_pde_observer_as_r2dn_does(julia):
    folder = data_dir("julia")
    if folder is None or not (folder / "pde_obsv.bson").is_file():
        pytest.skip("julia/pde_obsv.bson is absent")
    julia.seval("using BSON, Flux, RobustNeuralNetworks")
    jmodel = julia.seval(f'BSON.load(raw"{folder / "pde_obsv.bson"}")["model"]')
    model = rj.load_model(folder / "pde_obsv.bson")
    rng = np.random.default_rng(0)
    x0, us = rng.uniform(size=(2, 51)), rng.uniform(size=(3, 2, 3))
    xT, ys = bridge._shim().simulate(julia.seval("m -> m.params")(jmodel), "float64",
                                     np.ascontiguousarray(x0.T),
                                     np.ascontiguousarray(np.transpose(us, (2, 1, 0))))
    ours_xT, ours_ys = model.simulate(x0, us)
    assert np.allclose(bridge._julia_array(xT).T, ours_xT, atol=1e-10)
    assert np.allclose(np.transpose(bridge._julia_array(ys), (2, 1, 0)), ours_ys, atol=1e-10)

