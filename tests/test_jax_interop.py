"""The JAX backend inside JAX's machinery: seeds out of the tree structure and ensembles,
chunked rollouts, forward mode of R2DN and LBDN, optax labels, Equinox and Flax NNX."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

import r2dn.jax as rn  # noqa: E402
import r2dn.numpy as rnp  # noqa: E402

from helpers import TOL, assert_close  # noqa: E402

FAST = rn.fast_compile_options()


def _r2dn(seed=0, **kw):
    return rn.LipschitzR2DN(2, 3, 4, 2, gamma=2.0, hidden=(5,), dtype="float64", seed=seed, **kw)


def _inputs(T=7, batch=3, nu=2, nx=3, seed=0):
    rng = np.random.default_rng(seed)
    return jnp.asarray(rng.normal(size=(batch, nx))), jnp.asarray(rng.normal(size=(T, batch, nu)))


def _loss(m, x0, us, **options):
    _, ys = m.simulate(x0, us, **options)
    return jnp.sum(jnp.sin(ys))


# -- seeds and ensembles ---------------------------------------------------------------------------

def test_models_differing_only_in_seed_or_init_share_a_treedef_and_one_compilation():
    a, b = _r2dn(0), _r2dn(1, init="long_memory")
    assert jax.tree.structure(a) == jax.tree.structure(b)
    assert not np.array_equal(a.direct()["C1"], b.direct()["C1"])
    traces = []

    @jax.jit
    def f(m, x0, us):
        traces.append(1)
        return _loss(m, x0, us)

    x0, us = _inputs()
    values = [f(_r2dn(s), x0, us) for s in range(3)]
    assert len(traces) == 1
    for s, v in enumerate(values):          # each seed's own parameters, not the first's
        assert_close(v, np.sum(np.sin(rnp.convert(_r2dn(s)).simulate(np.asarray(x0),
                                                                      np.asarray(us))[1])))


def test_constructed_model_keeps_its_seed_and_transformed_ones_report_the_structure():
    m = _r2dn(5)
    assert m.config.seed == 5
    assert jax.tree.map(lambda p: p, m).config == rn.structure_config(m.config)
    assert rn.structure_config(m.config).seed == 0


def test_ensemble_stacks_seeds_and_vmaps_to_each_members_rollout():
    x0, us = _inputs()
    models = rn.ensemble(rn.LipschitzR2DN, [0, 1, 2], 2, 3, 4, 2, gamma=2.0, hidden=(5,),
                         dtype="float64")
    assert all(leaf.shape[0] == 3 for leaf in jax.tree.leaves(models))
    ys = jax.vmap(lambda m: m.simulate(x0, us)[1])(models)
    for i in range(3):
        ref = rnp.convert(_r2dn(i)).simulate(np.asarray(x0), np.asarray(us))[1]
        assert_close(ys[i], ref)
        member = jax.tree.map(lambda p, i=i: p[i], models)
        assert all(np.array_equal(member.direct()[k], _r2dn(i).direct()[k]) for k in member.direct())
    from_config = rn.ensemble(_r2dn().config, [0, 1, 2])
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(models),
                                                     jax.tree.leaves(from_config)))
    with pytest.raises(TypeError, match="seeds"):
        rn.ensemble(rn.LipschitzR2DN, [0], 2, 3, 4, 2, seed=1)


def test_checkpoint_of_a_model_rebuilt_by_jax_round_trips(tmp_path):
    import r2dn
    trained = jax.tree.map(lambda p: p + 0.01, _r2dn(3))
    back = rn.load(r2dn.save(trained, tmp_path / "m.safetensors"))
    assert back.config == trained.config
    assert all(np.array_equal(back.direct()[k], trained.direct()[k]) for k in back.direct())


# -- chunked rollouts ------------------------------------------------------------------------------

@pytest.mark.parametrize("make", [_r2dn, lambda: rn.ContractingREN(2, 3, 4, 2, dtype="float64",
                                                                   seed=2)])
@pytest.mark.parametrize("chunk", [3, 10])
def test_chunked_simulate_gives_the_same_outputs_and_gradients(make, chunk):
    m = make()
    x0, us = _inputs(T=7)
    xT, ys = m.simulate(x0, us)
    xTc, ysc = m.simulate(x0, us, chunk=chunk)
    assert_close(xTc, xT)
    assert_close(ysc, ys)
    g = jax.grad(_loss, argnums=(0, 1, 2))(m, x0, us)
    gc = jax.grad(lambda *a: _loss(*a, chunk=chunk), argnums=(0, 1, 2))(m, x0, us)
    for a, b in zip(jax.tree.leaves(gc), jax.tree.leaves(g)):
        assert_close(a, b)


def test_chunk_must_be_a_positive_integer():
    x0, us = _inputs()
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match="chunk"):
            _r2dn().simulate(x0, us, chunk=bad)


# -- forward mode ------------------------------------------------------------------------------------

def test_forward_mode_of_r2dn_and_lbdn_matches_central_differences():
    x0, us = _inputs(T=4)
    m = _r2dn()
    direction = jax.tree.map(lambda p: jnp.asarray(np.random.default_rng(1).normal(size=p.shape)), m)
    f = lambda t: _loss(jax.tree.map(lambda p, d: p + t * d, m, direction), x0, us)  # noqa: E731
    h = 1e-5             # central differences: O(h^2) ~ 1e-10 truncation, 1e-11 rounding
    _, tangent = jax.jvp(f, (0.0,), (1.0,))
    np.testing.assert_allclose(tangent, (f(h) - f(-h)) / (2 * h), rtol=1e-7)
    lbdn = rn.LBDN(3, (6, 5), 2, gamma=1.5, dtype="float64", seed=0)
    u = jnp.asarray(np.random.default_rng(2).normal(size=(4, 3)))
    jac = jax.jacfwd(lambda u: lbdn(u))(u)
    eye = np.eye(u.size).reshape(u.size, *u.shape)
    fd = np.stack([(lbdn(u + h * e) - lbdn(u - h * e)) / (2 * h) for e in eye], axis=-1)
    np.testing.assert_allclose(np.asarray(jac).reshape(fd.shape), fd, rtol=1e-7, atol=1e-9)
    assert_close(jax.jacrev(lambda u: lbdn(u))(u), jac)


# -- optax labels, Equinox ---------------------------------------------------------------------------

def test_optax_multi_transform_with_a_label_tree():
    m = _r2dn()
    labels = jax.tree_util.tree_map_with_path(
        lambda path, _: "frozen" if "network" in jax.tree_util.keystr(path) else "train", m)
    tx = optax.multi_transform({"train": optax.sgd(0.1), "frozen": optax.set_to_zero()}, labels)
    grads = jax.tree.map(jnp.ones_like, m)
    updates, _ = tx.update(grads, tx.init(m), m)
    for name, value in updates.direct().items():
        expected = 0.0 if name.startswith("network") else -0.1
        assert np.all(np.asarray(value) == expected), name


def test_equinox_filter_jit_grad_and_a_model_inside_an_eqx_module():
    eqx = pytest.importorskip("equinox")
    x0, us = _inputs()

    class Head(eqx.Module):
        core: object
        scale: jax.Array

        def __call__(self, x0, us):
            return self.scale * _loss(self.core, x0, us)

    head = Head(_r2dn(), jnp.asarray(2.0))
    g = eqx.filter_jit(eqx.filter_grad(lambda h: h(x0, us)))(head)
    ref = jax.grad(_loss)(_r2dn(), x0, us)
    for a, b in zip(jax.tree.leaves(g.core), jax.tree.leaves(ref)):
        assert_close(a, 2.0 * b)
    assert_close(g.scale, _loss(_r2dn(), x0, us))


# -- Flax NNX -------------------------------------------------------------------------------------------

def test_nnx_wrapper_params_call_and_unwrap():
    nnx = pytest.importorskip("flax.nnx")
    from r2dn.jax.nnx import wrap
    m = _r2dn(4)
    module = wrap(m)
    params = nnx.state(module, nnx.Param)["params"]
    assert set(params) == set(m.direct())
    x0, us = _inputs()
    assert_close(module.simulate(x0, us)[1], m.simulate(x0, us)[1])
    assert_close(module(x0, us[0])[0], m(x0, us[0])[0])
    back = module.unwrap()
    assert type(back) is type(m) and back.config == m.config
    with pytest.raises(TypeError, match="r2dn.jax.convert"):
        wrap(rnp.convert(m))


def test_nnx_optimizer_step_equals_a_plain_jax_step_and_loss_decreases():
    nnx = pytest.importorskip("flax.nnx")
    from r2dn.jax.nnx import wrap
    x0, us = _inputs()
    m = _r2dn()
    module = wrap(m)
    opt = nnx.Optimizer(module, optax.adam(1e-2), wrt=nnx.Param)

    @nnx.jit
    def step(module, opt):
        loss, grads = nnx.value_and_grad(lambda mod: _loss(mod, x0, us))(module)
        opt.update(module, grads)
        return loss

    tx = optax.adam(1e-2)
    ref, state = m, tx.init(m)
    losses = []
    for _ in range(3):
        losses.append(float(step(module, opt)))
        grads = jax.grad(_loss)(ref, x0, us)
        updates, state = tx.update(grads, state, ref)
        ref = optax.apply_updates(ref, updates)
    assert losses[-1] < losses[0]
    for name, value in module.unwrap().direct().items():
        assert_close(value, ref.direct()[name])
