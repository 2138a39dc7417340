"""Checkpoints and convert() across backends: every family, every backend pair, exact parameters
and equal outputs (docs/guides/porting.md#checkpoint-format)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import r2dn
import r2dn.numpy as rn
from r2dn import backends
from r2dn._model import to_numpy

from helpers import RECURRENT, assert_close, build, perturb

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
jax.config.update("jax_enable_x64", True)
import r2dn.jax as rj  # noqa: E402
import r2dn.torch as rt  # noqa: E402

BACKENDS = {name: backends.module(name) for name in r2dn.BACKENDS}
FAMILIES = RECURRENT + ["LBDN", "SandwichLayer"]


def _outputs(model, rng):
    c = model.config
    if not c.is_recurrent:
        u = rng.normal(size=(4, c.in_features))
        return [to_numpy(model(_as(model, u)))]
    x0 = rng.normal(size=(4, c.nx))
    us = rng.normal(size=(6, 4, c.nu))
    xT, ys = model.simulate(_as(model, x0), _as(model, us))
    return [to_numpy(xT), to_numpy(ys)]


def _as(model, a):
    return model._backend.asarray(a, next(iter(model.direct().values())))


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("src,dst", list(itertools.permutations(BACKENDS, 2)))
def test_save_in_one_backend_load_in_another(tmp_path, family, src, dst):
    ref = perturb(rn, build(rn, family, 3, 2, 4, 2, seed=5, hidden=(3,)), 5)
    model = BACKENDS[src].from_direct(ref.config, ref.direct())
    path = r2dn.save(model, tmp_path / "m.safetensors")
    loaded = BACKENDS[dst].load(path)
    assert loaded.config == model.config
    a, b = model.direct(), loaded.direct()
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(to_numpy(a[k]), to_numpy(b[k])), k
    for x, y in zip(_outputs(model, np.random.default_rng(0)), _outputs(loaded, np.random.default_rng(0))):
        assert_close(y, x)
    converted = BACKENDS[dst].convert(model)
    for k in a:
        assert np.array_equal(to_numpy(converted.direct()[k]), to_numpy(a[k])), k


def test_torch_float32_model_saved_and_loaded_in_jax_and_numpy(tmp_path):
    """Issue 7's acceptance case, in the default float32 of the torch backend."""
    model = rt.LipschitzR2DN(2, 4, 6, 2, (8,), 1.5, seed=3)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    path = r2dn.save(model, tmp_path / "t.safetensors")
    for dst in (rj, rn):
        loaded = dst.load(path)
        assert loaded.config.dtype == "float32"
        for k, v in model.direct().items():
            assert np.array_equal(to_numpy(loaded.direct()[k]), to_numpy(v))
        for x, y in zip(_outputs(model, np.random.default_rng(1)), _outputs(loaded, np.random.default_rng(1))):
            assert_close(y, x, tier="f32")


def test_torch_load_to_device_meta(tmp_path):
    path = r2dn.save(rn.ContractingREN(2, 3, 4, 2), tmp_path / "m.safetensors")
    model = rt.load(path, device="meta")
    assert all(p.device.type == "meta" for p in model.parameters())
