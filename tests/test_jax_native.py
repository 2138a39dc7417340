"""The JAX REN equilibrium's C loop (:mod:`r2dn.jax.native`, an XLA custom call on the CPU): it
solves its equation and equals the spec's loop, batches under ``jax.vmap``, is what a compiled
rollout runs, gives the spec path's values and gradients (the path other platforms lower to),
and where it cannot run the spec's loop does, with the reason given.
"""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import r2dn.jax as rj  # noqa: E402
from r2dn import _native, _spec  # noqa: E402
from r2dn.jax import native  # noqa: E402
from r2dn.jax.rollout import lax_scan  # noqa: E402

from helpers import build  # noqa: E402

needs_loop = pytest.mark.skipif(native.status() != "compiled",
                                reason=f"the custom call does not run here: {native.status()}")
TOL = {"float64": 1e-13, "float32": 2e-6}


def _inputs(nv: int, batch: int, dtype: str, seed: int = 0):
    rng = np.random.default_rng(seed)
    D11 = jnp.asarray(rng.normal(size=(nv, nv)) / nv ** 0.5, dtype)
    b = jnp.asarray(2 * rng.normal(size=(batch, nv)), dtype)
    return D11, b


def _rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape
    if not b.size:                          # a parameter of size zero (D22 of some families)
        return 0.0
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))


def _spec_equilibrium(act):
    return lambda D11, b: _spec.equilibrium(D11, b, act, xp=jnp, scan=lax_scan)


@needs_loop
@pytest.mark.parametrize("nv, batch, dtype", [   # batch 37: a block of LANES (32) rows and a
    (1, 6, "float64"), (7, 37, "float32"), (37, 37, "float64"), (37, 6, "float32")])  # partial one
def test_custom_call_solves_its_equation_and_equals_the_spec(nv, batch, dtype):
    D11, b = _inputs(nv, batch, dtype)
    L = jnp.tril(D11, -1)
    for name in _native.ACTIVATIONS:
        act = _spec.activation(name, xp=jnp)
        w = jax.jit(lambda D, v: native.equilibrium(D, v, act, None))(D11, b)
        assert _rel(w, act.fn(w @ L.T + b)) < TOL[dtype], name            # w = act(L w + b)
        assert _rel(w, _spec_equilibrium(act)(D11, b)) < TOL[dtype], name
        assert w.dtype == b.dtype


@needs_loop
def test_compiled_rollout_calls_the_loop_once_per_step():
    """The lowered rollout holds the custom call (inside the time loop), in float32 and float64."""
    for dtype, suffix in (("float32", "f32"), ("float64", "f64")):
        model = rj.ContractingREN(1, 1, 40, 1, seed=0, dtype=dtype)
        x0, us = jnp.zeros((4, 1), dtype), jnp.zeros((8, 4, 1), dtype)
        text = jax.jit(lambda m: m.simulate(x0, us)).lower(model).as_text()
        assert text.count(f"custom_call @{native.TARGET.format(suffix)}(") == 1


@needs_loop
def test_vmap_solves_each_problem():
    """Stacked D11 and b (an ensemble), and a stack of b with one D11, against one call each;
    nested vmap flattens two leading dimensions."""
    act = _spec.activation("tanh", xp=jnp)
    layer = lambda D, v: native.equilibrium(D, v, act, None)   # noqa: E731
    Ds, bs = zip(*(_inputs(9, 5, "float64", seed) for seed in range(3)))
    Ds, bs = jnp.stack(Ds), jnp.stack(bs)
    both = jax.vmap(layer)(Ds, bs)
    one_D = jax.vmap(layer, in_axes=(None, 0))(Ds[0], bs)
    nested = jax.vmap(jax.vmap(layer, in_axes=(None, 0)), in_axes=(0, None))(Ds, bs)
    for k in range(3):
        assert _rel(both[k], layer(Ds[k], bs[k])) < 1e-15
        assert _rel(one_D[k], layer(Ds[0], bs[k])) < 1e-15
        for j in range(3):
            assert _rel(nested[k, j], layer(Ds[k], bs[j])) < 1e-15


@needs_loop
def test_the_spec_lowering_equals_the_custom_call():
    """What platforms other than the CPU lower the primitive to (the spec's loop, vectorized over
    leading dimensions) against the custom call."""
    Ds, bs = zip(*(_inputs(21, 4, "float64", seed) for seed in range(2)))
    Ds, bs = jnp.stack(Ds), jnp.stack(bs)
    for name in _native.ACTIVATIONS:
        spec = native._spec_loop(Ds, bs, activation=name)
        assert _rel(native.equilibrium_p.bind(Ds, bs, activation=name), spec) < 1e-13, name


def _value_and_grad(model, x0, us, **options):
    loss = lambda m: jnp.sum(jnp.sin(m.simulate(x0, us, **options)[1]))     # noqa: E731
    value, grad = jax.value_and_grad(loss)(model)
    return [value, *jax.tree.leaves(grad)]


@needs_loop
def test_rollouts_equal_the_spec_path(monkeypatch):
    """A rollout's loss and gradient with the custom call and with the spec's loop (the path
    without a compiler, and on other platforms) in float64 (the equilibrium is every REN
    family's). The spec run is chunked (the same numbers), so that it traces anew rather than
    reusing the compiled native run."""
    model = build(rj, "ContractingREN", 2, 3, 37, 2, seed=1, activation="tanh", dtype="float64")
    rng = np.random.default_rng(3)
    x0, us = jnp.asarray(rng.normal(size=(5, 3))), jnp.asarray(rng.normal(size=(4, 5, 2)))
    native_run = _value_and_grad(model, x0, us)
    monkeypatch.setattr(native, "status", lambda: "turned off in this test")
    text = jax.jit(lambda m: m.simulate(x0, us, chunk=2)).lower(model).as_text()
    assert "r2dn_equilibrium" not in text                      # the spec's loop, traced anew
    spec_run = _value_and_grad(model, x0, us, chunk=2)
    for a, b in zip(native_run, spec_run):
        assert _rel(a, b) < 1e-12


@pytest.fixture
def fresh_library():
    """:func:`r2dn._native.xla_library` rebuilt under the test's environment, and after it."""
    _native.xla_library.cache_clear()
    yield
    _native.xla_library.cache_clear()


def test_without_a_cxx_compiler_the_reason_is_given(monkeypatch, fresh_library):
    monkeypatch.setenv("CXX", "/nonexistent/r2dn-cxx")
    lib, reason = _native.xla_library(jax.ffi.include_dir())
    assert lib is None and "no C++ compiler" in reason and "/nonexistent/r2dn-cxx" in reason


def test_a_failing_compiler_warns_and_falls_back(monkeypatch, fresh_library, tmp_path):
    monkeypatch.setenv("CXX", "false")                # found on PATH; every compile fails
    monkeypatch.setenv("R2DN_CACHE", str(tmp_path))
    with pytest.warns(RuntimeWarning, match=r"could not compile the JAX REN's C loop"):
        lib, reason = _native.xla_library(jax.ffi.include_dir())
    assert lib is None and reason.startswith("compiling failed")


def test_turned_off_by_the_environment(monkeypatch, fresh_library):
    monkeypatch.setenv("R2DN_NATIVE", "0")
    assert _native.xla_library(jax.ffi.include_dir()) == (None, "turned off by R2DN_NATIVE=0")


def test_other_activations_and_dtypes_take_the_spec_loop():
    """A user callable, bfloat16 and mixed dtypes never reach the primitive."""
    D11, b = _inputs(5, 3, "float64")
    marker = object()
    spec = lambda D, v: marker                                  # noqa: E731
    assert native.equilibrium(D11, b, _spec.activation(jnp.tanh, xp=jnp), spec) is marker
    tanh = _spec.activation("tanh", xp=jnp)
    assert native.equilibrium(D11.astype(jnp.bfloat16), b.astype(jnp.bfloat16), tanh,
                              spec) is marker
    assert native.equilibrium(D11.astype(jnp.float32), b, tanh, spec) is marker


def test_other_default_backends_take_the_spec_loop(monkeypatch):
    """Where JAX's default backend is not the CPU (a GPU host) the primitive is never bound: the
    rollout's spec loop runs on its once-built substitution plan."""
    D11, b = _inputs(5, 3, "float64")
    marker = object()
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert native.equilibrium(D11, b, _spec.activation("tanh", xp=jnp),
                              lambda D, v: marker) is marker


@needs_loop
def test_eager_calls_and_disable_jit_equal_the_spec():
    """The primitive's eager rule (no jit around it; also under ``jax.disable_jit``, where a
    jitted rule would bind itself again forever) against the spec's loop."""
    D11, b = _inputs(9, 5, "float64")
    act = _spec.activation("tanh", xp=jnp)
    spec = _spec_equilibrium(act)(D11, b)
    assert _rel(native.equilibrium(D11, b, act, None), spec) < 1e-13
    with jax.disable_jit():
        assert _rel(native.equilibrium(D11, b, act, None), spec) < 1e-13


@needs_loop
def test_export_lowers_the_spec_loop():
    """``jax.export`` of a rollout names no r2dn custom call (another process may not have it
    registered); the same function under jit does."""
    model = rj.ContractingREN(1, 1, 20, 1, seed=0, dtype="float32")
    x0, us = jnp.zeros((4, 1), jnp.float32), jnp.zeros((3, 4, 1), jnp.float32)
    f = jax.jit(lambda m: m.simulate(x0, us)[1])
    assert "r2dn_equilibrium" not in jax.export.export(f)(model).mlir_module()
    assert "r2dn_equilibrium" in f.lower(model).as_text()


@needs_loop
def test_output_is_strongly_typed():
    """A weakly typed b (a Python scalar broadcast) gives a float64 w that does not promote
    to float16, like the spec's loop."""
    D11, _ = _inputs(6, 3, "float64")
    b = jnp.broadcast_to(1.0, (3, 6))
    assert jax.typeof(b).weak_type
    act = _spec.activation("tanh", xp=jnp)
    w = jax.jit(lambda D, v: native.equilibrium(D, v, act, None))(D11, b)
    assert not jax.typeof(w).weak_type
    assert (w * jnp.ones(6, jnp.float16)).dtype == jnp.float64
