"""The REN equilibrium's custom_jvp (implicit-function backward pass of r2dn._spec) against
automatic differentiation of the plain forward substitution. (Finite differences of whole models,
through the custom_jvp, are in test_jax_models.py.)"""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402

import r2dn.numpy as rn  # noqa: E402
from r2dn import _spec  # noqa: E402
from r2dn.jax.rollout import equilibrium_layer, fast_compile_options, scan_rollout  # noqa: E402

from helpers import build, perturb  # noqa: E402

FAST = fast_compile_options()


def softplus(v):
    """A user activation, slopes in (0, 1), with no derivative known to r2dn (jax.jvp gives it)."""
    return jnp.logaddexp(v, 0.0)


def _layer_inputs(nv: int, batch: int, seed: int):
    rng = np.random.default_rng(seed)
    D11 = jnp.asarray(np.tril(rng.normal(size=(nv, nv)), -1))
    return D11, jnp.asarray(rng.normal(size=(batch, nv)))


def test_equilibrium_layer_gradients_match_autodiff_of_forward_substitution():
    """The layer's reverse mode (spec's implicit-function formula) equals jax.grad through the
    spec's forward substitution (all nv steps), for a named activation (spec's sigma') and a user
    callable (sigma' by jax.jvp); the D11 cotangent is strictly lower triangular."""
    D11, b = _layer_inputs(4, 3, 0)
    weights = jnp.asarray(np.random.default_rng(1).normal(size=b.shape))

    def grads(activation):
        layer = equilibrium_layer(activation)
        assert equilibrium_layer(activation) is layer              # one layer per activation
        act = _spec.activation(activation, xp=jnp)
        custom = jax.grad(lambda D, v: jnp.sum(weights * layer(D, v)), argnums=(0, 1))
        plain = jax.grad(lambda D, v: jnp.sum(weights * _spec.equilibrium(D, v, act, xp=jnp)),
                         argnums=(0, 1))
        return custom(D11, b), plain(D11, b)

    results = jax.jit(lambda: [grads(a) for a in ("tanh", "sigmoid", softplus)],
                      compiler_options=FAST)()
    for (c_D11, c_b), (p_D11, p_b) in results:
        np.testing.assert_allclose(c_D11, np.tril(np.asarray(p_D11), -1), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(c_b, p_b, rtol=1e-12, atol=1e-14)
        assert not np.any(np.triu(np.asarray(c_D11)))


def test_ren_rollout_gradient_through_custom_jvp_matches_plain_forward_substitution():
    """A REN rollout (lax.scan with the registered custom_jvp; a user activation, so sigma' comes
    from jax.jvp) has the same gradient, with respect to every explicit matrix, as the spec's
    plain loop, which JAX differentiates step by step."""
    model = perturb(rn, build(rn, "GeneralREN", 2, 2, 4, 3, seed=1), 1)
    e = jax.tree.map(jnp.asarray, model.explicit())            # float64, no compilation
    act = _spec.activation(softplus, xp=jnp)
    layer = equilibrium_layer(softplus)
    rng = np.random.default_rng(0)
    x0 = jnp.asarray(rng.normal(size=(2, 2)))
    us = jnp.asarray(rng.normal(size=(2, 2, 2)))

    def custom(e):
        return jnp.sum(jnp.sin(scan_rollout(e, _spec.nonlinearity(e, act, xp=jnp, solver=layer),
                                            x0, us)[1]))

    def plain(e):
        nonlinearity = _spec.nonlinearity(e, act, xp=jnp)
        return jnp.sum(jnp.sin(_spec.simulate_loop(e, nonlinearity, x0, us, xp=jnp)[1]))

    assert "name=ren_equilibrium" in str(jax.make_jaxpr(custom)(e))
    assert "name=ren_equilibrium" not in str(jax.make_jaxpr(plain)(e))
    g_custom, g_plain = jax.jit(lambda e: (jax.grad(custom)(e), jax.grad(plain)(e)),
                                compiler_options=FAST)(e)
    for name, value in g_plain._asdict().items():
        got = getattr(g_custom, name)
        if name == "D11":                 # only the strict lower triangle is read
            value = jnp.tril(value, -1)
        np.testing.assert_allclose(got, value, rtol=1e-10,
                                   atol=1e-12 * max(1.0, float(jnp.max(jnp.abs(value)))),
                                   err_msg=name)
