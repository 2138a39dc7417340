"""The torch backend against the NumPy reference: parity, parameters, seeds, dtypes, errors.

Expected values come from r2dn.numpy (float64), which runs the same spec through another array
library and another LAPACK: agreement to 1e-10 relative shows that the torch backend adds no maths
of its own and loses no precision. Sizes cover nu > ny, nu < ny, nx = 1 and nv = 1 for every
family, with the options (activation, polar, init, compat, abar, identity_output) varied across
cases.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import r2dn  # noqa: E402
import r2dn.numpy as rnp  # noqa: E402
import r2dn.torch as rt  # noqa: E402
from r2dn._spec import flatten_explicit  # noqa: E402
from r2dn.config import FAMILIES, RECURRENT_FAMILIES  # noqa: E402
from conftest import TOL  # noqa: E402


@pytest.fixture(autouse=True)
def _one_intra_op_thread():
    """These models are tiny: intra-op threads only add synchronisation, which costs ~10x on a
    loaded CI runner (a 4x4 tril waits ~20 ms for a descheduled OpenMP thread). Restored after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


#: float64 parity: elementwise relative tolerance, plus an absolute floor times the array's
#: largest entry (or 1) for entries that cancel to (near) zero; float32 against the float64
#: reference, relative to each array's scale. The table of conftest.py.
RTOL_F64, ATOL_F64_SCALE, TOL_F32_SCALE = TOL["f64_elementwise"], TOL["f64_floor"], TOL["f32_torch"]

SHAPE_PATTERNS = ("nu>ny", "nu<ny", "nx=1", "nv=1")
ACTIVATIONS = ("relu", "tanh", "sigmoid", "identity")


def _sizes(pattern: str, rng: np.random.Generator) -> dict[str, int]:
    nu, nx, nv, ny = (int(k) for k in rng.integers(2, 5, size=4))
    if pattern == "nu>ny":
        nu, ny = ny + 1 + int(rng.integers(0, 2)), ny
    elif pattern == "nu<ny":
        ny = nu + 1 + int(rng.integers(0, 2))
    elif pattern == "nx=1":
        nx = 1
    else:
        nv = 1
    return dict(nu=nu, nx=nx, nv=nv, ny=ny)


def _qsr(nu: int, ny: int, rng: np.random.Generator):
    Q = -np.diag(rng.uniform(0.5, 2.0, size=ny))
    S = 0.2 * rng.normal(size=(nu, ny))
    R = np.diag(rng.uniform(0.5, 2.0, size=nu))     # R - S Q^-1 S^T = R + PSD: positive definite
    return Q, S, R


def make_case(family: str, index: int) -> tuple[str, tuple, dict]:
    """(class name, args, kwargs) of case ``index`` of ``family``: random sizes and options."""
    rng = np.random.default_rng(1000 * FAMILIES.index(family) + index)
    act = ACTIVATIONS[(index + FAMILIES.index(family)) % len(ACTIVATIONS)]
    kw: dict = dict(activation=act, seed=int(rng.integers(0, 2**31)), dtype="float64")
    if family == "SandwichLayer":
        n_in, n_out = ((3, 2), (2, 5), (1, 1), (4, 4))[index]
        return family, (n_in, n_out), kw
    if family == "LBDN":
        n_in, hidden, n_out = ((3, (4,), 2), (2, (5, 3), 4), (1, (2,), 1), (4, (3, 3, 2), 3))[index]
        kw.update(gamma=float(rng.uniform(0.5, 3.0)), learn_gamma=index % 2 == 1)
        if index == 3:
            kw["compat"] = "robustnn"
        return family, (n_in, hidden, n_out), kw
    pattern = SHAPE_PATTERNS[index]
    s = _sizes(pattern, rng)
    if family == "PassiveREN":
        s["ny"] = s["nu"] = max(s["nu"], s["ny"]) if pattern != "nu<ny" else min(s["nu"], s["ny"])
    args = (s["nu"], s["nx"], s["nv"], s["ny"])
    kw.update(abar=(1.0, 0.9, 1.0, 0.95)[index], polar=index != 2,
              init="long_memory" if index == 1 else "random",
              compat=(None, None, "julia", "robustnn")[index])
    if family.endswith("R2DN"):
        kw["hidden"] = ((5,), (3, 4), (2,), ())[index] if kw["compat"] != "robustnn" else (4,)
    if family in ("LipschitzREN", "LipschitzR2DN"):
        kw["gamma"] = float(rng.uniform(0.5, 3.0))
    if family in ("GeneralREN", "GeneralR2DN"):
        kw.update(zip("QSR", _qsr(s["nu"], s["ny"], rng)))
    if family == "PassiveREN":
        kw.update(nu_index=(0.0, 0.1, 0.0, 0.2)[index], rho_index=(0.0, 0.0, 0.5, 0.0)[index])
    if family in ("ContractingREN", "ContractingR2DN") and index == 3:
        kw["identity_output"] = True
        args = (s["nu"], s["nx"], s["nv"], s["nx"])
    return family, args, kw


CASES = [make_case(f, i) for f, i in itertools.product(FAMILIES, range(4))]
CASE_IDS = [f"{name}-{i}" for name, i in itertools.product(FAMILIES, range(4))]


def build(backend, case, **over):
    name, args, kw = case
    return getattr(backend, name)(*args, **{**kw, **over})


def inputs(model, rng: np.random.Generator, T: int = 5, batch: int = 3):
    c = model.config
    if c.is_recurrent:
        return rng.normal(size=(batch, c.nx)), rng.normal(size=(T, batch, c.nu))
    return (rng.normal(size=(batch, c.in_features)),)


def run(model, args):
    if model.config.is_recurrent:
        return model.simulate(*args)
    return (model(*args),)


def as_np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def assert_scaled_close(actual, desired, rtol: float, atol_scale: float, what: str) -> None:
    desired = np.asarray(desired, dtype=np.float64)
    scale = max(1.0, float(np.max(np.abs(desired)))) if desired.size else 1.0
    np.testing.assert_allclose(as_np(actual).astype(np.float64), desired, rtol=rtol,
                               atol=atol_scale * scale, err_msg=what)


def to_torch(arrays, dtype=torch.float64):
    return tuple(torch.as_tensor(a, dtype=dtype) for a in arrays)


# -- parity with the NumPy reference -----------------------------------------------------------

@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_float64_parity_with_numpy(case):
    ref, model = build(rnp, case), build(rt, case)
    assert isinstance(model, torch.nn.Module)
    e_ref, e = flatten_explicit(ref.explicit()), flatten_explicit(model.explicit())
    assert sorted(e) == sorted(e_ref)
    for name, value in e_ref.items():
        assert e[name].dtype == torch.float64 and tuple(e[name].shape) == np.shape(value), name
        assert_scaled_close(e[name], value, RTOL_F64, ATOL_F64_SCALE, f"explicit {name}")
    args = inputs(ref, np.random.default_rng(7))
    for got, want in zip(run(model, to_torch(args)), run(ref, args)):
        assert got.dtype == torch.float64
        assert_scaled_close(got, want, RTOL_F64, ATOL_F64_SCALE, "simulate")


#: float32 cases: every family at random init (index 1 is the long-memory init, whose REN can have
#: a multiplier Lambda near 1e-4 and so gains near 1e4, where float32 keeps only ~1e-4 relative).
F32_CASES = [(c, i) for c, i in zip(CASES, CASE_IDS) if not i.endswith("-1")]


@pytest.mark.parametrize("case", [c for c, _ in F32_CASES], ids=[i for _, i in F32_CASES])
def test_float32_close_to_float64_reference(case):
    ref, model = build(rnp, case), build(rt, case, dtype="float32")
    assert model.config.dtype == "float32"
    args = inputs(ref, np.random.default_rng(8))
    for got, want in zip(run(model, to_torch(args, torch.float32)), run(ref, args)):
        assert got.dtype == torch.float32
        assert_scaled_close(got, want, 0.0, TOL_F32_SCALE, "float32 simulate")


def test_step_equals_first_step_of_simulate():
    model = rt.LipschitzR2DN(2, 3, 4, 2, hidden=(5,), gamma=2.0, dtype="float64")
    x0, us = to_torch(inputs(model, np.random.default_rng(9), T=2))
    x1, y0 = model(x0, us[0])
    x2, y1 = model(x1, us[1])
    xT, ys = model.simulate(x0, us)
    torch.testing.assert_close(ys, torch.stack([y0, y1]), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(xT, x2, rtol=1e-12, atol=1e-12)


# -- parameters, seeds ---------------------------------------------------------------------------

@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_state_dict_keys_are_direct_names(case):
    model = build(rt, case)
    direct = model.direct()
    assert list(model.state_dict()) == list(dict(model.named_parameters()))
    assert sorted(model.state_dict()) == sorted(direct)
    assert all(isinstance(p, torch.nn.Parameter) for p in direct.values())
    assert len(list(model.parameters())) == len(direct)
    for name, value in model.state_dict().items():
        assert value is not None and torch.equal(value, direct[name].detach())


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", CASES[1::3], ids=CASE_IDS[1::3])
def test_seed_gives_numpy_parameters_bit_for_bit(case, dtype):
    ref, model = build(rnp, case, dtype=dtype), build(rt, case, dtype=dtype)
    again = build(rt, case, dtype=dtype)
    for name, value in ref.direct().items():
        got = model.direct()[name].detach().numpy()
        assert got.dtype == value.dtype and np.array_equal(got, value), name
        assert torch.equal(model.direct()[name], again.direct()[name])
    other = build(rt, case, dtype=dtype, seed=case[2]["seed"] + 1)
    assert any(not torch.equal(a, b) for a, b in zip(model.direct().values(),
                                                     other.direct().values()) if a.numel() > 1)


def test_default_dtype_is_float32():
    model = rt.ContractingREN(2, 3, 4, 1)
    assert model.config.dtype == "float32"
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert model.init_state(2).dtype == torch.float32


# -- dtype changes keep config truthful ----------------------------------------------------------

def test_config_dtype_follows_parameters():
    model = rt.LipschitzREN(2, 3, 4, 2, gamma=1.5, seed=3)
    values32 = {k: v.detach().clone() for k, v in model.direct().items()}
    eps = model.config.eps
    assert model.double() is model
    assert model.config.dtype == "float64"
    assert model.config.eps == eps                  # eps stays as resolved at construction
    assert model.config.replace(dtype="float32") == model._config
    assert all(torch.equal(v.double(), values32[k].double()) for k, v in model.direct().items())
    assert model.init_state(3).dtype == torch.float64
    x0, us = model.init_state(3), torch.zeros(4, 3, 2, dtype=torch.float64)
    assert model.simulate(x0, us)[1].dtype == torch.float64
    with pytest.raises(TypeError, match="float32 but the model is float64"):
        model.simulate(x0.float(), us.float())
    model.to(torch.float32)
    assert model.config.dtype == "float32"
    assert rt.convert(model).config.dtype == "float32"
    assert r2dn.certify(model).certified


def test_config_rejects_mixed_or_unsupported_dtypes():
    model = rt.LBDN(2, (3,), 1)
    model.half()
    with pytest.raises(TypeError, match="float32 or float64; got float16"):
        _ = model.config
    model.float()
    model.get_parameter("layers.0.XY").data = model.get_parameter("layers.0.XY").data.double()
    with pytest.raises(TypeError, match="mixed dtypes"):
        _ = model.config


# -- conversion ------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", [CASES[i] for i in (5, 14, 27)],
                         ids=[CASE_IDS[i] for i in (5, 14, 27)])
def test_convert_round_trip(case):
    ref = build(rnp, case)
    model = rt.convert(ref)
    assert type(model).__name__ == type(ref).__name__ and model.config == ref.config
    for name, value in ref.direct().items():
        assert np.array_equal(model.direct()[name].detach().numpy(), value)
    back = rnp.convert(model)
    for name, value in ref.direct().items():
        assert np.array_equal(back.direct()[name], value)
    single = rt.convert(ref, dtype="float32")
    assert single.config.dtype == "float32" and single.config.eps == ref.config.eps
    twin = rt.convert(model)
    assert twin is not model
    assert all(a.data_ptr() != b.data_ptr() for a, b in zip(twin.parameters(), model.parameters()))
    built = rt.from_direct(ref.config, ref.direct())
    assert [k for k in built.state_dict()] == [k for k in model.state_dict()]


def test_convert_from_jax():
    pytest.importorskip("jax")
    rj = pytest.importorskip("r2dn.jax")
    if not hasattr(rj, "convert"):
        pytest.skip("r2dn.jax has no convert yet")
    src = rj.ContractingR2DN(2, 3, 2, 1, hidden=(3,), dtype="float32")
    model = rt.convert(src)
    for name, value in src.direct().items():
        assert np.array_equal(model.direct()[name].detach().numpy(), np.asarray(value))


def test_from_direct_rejects_bad_parameters():
    ref = rnp.ContractingREN(2, 3, 4, 1)
    direct = ref.direct()
    with pytest.raises(TypeError, match="must be a ModelConfig"):
        rt.from_direct(ref.config.to_dict(), direct)
    with pytest.raises(ValueError, match="do not match the expected names"):
        rt.from_direct(ref.config, {k: v for k, v in direct.items() if k != "X"})
    with pytest.raises(ValueError, match=r"parameter `X` must have shape \(10, 10\); got \(3, 3\)"):
        rt.from_direct(ref.config, {**direct, "X": np.zeros((3, 3))})
    with pytest.raises(ValueError, match=r"ContractingREN: parameter `B2` is not finite"):
        rt.from_direct(ref.config, {**direct, "B2": np.full((3, 2), np.nan)})
    unchecked = rt.from_direct(ref.config, {**direct, "B2": np.full((3, 2), np.inf)},
                               check_finite=False)
    assert torch.isinf(unchecked.direct()["B2"]).all()


def test_direct_gradients_flow_to_parameters():
    model = rt.GeneralREN(2, 2, 3, 3, Q=-np.eye(3), S=np.zeros((2, 3)), R=np.eye(2),
                          activation="tanh", dtype="float64")
    _, ys = model.simulate(model.init_state(2), torch.ones(4, 2, 2, dtype=torch.float64))
    ys.square().sum().backward()
    grads = {k: p.grad for k, p in model.named_parameters() if p.numel()}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    assert float(grads["X"].norm()) > 0


# -- errors --------------------------------------------------------------------------------------

def test_shape_errors_name_argument_and_shapes():
    model = rt.ContractingR2DN(3, 2, 4, 1, hidden=(3,))
    x0 = model.init_state(8)
    with pytest.raises(ValueError, match=r"ContractingR2DN\.simulate: `us` must have shape "
                                         r"\(T, batch, nu\) with batch=8, nu=3; got \(100, 8, 4\)"):
        model.simulate(x0, torch.zeros(100, 8, 4))
    with pytest.raises(ValueError,
                       match=r"`x0` must have shape \(batch, nx\) with nx=2; got \(8, 3\)"):
        model.simulate(torch.zeros(8, 3), torch.zeros(5, 8, 3))
    with pytest.raises(ValueError, match=r"forward: `u` must have shape"):
        model(x0, torch.zeros(7, 3))
    with pytest.raises(ValueError, match="at least one time step; got T=0"):
        model.simulate(x0, torch.zeros(0, 8, 3))
    with pytest.raises(ValueError,
                       match=r"LBDN\.forward: `u` must have shape \(batch, in_features\)"):
        rt.LBDN(2, (3,), 1)(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="`batch` must be a positive integer; got 0"):
        model.init_state(0)


def test_dtype_and_kind_errors():
    model = rt.ContractingREN(2, 3, 4, 1)
    x0 = model.init_state(2)
    with pytest.raises(TypeError, match=r"`us` has dtype float64 but the model is float32"):
        model.simulate(x0, torch.zeros(3, 2, 2, dtype=torch.float64))
    with pytest.raises(TypeError,
                       match=r"`us` must be a floating array of dtype float32; got dtype int64"):
        model.simulate(x0, torch.zeros(3, 2, 2, dtype=torch.int64))
    with pytest.raises(TypeError, match=r"`us` is a numpy\.ndarray, but this is an r2dn\.torch model"):
        model.simulate(x0, np.zeros((3, 2, 2), dtype=np.float32))
    with pytest.raises(TypeError, match=r"`x0` must be an array; got list"):
        model.simulate([[0.0] * 3] * 2, torch.zeros(3, 2, 2))
    with pytest.raises(ValueError, match="`activation` must be one of"):
        rt.SandwichLayer(2, 2, activation="gelu")


def test_device_mismatch_is_reported():
    model = rt.ContractingR2DN(2, 3, 4, 1, hidden=(3,))
    meta = torch.zeros(2, 3, device="meta")
    with pytest.raises(ValueError, match=r"`x0` is on device 'meta' but the model's parameters are "
                                         r"on "
                                         r"'cpu'; move it with x0\.to\('cpu'\)"):
        model.simulate(meta, torch.zeros(5, 2, 2))
    with pytest.raises(ValueError, match=r"`us` is on device 'meta'"):
        model.simulate(model.init_state(2), torch.zeros(5, 2, 2, device="meta"))
    model.to("meta")
    assert model.device.type == "meta" and model.init_state(2).device.type == "meta"
    with pytest.raises(ValueError,
                       match=r"`x` is on device 'cpu' but the model's parameters are on 'meta'"):
        model(torch.zeros(2, 3), torch.zeros(2, 2))


def test_check_device_unit():
    """The message for the common case, input on the CPU and model on CUDA (no GPU needed)."""
    rt.check_device("M", "x", torch.zeros(1), torch.device("cpu"))
    with pytest.raises(ValueError, match=r"M: `x` is on device 'cpu' but the model's parameters "
                                         r"are "
                                         r"on 'cuda:0'; move it with x\.to\('cuda:0'\) or the "
                                         r"model with model\.to\('cpu'\)"):
        rt.check_device("M", "x", torch.zeros(1), torch.device("cuda", 0))
    with pytest.raises(TypeError, match=r"M: `x` must be a torch\.Tensor; got float"):
        rt.check_device("M", "x", 1.0, torch.device("cpu"))


# -- devices, module machinery, docs -------------------------------------------------------------

#: one case per family, the option index rotating with the family.
ONE_PER_FAMILY = [(CASES[4 * k + k % 4], CASE_IDS[4 * k + k % 4]) for k in range(len(FAMILIES))]


@pytest.mark.parametrize("case", [c for c, _ in ONE_PER_FAMILY], ids=[i for _, i in ONE_PER_FAMILY])
def test_whole_path_runs_on_meta_device(case):
    """Every tensor the model makes follows the parameters' device: the full forward and backward
    run on 'meta' (a CPU tensor created anywhere would raise a device mismatch)."""
    model = build(rt, case).to("meta")
    c = model.config
    if c.is_recurrent:
        x0 = model.init_state(2)
        assert x0.device.type == "meta"
        out = model.simulate(x0, torch.zeros(3, 2, c.nu, dtype=torch.float64, device="meta"))[1]
    else:
        out = model(torch.zeros(2, c.in_features, dtype=torch.float64, device="meta"))
    out.sum().backward()
    assert out.device.type == "meta"
    assert all(p.grad is None or p.grad.device.type == "meta" for p in model.parameters())
    assert all(v.device.type == "meta" for v in flatten_explicit(model.explicit()).values())


def test_deepcopy_and_load_state_dict():
    import copy

    model = rt.LipschitzR2DN(2, 3, 4, 2, hidden=(3,), gamma=1.0)
    twin = copy.deepcopy(model)
    with torch.no_grad():
        twin.get_parameter("network.layers.0.XY").add_(1.0)
    first = lambda m: m.explicit().network.layers[0].B  # noqa: E731
    assert not torch.equal(first(model), first(twin))
    model.load_state_dict(twin.state_dict())
    torch.testing.assert_close(model.explicit().A, twin.explicit().A, rtol=0, atol=0)


def test_repr_survives_bad_dtype():
    model = rt.LBDN(2, (3,), 1)
    assert repr(model) == "r2dn.torch.models.LBDN(2, (3,), 1, dtype=float32)"
    assert "float16" in repr(model.half())


def test_docstring_examples_run():
    import doctest

    import r2dn.torch.gain
    import r2dn.torch.models

    for module in (rt, r2dn.torch.models, r2dn.torch.gain):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.failed == 0, module.__name__


def test_family_classes_match_numpy_signatures():
    import inspect

    for name in FAMILIES:
        assert issubclass(getattr(rt, name), torch.nn.Module)
        torch_params = list(inspect.signature(getattr(rt, name)).parameters)
        assert torch_params == list(inspect.signature(getattr(rnp, name)).parameters) + ["device"]


# -- property test: drawn sizes, seeds and options ----------------------------------------------

hypothesis = pytest.importorskip("hypothesis")
st = hypothesis.strategies


@hypothesis.settings(max_examples=12, deadline=None, derandomize=True)
@hypothesis.given(family=st.sampled_from(RECURRENT_FAMILIES), nu=st.integers(1, 4),
                  nx=st.integers(1, 4), nv=st.integers(1, 4), ny=st.integers(1, 4),
                  seed=st.integers(0, 2**31 - 1), activation=st.sampled_from(ACTIVATIONS))
def test_property_parity_with_numpy(family, nu, nx, nv, ny, seed, activation):
    if family == "PassiveREN":
        ny = nu
    kw: dict = dict(seed=seed, activation=activation, dtype="float64")
    if family.endswith("R2DN"):
        kw["hidden"] = (3,)
    if family.startswith("Lipschitz"):
        kw["gamma"] = 1.5
    if family.startswith("General"):
        kw.update(zip("QSR", _qsr(nu, ny, np.random.default_rng(seed))))
    case = (family, (nu, nx, nv, ny), kw)
    ref, model = build(rnp, case), build(rt, case)
    args = inputs(ref, np.random.default_rng(seed), T=4, batch=2)
    for got, want in zip(run(model, to_torch(args)), run(ref, args)):
        assert_scaled_close(got, want, RTOL_F64, ATOL_F64_SCALE, f"{family} simulate")
    # negative control: the same comparison rejects a model whose explicit A is scaled by 1.5
    e = model.explicit()
    model.explicit = lambda: e._replace(A=1.5 * e.A)
    broken = run(model, to_torch(args))[1]
    with pytest.raises(AssertionError):
        assert_scaled_close(broken, run(ref, args)[1], RTOL_F64, ATOL_F64_SCALE, "broken")


def test_checkpoint_round_trip_keeps_dtype(tmp_path):
    checkpoint = pytest.importorskip("r2dn.checkpoint")
    model = rt.LipschitzR2DN(2, 3, 4, 2, hidden=(3,), gamma=2.0, seed=5).double()
    path = checkpoint.save(model, tmp_path / "model.safetensors")
    config, direct = checkpoint.read(path)
    assert config.dtype == "float64" and config == model.config
    loaded = rt.from_direct(config, direct)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), loaded.parameters()))
    numpy_twin = rnp.from_direct(config, direct)
    x0, us = inputs(numpy_twin, np.random.default_rng(0))
    for got, want in zip(loaded.simulate(*to_torch((x0, us))), numpy_twin.simulate(x0, us)):
        assert_scaled_close(got, want, RTOL_F64, ATOL_F64_SCALE, "checkpoint simulate")
