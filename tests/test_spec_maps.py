"""The maps of the spec against independent oracles: identities, manufactured cases, papers."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import array_api_compat.numpy as xnp
import r2dn.numpy as rn
from r2dn import _spec
from r2dn._spec.lbdn import cayley
from r2dn._spec.r2dn import contracting_r2dn_explicit, dissipative_r2dn_explicit

from helpers import assert_close, build, perturb

SETTINGS = settings(max_examples=25, deadline=None, derandomize=True)


@SETTINGS
@given(n=st.integers(1, 8), m=st.integers(0, 8), seed=st.integers(0, 2**16))
def test_cayley_columns_orthonormal(n, m, seed):
    W = np.random.default_rng(seed).normal(size=(m + n, n)) * 2
    A, B = cayley(W, xp=xnp)
    Q = np.concatenate([A.T, B.T], axis=0)          # [A^T; B^T], (n + m) x n
    assert_close(Q.T @ Q, np.eye(n))


@SETTINGS
@given(n=st.integers(1, 8), m=st.integers(0, 8), scale=st.sampled_from([0.1, 1.0, 10.0]),
       seed=st.integers(0, 2**16))
def test_cayley_equals_its_definition(n, m, scale, seed):
    # the spec forms X = 2 (I + Z)^-1 once (docs/math/lbdn.md#cayley); the definition's two solves
    W = np.random.default_rng(seed).normal(size=(m + n, n)) * scale
    U, V = W[:n], W[n:]
    Z, I = U - U.T + V.T @ V, np.eye(n)
    A, B = cayley(W, xp=xnp)
    assert_close(A.T, np.linalg.solve(I + Z, I - Z))
    assert_close(B.T, -2 * np.linalg.solve((I + Z).T, V.T).T)


def test_cayley_negative_control():
    A, B = cayley(np.random.default_rng(0).normal(size=(7, 3)), xp=xnp)
    Q = np.concatenate([A.T, 1.1 * B.T], axis=0)
    assert np.max(np.abs(Q.T @ Q - np.eye(3))) > 1e-3


@SETTINGS
@given(n_in=st.integers(1, 6), n_out=st.integers(1, 6), seed=st.integers(0, 2**16),
       act=st.sampled_from(["relu", "tanh", "sigmoid", "identity"]))
def test_sandwich_layer_is_1_lipschitz(n_in, n_out, seed, act):
    layer = perturb(rn, rn.SandwichLayer(n_in, n_out, activation=act, seed=seed), seed)
    rng = np.random.default_rng(seed)
    h1 = rng.normal(size=(256, n_in)) * 3
    h2 = h1 + rng.normal(size=(256, n_in)) * rng.uniform(0.01, 3, size=(256, 1))
    ratio = np.linalg.norm(layer(h1) - layer(h2), axis=1) / np.linalg.norm(h1 - h2, axis=1)
    assert ratio.max() <= 1 + 1e-12


def test_sandwich_negative_control():
    """The same check catches a layer whose B is scaled by 1.5 (identity activation: linear)."""
    layer = rn.SandwichLayer(3, 3, activation="identity", seed=0)
    e = layer.explicit()
    broken = e._replace(B=1.5 * e.B)
    act = _spec.activation("identity", xp=xnp)
    W = _spec.sandwich_apply(broken, np.eye(3), act) - _spec.sandwich_apply(broken, 0 * np.eye(3), act)
    assert np.linalg.norm(W, 2) > 1.2


@SETTINGS
@given(n_in=st.integers(1, 5), hidden=st.lists(st.integers(1, 6), max_size=3),
       n_out=st.integers(1, 5), gamma=st.floats(0.1, 10), seed=st.integers(0, 2**16))
def test_lbdn_within_gamma(n_in, hidden, n_out, gamma, seed):
    model = perturb(rn, rn.LBDN(n_in, tuple(hidden), n_out, gamma, seed=seed), seed)
    rng = np.random.default_rng(seed)
    u1 = rng.normal(size=(256, n_in)) * 3
    u2 = u1 + rng.normal(size=(256, n_in)) * rng.uniform(0.01, 3, size=(256, 1))
    ratio = np.linalg.norm(model(u1) - model(u2), axis=1) / np.linalg.norm(u1 - u2, axis=1)
    assert ratio.max() <= gamma * (1 + 1e-12)


def test_lbdn_fused_equals_layer_by_layer():
    """The fused evaluation (docs/math/performance.md#performance) equals the literal formula (docs/math/lbdn.md#sandwich), layer by layer."""
    model = perturb(rn, rn.LBDN(3, (5, 4), 2, 2.5, activation="tanh", seed=1), 1)
    e = model.explicit()
    u = np.random.default_rng(0).normal(size=(7, 3))
    act = _spec.activation("tanh", xp=xnp)
    h = np.sqrt(2.5) * u
    for layer in e.layers:
        h = _spec.sandwich_apply(layer, h, act)
    y = np.sqrt(2.5) * h @ e.output.B.T + e.output.b
    assert_close(model(u), y)


def test_learn_gamma_is_a_parameter():
    model = rn.LBDN(2, (3,), 2, 4.0, learn_gamma=True)
    assert "log_gamma" in model.direct()
    assert_close(model.direct()["log_gamma"], [np.log(4.0)])
    d = model.direct() | {"log_gamma": np.array([np.log(9.0)])}
    assert_close(rn.from_direct(model.config, d).explicit().sqrt_gamma, [3.0])


@pytest.mark.parametrize("act", ["relu", "tanh", "sigmoid"])
def test_equilibrium_solves_fixed_point(act):
    model = perturb(rn, build(rn, "ContractingREN", 2, 3, 12, 2, seed=4, activation=act), 4)
    e = model.explicit()
    assert np.all(np.triu(e.D11) == 0)
    b = np.random.default_rng(1).normal(size=(9, 12)) * 2
    f = _spec.activation(act, xp=xnp).fn
    w = _spec.equilibrium(e.D11, b, _spec.activation(act, xp=xnp), xp=xnp)
    assert_close(w, f(w @ e.D11.T + b))


def test_equilibrium_vjp_matches_finite_differences():
    """The implicit-function-theorem gradient equals central differences of the forward map."""
    rng = np.random.default_rng(0)
    nv = 6
    D11 = np.tril(rng.normal(size=(nv, nv)), -1)
    b = rng.normal(size=(3, nv))
    gw = rng.normal(size=(3, nv))
    act = _spec.activation("tanh", xp=xnp)
    loss = lambda D, bb: float(np.sum(gw * _spec.equilibrium(D, bb, act, xp=xnp)))  # noqa: E731
    w = _spec.equilibrium(D11, b, act, xp=xnp)
    slope = 1 - np.tanh(w @ D11.T + b) ** 2                 # tanh' at v, independently
    gD, gb = _spec.equilibrium_vjp(D11, w, slope, gw, xp=xnp)
    h = 1e-6
    num_b = np.zeros_like(b)
    for idx in np.ndindex(*b.shape):
        d = np.zeros_like(b)
        d[idx] = h
        num_b[idx] = (loss(D11, b + d) - loss(D11, b - d)) / (2 * h)
    num_D = np.zeros_like(D11)
    for idx in np.ndindex(*D11.shape):
        d = np.zeros_like(D11)
        d[idx] = h
        num_D[idx] = (loss(D11 + d, b) - loss(D11 - d, b)) / (2 * h)
    np.testing.assert_allclose(gb, num_b, atol=1e-8)
    np.testing.assert_allclose(gD, num_D, atol=1e-8)


@pytest.mark.parametrize("name", ["relu", "tanh", "sigmoid", "identity"])
def test_activation_derivative_from_its_output(name):
    """Each named activation's derivative, written in its output w = sigma(v), equals sigma'(v) by
    central differences in v (away from relu's kink)."""
    a = _spec.activation(name, xp=xnp)
    v = np.concatenate([np.linspace(-4, -0.01, 50), np.linspace(0.01, 4, 50)])
    h = 1e-6
    fd = (a.fn(v + h) - a.fn(v - h)) / (2 * h)
    np.testing.assert_allclose(a.deriv(a.fn(v)), fd, rtol=1e-8, atol=1e-9)


@pytest.mark.parametrize("block", [1, 3, 16, 37, 64])
@pytest.mark.parametrize("act", ["relu", "tanh"])
def test_blocked_substitutions_against_the_dense_equations(act, block):
    """Every block size (one neuron, blocks that do not divide nv, one block, more than nv) gives
    the fixed point of ``w = sigma(D11 w + b)`` and the implicit-function cotangent
    ``g_b = J (I - D11^T J)^-1 g_w`` computed here with a dense solve per sample."""
    rng = np.random.default_rng(3)
    nv, batch = 37, 5
    D11 = np.tril(rng.normal(size=(nv, nv)) / np.sqrt(nv), -1)
    b = rng.normal(size=(batch, nv))
    gw = rng.normal(size=(batch, nv))
    a = _spec.activation(act, xp=xnp)
    calls = []

    def fn(v):
        calls.append(v.shape)
        return a.fn(v)

    plan = _spec.substitution_plan(D11, xp=xnp, block=block)
    w = _spec.equilibrium(D11, b, _spec.Activation(fn, a.deriv), xp=xnp, plan=plan)
    blocks = -(-nv // block)                           # padded by fewer than `blocks` neurons
    assert set(calls) == {(batch, 1)} and nv <= len(calls) < nv + blocks   # once per column
    v = w @ D11.T + b
    np.testing.assert_allclose(w, a.fn(v), rtol=0, atol=1e-14)
    slope = (1 - np.tanh(v) ** 2) if act == "tanh" else (v > 0).astype(float)
    gD, gb = _spec.equilibrium_vjp(D11, w, slope, gw, xp=xnp, plan=plan)
    dense = np.stack([s * np.linalg.solve(np.eye(nv) - D11.T * s[None, :], g)
                      for s, g in zip(slope, gw)])
    np.testing.assert_allclose(gb, dense, rtol=0, atol=1e-13)
    np.testing.assert_allclose(gD, np.tril(dense.T @ w, -1), rtol=0, atol=1e-12)


@pytest.mark.parametrize("nu,ny", [(3, 3), (2, 4), (4, 2)])
def test_lipschitz_ren_equals_general_ren(nu, ny):
    gamma = 1.7
    lip = perturb(rn, rn.LipschitzREN(nu, 3, 5, ny, gamma, seed=2), 2)
    gen_cfg = rn.GeneralREN(nu, 3, 5, ny, -np.eye(ny) / gamma, np.zeros((nu, ny)),
                            gamma * np.eye(nu)).config
    gen = rn.from_direct(gen_cfg, lip.direct())
    a, b = _spec.flatten_explicit(lip.explicit()), _spec.flatten_explicit(gen.explicit())
    assert a.keys() == b.keys()
    for k in a:
        assert_close(a[k], b[k], scale=max(1.0, np.abs(a[k]).max()) * 10)


def test_r2dn_contracting_equals_general_without_io_channel():
    """docs/math/r2dn.md#r2dn: with D-hat = 0 and no input/output channel the maps coincide."""
    nu, nx, nv, ny = 2, 3, 4, 2
    con = perturb(rn, rn.ContractingR2DN(nu, nx, nv, ny, (3,), seed=1), 1)
    d = con.direct()
    gen = rn.GeneralR2DN(nu, nx, nv, ny, (3,), -np.eye(ny), np.zeros((nu, ny)), np.eye(nu))
    g = dict(d)
    for k in ("B2", "C2", "D12", "D21", "D22"):
        g[k] = np.zeros_like(d[k])
    e_c = contracting_r2dn_explicit(d, con.config, xp=xnp)
    e_g = dissipative_r2dn_explicit(g, gen.config, xp=xnp)
    for k in ("A", "B1", "C1", "E", "P"):
        assert_close(getattr(e_g, k), getattr(e_c, k))


@pytest.mark.parametrize("family", ["ContractingREN", "ContractingR2DN"])
def test_long_memory_init_gives_A_close_to_identity(family):
    model = build(rn, family, 2, 6, 5, 2, seed=3, init="long_memory")
    A = model.explicit().A
    assert np.max(np.abs(A - np.eye(6))) <= 0.05 + 1e-9
    assert np.min(np.diag(A)) >= 0.95 - 1e-9
    rand = build(rn, family, 2, 6, 5, 2, seed=3)
    assert np.max(np.abs(rand.explicit().A - np.eye(6))) > 0.1     # the random init is not


@pytest.mark.parametrize("family", ["ContractingREN", "ContractingR2DN"])
def test_identity_output_is_the_state(family):
    model = build(rn, family, 2, 3, 4, 3, seed=0, identity_output=True)
    x = np.random.default_rng(0).normal(size=(5, 3))
    _, y = model(x, np.zeros((5, 2)))
    assert_close(y, x)


def test_one_step_equals_simulate_first_step_and_explicit_formula():
    """Manufactured check: the REN step against the explicit equations written out here."""
    model = perturb(rn, build(rn, "GeneralREN", 2, 3, 4, 2, seed=0, activation="tanh"), 0)
    e = model.explicit()
    rng = np.random.default_rng(0)
    x, u = rng.normal(size=(6, 3)), rng.normal(size=(6, 2))
    w = np.zeros((6, 4))
    for i in range(4):                      # forward substitution written element by element
        w[:, i] = np.tanh(x @ e.C1[i] + w @ e.D11[i] + u @ e.D12[i] + e.bv[i])
    x_next = x @ e.A.T + w @ e.B1.T + u @ e.B2.T + e.bx
    y = x @ e.C2.T + w @ e.D21.T + u @ e.D22.T + e.by
    xn, yn = model(x, u)
    assert_close(xn, x_next)
    assert_close(yn, y)
    xs, ys = model.simulate(x, u[None])
    assert_close(ys[0], y)


def _lipschitz_as_general(model, gamma: float):
    """The (Q, S, R) R2DN route (two Cholesky factors, two solves) on a Lipschitz R2DN's
    parameters with the Lipschitz supply Q = -I/gamma, S = 0, R = gamma I."""
    c = model.config
    general = rn.GeneralR2DN(c.nu, c.nx, c.nv, c.ny, c.hidden, -np.eye(c.ny) / gamma,
                             np.zeros((c.nu, c.ny)), gamma * np.eye(c.nu), seed=c.seed)
    return _spec.flatten_explicit(dissipative_r2dn_explicit(model.direct(), general.config, xp=xnp))


@pytest.mark.parametrize("gamma", [0.3, 2.0, 17.0])
def test_lipschitz_r2dn_sqrt_gamma_in_closed_form_matches_the_cholesky_route(gamma):
    model = perturb(rn, rn.LipschitzR2DN(3, 4, 5, 2, (6,), gamma, seed=2), 2)
    got = _spec.flatten_explicit(model.explicit())
    want = _lipschitz_as_general(model, gamma)
    assert got.keys() == want.keys()
    for k in want:
        assert_close(got[k], want[k])
    # negative control: the same comparison sees a 1% change of gamma
    other = _lipschitz_as_general(model, 1.01 * gamma)
    assert max(np.max(np.abs(got[k] - other[k])) for k in ("C2", "D22")) > 1e-4
