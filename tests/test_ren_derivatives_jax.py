"""Every derivative of the JAX REN equilibrium (a ``jax.custom_jvp``; JAX transposes its linear
tangent rule for reverse mode) against central differences in float64: ``jax.jvp``,
``jax.jacfwd``, ``jax.hessian`` of rollouts; and the traced program does not grow with nv."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402

import r2dn.jax as rj  # noqa: E402

from helpers import build  # noqa: E402

REN_FAMILIES = ["ContractingREN", "LipschitzREN", "PassiveREN", "GeneralREN"]
H = 1e-5


def _rollout_loss(model, T: int = 3, batch: int = 2):
    """``model -> loss`` of a rollout (nonlinear in the outputs, so the Hessian is not trivial)."""
    rng = np.random.default_rng(2)
    c = model.config
    x0 = jnp.asarray(rng.normal(size=(batch, c.nx)))
    us = jnp.asarray(rng.normal(size=(T, batch, c.nu)))

    def loss(m):
        xT, ys = m.simulate(x0, us)
        return jnp.sum(jnp.sin(ys)) + jnp.sum(xT**2)

    return loss


def _direction(model, seed: int):
    """A random unit direction in parameter space (the central differences' truncation error
    scales with its length cubed)."""
    rng = np.random.default_rng(seed)
    v = jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape)), model)
    norm = np.sqrt(sum(float(jnp.sum(x**2)) for x in jax.tree.leaves(v)))
    return jax.tree.map(lambda x: x / norm, v)


def _axpy(a, x, y):
    return jax.tree.map(lambda xi, yi: yi + a * xi, x, y)


def _model(family: str, activation: str = "tanh", seed: int = 0):
    return build(rj, family, 2, 3, 4, 2, seed=seed, activation=activation, dtype="float64")


@pytest.mark.parametrize("family", REN_FAMILIES)
def test_jvp_and_hvp_match_central_differences(family):
    """``jax.jvp`` of a rollout, and the Hessian-vector product ``jax.jvp(jax.grad(loss))``
    (forward over reverse: it differentiates the transposed tangent rule), against central
    differences of the loss and of its reverse-mode gradient."""
    model = _model(family)
    loss = _rollout_loss(model)
    v = _direction(model, 3)
    _, tangent = jax.jvp(loss, (model,), (v,))
    fd = (loss(_axpy(H, v, model)) - loss(_axpy(-H, v, model))) / (2 * H)
    assert abs(float(tangent - fd)) < 1e-8 * max(1.0, abs(float(fd)))

    grad = jax.grad(loss)
    _, hvp = jax.jvp(grad, (model,), (v,))
    fd = jax.tree.map(lambda a, b: (a - b) / (2 * H), grad(_axpy(H, v, model)),
                      grad(_axpy(-H, v, model)))
    h, f = (np.concatenate([np.ravel(x) for x in jax.tree.leaves(t)]) for t in (hvp, fd))
    assert np.linalg.norm(h - f) < 1e-6 * np.linalg.norm(f)


def test_jacfwd_and_hessian_of_the_equilibrium():
    """``jax.jacfwd`` equals ``jax.jacrev`` of the equilibrium in (D11, b) at 1e-12, and
    ``jax.hessian`` of a scalar of it equals central differences of its gradient."""
    from r2dn.jax.rollout import equilibrium_layer
    layer = equilibrium_layer("tanh")
    rng = np.random.default_rng(5)
    nv = 20                                                     # two blocks of neurons
    D11 = jnp.asarray(0.3 * rng.normal(size=(nv, nv)))
    b = jnp.asarray(rng.normal(size=(3, nv)))
    fwd = jax.jacfwd(layer, argnums=(0, 1))(D11, b)
    rev = jax.jacrev(layer, argnums=(0, 1))(D11, b)
    for f, r in zip(fwd, rev):
        np.testing.assert_allclose(f, r, rtol=1e-12, atol=1e-12)

    def scalar(bb):
        return jnp.sum(jnp.sin(layer(D11, bb)))

    hess = jax.hessian(scalar)(b).reshape(b.size, b.size)
    e = jnp.asarray(rng.normal(size=b.shape))
    grad = jax.grad(scalar)
    fd = (grad(b + H * e) - grad(b - H * e)) / (2 * H)
    assert np.linalg.norm(hess @ e.ravel() - fd.ravel()) < 1e-6 * np.linalg.norm(fd)


def test_gradient_program_does_not_grow_with_nv():
    """The jaxpr of a REN rollout's gradient has the same number of equations at nv = 192 and
    nv = 208 (12 and 13 blocks of 16 neurons): the loop over blocks of neurons is a ``lax.scan`` (forward substitution, and its
    transpose, the back substitution), not unrolled per neuron."""
    def equations(nv):
        model = rj.ContractingREN(1, 1, nv, 1, activation="tanh", identity_output=True,
                                  dtype="float64", seed=0)
        x0, us = jnp.zeros((4, 1)), jnp.zeros((8, 4, 1))
        jaxpr = jax.make_jaxpr(jax.grad(lambda m: jnp.sum(m.simulate(x0, us)[1] ** 2)))(model)
        return len(str(jaxpr).splitlines())

    assert equations(192) == equations(208)        # 12 and 13 blocks of 16
