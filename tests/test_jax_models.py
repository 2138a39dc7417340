"""The JAX backend against the NumPy reference: explicit maps, simulation, gradients (finite
differences of the NumPy model, and torch when present), seeds, pytrees, jit, vmap, optax,
precision and errors.

Compilation is the cost of these tests, so each family is compiled once (a cached case whose
jitted value-and-gradient returns the explicit parameters and the simulation too), with
``r2dn.jax.fast_compile_options()``, and the sizes are small. The module docstring's example and
the models' own jits (eager calls) use XLA's default options. JAX's 64-bit mode is switched on
for this process (the float64 comparisons need it); float32 tests pass explicit dtypes so they
mean the same with it on.
"""

from __future__ import annotations

import doctest
import functools
import re
from typing import Any, NamedTuple

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

import r2dn  # noqa: E402
import r2dn.jax as rj  # noqa: E402
import r2dn.numpy as rn  # noqa: E402
from r2dn import _spec  # noqa: E402

from conftest import TOL  # noqa: E402
from helpers import build, perturb  # noqa: E402

#: XLA options for the tests' own jits: several times faster to compile on a CPU (None elsewhere).
FAST = rj.fast_compile_options()
#: relative agreement with the float64 NumPy reference (float64, float32) and of a gradient with
#: central finite differences of the NumPy model: the table of conftest.py.
F64_RTOL, F32_RTOL, FD_RTOL = TOL["f64"], TOL["f32"], TOL["fd"]
FD_STEP = 1e-6


class Spec(NamedTuple):
    sizes: tuple[int, int, int, int]       # (nu, nx, nv, ny); (in, -, -, out) for feed-forward
    hidden: tuple[int, ...]
    activation: str


#: sizes cover nu > ny, nu < ny, nu = ny, nx = 1 and nv = 1; activations cover every named one.
CASES = {
    "ContractingREN": Spec((3, 2, 4, 1), (), "relu"),          # nu > ny
    "LipschitzREN": Spec((1, 1, 1, 3), (), "tanh"),            # nx = nv = 1, nu < ny
    "GeneralREN": Spec((2, 3, 2, 4), (), "sigmoid"),           # nu < ny
    "PassiveREN": Spec((2, 1, 3, 2), (), "relu"),              # nx = 1, nu = ny
    "ContractingR2DN": Spec((1, 2, 1, 1), (3,), "relu"),       # nv = 1
    "LipschitzR2DN": Spec((3, 1, 2, 1), (3,), "tanh"),         # nx = 1, nu > ny
    "GeneralR2DN": Spec((2, 2, 1, 3), (2,), "identity"),       # nv = 1, nu < ny
    "LBDN": Spec((3, 0, 0, 2), (4, 2), "relu"),
    "SandwichLayer": Spec((2, 0, 0, 3), (), "tanh"),
}
FAMILIES = list(CASES)
RECURRENT = [f for f in FAMILIES if f not in ("LBDN", "SandwichLayer")]
BATCH, T = 3, 5


def make(rnmod, family: str, seed: int = 0, dtype: str = "float64", **options):
    s = CASES[family]
    return build(rnmod, family, *s.sizes, seed=seed, hidden=s.hidden, activation=s.activation,
                 dtype=dtype, **options)


def close(actual, desired, rtol: float) -> None:
    actual, desired = np.asarray(actual, dtype=np.float64), np.asarray(desired, dtype=np.float64)
    assert actual.shape == desired.shape, (actual.shape, desired.shape)
    scale = max(1.0, float(np.max(np.abs(desired), initial=0.0)))
    err = float(np.max(np.abs(actual - desired), initial=0.0))
    assert err <= rtol * scale, f"max error {err:.3g} > {rtol:g} x {scale:.3g}"


class Case(NamedTuple):
    model: Any            # float64 JAX model (perturbed away from its initialisation)
    twin: Any             # the NumPy model with the same parameters
    inputs: dict          # NumPy arrays: x0, us, Wx, Wy (recurrent) or u, Wy (feed-forward)
    loss: float
    aux: tuple            # (explicit, x_T, ys) or (explicit, y), from inside the jit
    grads: Any            # jax.grad of the loss: a model of the same class
    value_and_grad: Any   # the jitted function (reused by the optax test)


def loss_of(m, inputs, xp):
    """The test loss: fixed random weights on the final state and outputs."""
    if m.config.is_recurrent:
        xT, ys = m.simulate(xp.asarray(inputs["x0"]), xp.asarray(inputs["us"]))
        return xp.sum(xT * inputs["Wx"]) + xp.sum(ys * inputs["Wy"]), (xT, ys)
    y = m(xp.asarray(inputs["u"]))
    return xp.sum(y * inputs["Wy"]), (y,)


@functools.lru_cache(maxsize=None)
def case(family: str) -> Case:
    model = perturb(rj, make(rj, family, seed=3), 7)
    twin = rn.from_direct(model.config, model.direct())
    rng = np.random.default_rng(11)
    c = model.config
    if c.is_recurrent:
        inputs = {"x0": rng.normal(size=(BATCH, c.nx)), "us": rng.normal(size=(T, BATCH, c.nu)),
                  "Wx": rng.normal(size=(BATCH, c.nx)), "Wy": rng.normal(size=(T, BATCH, c.ny))}
    else:
        inputs = {"u": rng.normal(size=(BATCH, c.in_features)),
                  "Wy": rng.normal(size=(BATCH, c.out_features))}

    def loss(m):
        value, outs = loss_of(m, inputs, jnp)
        return value, (m.explicit(), *outs)

    vg = jax.jit(jax.value_and_grad(loss, has_aux=True), compiler_options=FAST)
    (value, aux), grads = vg(model)
    return Case(model, twin, inputs, float(value), aux, grads, vg)


# -- the NumPy reference ---------------------------------------------------------------------------

@pytest.mark.parametrize("family", FAMILIES)
def test_explicit_and_simulate_match_numpy_under_jit(family):
    k = case(family)
    got = _spec.flatten_explicit(k.aux[0])
    want = _spec.flatten_explicit(k.twin.explicit())
    assert got.keys() == want.keys()
    for name in want:
        close(got[name], want[name], F64_RTOL)
    want_loss, want_outs = loss_of(k.twin, k.inputs, np)
    for a, b in zip(k.aux[1:], want_outs):
        assert a.dtype == jnp.float64
        close(a, b, F64_RTOL)
    close(k.loss, want_loss, F64_RTOL)


def _random_cases(n: int = 6, seed: int = 2024):
    """Families, sizes (1..5 each), LBDN widths and activations drawn from a seeded generator."""
    rng = np.random.default_rng(seed)
    families = rng.permutation(FAMILIES)[:n]
    for i, family in enumerate(families):
        sizes = tuple(int(v) for v in rng.integers(1, 6, size=4))
        if family == "PassiveREN":                       # needs ny == nu
            sizes = (*sizes[:3], sizes[0])
        hidden = tuple(int(v) for v in rng.integers(1, 5, size=int(rng.integers(1, 3))))
        act = str(rng.choice(["relu", "tanh", "sigmoid", "identity"]))
        yield pytest.param(str(family), sizes, hidden, act, i,
                           id=f"{family}-{sizes}-{hidden}-{act}")


@pytest.mark.parametrize("family, sizes, hidden, activation, seed", list(_random_cases()))
def test_random_sizes_match_numpy_under_jit(family, sizes, hidden, activation, seed):
    model = perturb(rj, build(rj, family, *sizes, seed=seed, hidden=hidden, activation=activation,
                              dtype="float64"), seed)
    twin = rn.from_direct(model.config, model.direct())
    c = model.config
    rng = np.random.default_rng(seed)
    if c.is_recurrent:
        args = (rng.normal(size=(2, c.nx)), rng.normal(size=(4, 2, c.nu)))
        run = jax.jit(lambda m, x0, us: (m.explicit(), m.simulate(x0, us)), compiler_options=FAST)
        want = twin.simulate(*args)
    else:
        args = (rng.normal(size=(2, c.in_features)),)
        run = jax.jit(lambda m, u: (m.explicit(), (m(u),)), compiler_options=FAST)
        want = (twin(*args),)
    e, got = run(model, *map(jnp.asarray, args))
    want_e = _spec.flatten_explicit(twin.explicit())
    for name, value in _spec.flatten_explicit(e).items():
        close(value, want_e[name], F64_RTOL)
    for a, b in zip(got, want):
        close(a, b, F64_RTOL)


@pytest.mark.parametrize("family", FAMILIES)
def test_gradient_matches_numpy_finite_differences(family):
    """jax.grad (through lax.scan and the REN's custom_jvp) against central differences of the
    NumPy model's loss along a random direction in parameter space."""
    k = case(family)
    assert type(k.grads) is type(k.model)
    assert k.grads.config == rj.structure_config(k.model.config)
    rng = np.random.default_rng(5)
    base = k.twin.direct()
    step = {n: rng.normal(size=v.shape) for n, v in base.items()}
    moved = [rn.from_direct(k.twin.config, {n: base[n] + s * FD_STEP * step[n] for n in base})
             for s in (1, -1)]
    fd = (loss_of(moved[0], k.inputs, np)[0] - loss_of(moved[1], k.inputs, np)[0]) / (2 * FD_STEP)
    ad = sum(float(np.sum(np.asarray(g) * step[n])) for n, g in k.grads.direct().items())
    assert abs(ad - fd) <= FD_RTOL * max(1.0, abs(fd)), (ad, fd)


@pytest.mark.parametrize("family", FAMILIES)
def test_gradient_matches_torch(family):
    """The same loss differentiated by r2dn.torch (float64) gives the same gradients."""
    torch = pytest.importorskip("torch")
    try:
        import r2dn.torch as rt
    except ImportError as err:           # the torch backend may be missing or unfinished
        pytest.skip(f"r2dn.torch does not import: {err}")
    k = case(family)
    tm = make(rt, family, seed=3)
    params = dict(tm.named_parameters())
    assert params.keys() == k.model.direct().keys()
    with torch.no_grad():
        for name, value in k.model.direct().items():
            params[name].copy_(torch.as_tensor(np.array(value)))
    tin = {n: torch.as_tensor(v) for n, v in k.inputs.items()}

    class Torch:                                  # the array API of loss_of for torch
        asarray = staticmethod(torch.as_tensor)
        sum = staticmethod(torch.sum)

    value, _ = loss_of(tm, tin, Torch)
    value.backward()
    close(float(value.detach()), k.loss, F64_RTOL)
    for name, g in k.grads.direct().items():
        got = params[name].grad                   # None for parameters the loss does not reach
        close(np.zeros(g.shape) if got is None else got.numpy(), g, 1e-8)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_same_seed_same_parameters_bit_for_bit(family, dtype):
    a = make(rj, family, seed=5, dtype=dtype).direct()
    b = make(rn, family, seed=5, dtype=dtype).direct()
    assert a.keys() == b.keys()
    for name in a:
        got = np.asarray(a[name])
        assert got.dtype == np.dtype(dtype) and a[name].dtype == jnp.dtype(dtype)
        assert np.array_equal(got, b[name]), name


# -- float32, unroll, vmap, optax ------------------------------------------------------------------

@pytest.mark.parametrize("family", ["PassiveREN"])     # a float32 R2DN: test_jax_example.py
def test_float32_simulate_and_unroll(family):
    model = perturb(rj, make(rj, family, seed=1, dtype="float32"), 2)
    twin = rn.from_direct(model.config.replace(dtype="float64"), model.direct())
    rng = np.random.default_rng(0)
    x0 = rng.normal(size=(BATCH, model.config.nx))
    us = rng.normal(size=(7, BATCH, model.config.nu))
    run = jax.jit(lambda m, x0, us: (m.simulate(x0, us), m.simulate(x0, us, unroll=3)),
                  compiler_options=FAST)
    (xT, ys), (xT3, ys3) = run(model, jnp.asarray(x0, dtype=jnp.float32),
                               jnp.asarray(us, dtype=jnp.float32))
    assert xT.dtype == ys.dtype == jnp.float32
    want_xT, want_ys = twin.simulate(x0, us)
    close(xT, want_xT, F32_RTOL)
    close(ys, want_ys, F32_RTOL)
    close(xT3, xT, 1e-6)
    close(ys3, ys, 1e-6)


def test_vmap_over_a_batch_of_models_and_input_sequences():
    """One vmap over models (stacked leaves, one shared config) and their inputs."""
    base = case("GeneralREN").model
    c = base.config
    models = [perturb(rj, base, s) for s in range(3)]
    stacked = jax.tree.map(lambda *leaves: jnp.stack(leaves), *models)
    assert type(stacked) is type(base)
    assert stacked.direct()["X"].shape == (3, *base.direct()["X"].shape)
    rng = np.random.default_rng(3)
    x0s = rng.normal(size=(3, 2, c.nx))
    uss = rng.normal(size=(3, T, 2, c.nu))
    run = jax.jit(jax.vmap(lambda m, x0, us: m.simulate(x0, us)), compiler_options=FAST)
    xT, ys = run(stacked, jnp.asarray(x0s), jnp.asarray(uss))
    assert ys.shape == (3, T, 2, c.ny)
    for i, m in enumerate(models):
        want_xT, want_ys = rn.from_direct(c, m.direct()).simulate(x0s[i], uss[i])
        close(xT[i], want_xT, F64_RTOL)
        close(ys[i], want_ys, F64_RTOL)


def test_optax_updates_give_a_model_that_stays_certified():
    k = case("GeneralREN")
    opt = optax.adam(1e-2)

    @functools.partial(jax.jit, compiler_options=FAST)
    def update(grads, state, model):
        updates, state = opt.update(grads, state, model)
        return optax.apply_updates(model, updates), state

    model, state = k.model, opt.init(k.model)
    losses = []
    for _ in range(5):
        (value, _), grads = k.value_and_grad(model)      # compiled once, by case()
        model, state = update(grads, state, model)
        losses.append(float(value))
    assert type(model) is type(k.model) and model.config == rj.structure_config(k.model.config)
    assert losses[-1] < losses[0]
    assert not np.array_equal(np.asarray(model.direct()["X"]), np.asarray(k.model.direct()["X"]))
    assert r2dn.certify(model).certified


# -- pytree, conversion ----------------------------------------------------------------------------

def test_model_is_a_pytree_with_named_leaves_and_static_config():
    model = make(rj, "LipschitzR2DN", seed=2)
    leaves_with_paths, treedef = jax.tree_util.tree_flatten_with_path(model)
    names = [jax.tree_util.keystr(path) for path, _ in leaves_with_paths]
    assert names == [f"[{n!r}]" for n in model.direct()]
    for (_, leaf), value in zip(leaves_with_paths, model.direct().values()):
        assert leaf is value
    again = jax.tree_util.tree_unflatten(treedef, [leaf for _, leaf in leaves_with_paths])
    assert type(again) is type(model) and again.config == rj.structure_config(model.config)
    assert jax.tree.structure(make(rj, "LipschitzR2DN", seed=2)) == treedef
    assert jax.tree.structure(make(rj, "LipschitzR2DN", seed=3)) == treedef   # seed: init only
    assert jax.tree.structure(make(rj, "LipschitzR2DN", dtype="float32")) != treedef
    zeros = jax.tree.map(jnp.zeros_like, model)
    assert type(zeros) is type(model) and not np.any(np.asarray(zeros.direct()["X"]))
    with pytest.raises(AttributeError, match="immutable"):
        model.config = None


def test_convert_and_from_direct_round_trip():
    src = perturb(rn, make(rn, "GeneralR2DN", seed=4), 1)
    jm = rj.convert(src)
    assert type(jm) is rj.GeneralR2DN and jm.config == src.config
    back = rn.convert(jm)
    for name, value in src.direct().items():
        assert np.array_equal(back.direct()[name], value)
    f32 = rj.convert(src, dtype="float32")
    assert f32.config.dtype == "float32" and f32.direct()["X"].dtype == jnp.float32
    from_jax = rj.from_direct(jm.config, jm.direct())        # JAX arrays stay JAX arrays
    assert all(from_jax.direct()[n] is v for n, v in jm.direct().items())
    traced = jax.jit(lambda d: rj.from_direct(jm.config, d).direct()["X"] * 2)(jm.direct())
    close(traced, 2 * src.direct()["X"], 0)


def test_convert_from_and_to_torch_is_exact():
    pytest.importorskip("torch")
    try:
        import r2dn.torch as rt
    except ImportError as err:
        pytest.skip(f"r2dn.torch does not import: {err}")
    ref = perturb(rn, make(rn, "LipschitzR2DN", seed=6), 2)
    src = rt.from_direct(ref.config, ref.direct())
    jm = rj.convert(src)
    assert type(jm) is rj.LipschitzR2DN and jm.config == src.config
    back = rt.convert(jm)
    for name, value in src.direct().items():
        assert np.array_equal(np.asarray(jm.direct()[name]), value.detach().numpy())
        assert np.array_equal(back.direct()[name].detach().numpy(), value.detach().numpy())


# -- precision -------------------------------------------------------------------------------------

DOT = re.compile(r"dot_general\[")
HIGHEST = "precision=(Precision.HIGHEST, Precision.HIGHEST)"


def _dots(text: str) -> tuple[int, int]:
    return len(DOT.findall(text)), text.count(HIGHEST)


@pytest.mark.parametrize("family", ["GeneralREN", "LipschitzR2DN", "LBDN"])
def test_every_matmul_is_full_precision_in_forward_and_backward(family):
    """The jaxpr of jax.grad(loss) (forward, lax.scan body, custom_jvp transposed) has only
    HIGHEST-precision matmuls, and so does the HLO handed to the compiler."""
    k = case(family)

    def loss(m):
        return loss_of(m, k.inputs, jnp)[0]

    text = str(jax.make_jaxpr(jax.grad(loss))(k.model))
    n_dots, n_highest = _dots(text)
    assert n_dots > 0 and n_highest == n_dots
    hlo = jax.jit(loss).lower(k.model).as_text()
    assert hlo.count("stablehlo.dot_general") == hlo.count("precision = [HIGHEST, HIGHEST]") > 0


def test_precision_check_detects_default_precision():
    """Negative control: the same spec maths traced outside the models' context has no HIGHEST."""
    k = case("GeneralREN")
    direct = k.model.direct()
    spec_only = jax.make_jaxpr(lambda d: _spec.direct_to_explicit(d, k.model.config, xp=jnp))
    text = str(spec_only(direct))
    n_dots, n_highest = _dots(text)
    assert n_dots > n_highest                    # (jax.numpy.linalg pins some of its own)
    assert rj.MATMUL_PRECISION == "highest"
    assert jax.config.jax_default_matmul_precision is None     # nothing global was changed


def _gpus():
    try:
        return jax.devices("gpu")
    except RuntimeError:
        return []


@pytest.mark.skipif(not _gpus(), reason="no GPU visible to JAX")
def test_float32_on_gpu_keeps_full_precision():
    """On a GPU, TF32 matmuls would leave errors near 1e-3; full precision stays near 1e-6."""
    gpu = _gpus()[0]
    model = jax.device_put(perturb(rj, build(rj, "LipschitzREN", 8, 32, 64, 8, gamma=2.0,
                                             dtype="float32"), 1), gpu)
    rng = np.random.default_rng(0)
    x0, us = rng.normal(size=(16, 32)), rng.normal(size=(50, 16, 8))
    xT, ys = jax.jit(lambda m, x0, us: m.simulate(x0, us))(
        model, jax.device_put(jnp.asarray(x0, dtype=jnp.float32), gpu),
        jax.device_put(jnp.asarray(us, dtype=jnp.float32), gpu))
    assert ys.devices() == {gpu}
    want = rn.from_direct(model.config.replace(dtype="float64"), model.direct()).simulate(x0, us)
    close(ys, want[1], F32_RTOL)
    assert r2dn.certify(model).certified


# -- errors ----------------------------------------------------------------------------------------

def test_wrong_shapes_raise_inside_jit():
    model = case("LipschitzREN").model                   # nu=1, nx=1, ny=3
    x0 = jnp.zeros((2, 1))
    run = jax.jit(lambda m, x0, us: m.simulate(x0, us))
    with pytest.raises(ValueError, match=r"LipschitzREN.simulate: `us` must have shape "
                                         r".*nu=1.*got \(4, 2, 2\)"):
        run(model, x0, jnp.zeros((4, 2, 2)))
    with pytest.raises(ValueError, match=r"`x0` must have shape \(batch, nx\) with nx=1; "
                                         r"got \(2, 3\)"):
        run(model, jnp.zeros((2, 3)), jnp.zeros((4, 2, 1)))
    with pytest.raises(ValueError, match="at least one time step"):
        run(model, x0, jnp.zeros((0, 2, 1)))
    with pytest.raises(ValueError, match=r"LipschitzREN.forward: `u`"):
        jax.jit(lambda m, x, u: m(x, u))(model, x0, jnp.zeros((3, 1)))
    lbdn = case("LBDN").model
    with pytest.raises(ValueError,
                       match=r"LBDN.forward: `u` must have shape \(batch, in_features\)"):
        jax.jit(lambda m, u: m(u))(lbdn, jnp.zeros((2, 5)))


def test_wrong_dtypes_and_kinds_raise():
    m32 = make(rj, "ContractingR2DN", dtype="float32")
    run = jax.jit(lambda m, x0, us: m.simulate(x0, us))
    with pytest.raises(TypeError, match=r"`us` has dtype float64 but the model is float32"):
        run(m32, jnp.zeros((2, 2), dtype=jnp.float32), jnp.zeros((3, 2, 1), dtype=jnp.float64))
    with pytest.raises(TypeError, match=r"`x0` must be a floating array"):
        m32.simulate(jnp.zeros((2, 2), dtype=jnp.int32), jnp.zeros((3, 2, 1), dtype=jnp.float32))
    with pytest.raises(TypeError, match=r"`x0` must be an array; got list"):
        m32.simulate([[0.0, 0.0]], jnp.zeros((3, 2, 1), dtype=jnp.float32))
    with pytest.raises(ValueError,
                       match=r"`unroll` must be a positive integer or a bool; got unroll=0"):
        m32.simulate(m32.init_state(2), jnp.zeros((3, 2, 1), dtype=jnp.float32), unroll=0)
    with pytest.raises(ValueError, match=r"`batch` must be a positive integer"):
        m32.init_state(0)


def test_float64_without_x64_is_a_clear_error():
    with jax.enable_x64(False):
        with pytest.raises(ValueError, match=r"dtype`='float64' needs JAX's 64-bit mode"):
            rj.ContractingREN(1, 2, 2, 1, dtype="float64")
        assert rj.ContractingREN(1, 2, 2, 1).config.dtype == "float32"     # the default


def test_bad_parameters_raise():
    model = case("ContractingREN").model
    direct = model.direct()
    with pytest.raises(ValueError, match=r"parameter `X` must have shape \(8, 8\); got \(2, 2\)"):
        rj.from_direct(model.config, {**direct, "X": np.zeros((2, 2))})
    with pytest.raises(ValueError, match="do not match the expected names"):
        rj.from_direct(model.config, {k: v for k, v in direct.items() if k != "X"})
    with pytest.raises(TypeError, match="must be a ModelConfig"):
        rj.from_direct(model.config.to_dict(), direct)
    with pytest.raises(ValueError, match=r"`abar` must satisfy 0 < abar <= 1; got abar=1.5"):
        rj.ContractingREN(1, 2, 2, 1, abar=1.5)


# -- documentation ---------------------------------------------------------------------------------

def test_module_docstring_examples_run():
    import r2dn.jax
    result = doctest.testmod(r2dn.jax, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.attempted > 0 and result.failed == 0


def test_a_jax_older_than_the_minimum_is_refused_with_the_fix_named():
    """r2dn.jax checks the installed JAX at import: 0.9.2 lacks ``manual_axis_type`` and 0.10.0
    fails explicit-mesh gradients (both found by running this suite on them), so they raise an
    ImportError that names the needed version and the pip command; the minimum and this
    environment's JAX pass."""
    for old in ("0.9.2", "0.10.0"):
        with pytest.raises(ImportError, match=rf"jax >= 0\.10\.1; this environment has jax {old}"
                                              r".*pip install -U 'jax>=0\.10\.1'"):
            rj._check_jax(old)
    rj._check_jax(".".join(map(str, rj.MIN_JAX)))
    rj._check_jax(jax.__version__)
