"""The family registry (:mod:`r2dn.families`): a family added by one ``register`` call, in this
test only, is a model class in every backend, validates, simulates, certifies and checkpoints,
with no other file of the library edited (issue 12, item 2).

The toy family ``HalfGainREN`` is a LipschitzREN with gamma fixed at 1/2: its reference is the
shipped ``LipschitzREN(..., gamma=0.5)`` of the same seed (same parameter draws, same explicit
map), and its bound is checked by the certificate maths.
"""

from __future__ import annotations

import numpy as np
import pytest

import r2dn
from r2dn import _spec, backends, families
from r2dn.certify import slope_restricted_multiplier
from r2dn.config import ModelConfig, build_recurrent, check_gamma, documented, lipschitz_supply
from r2dn.init import ren_shapes

from helpers import assert_close

GAMMA = 0.5
SIZES = (2, 3, 4, 2)                   # nu, nx, nv, ny


@documented("A REN of incremental gain at most 1/2 (a test-only family).",
            ">>> import r2dn.numpy as rn\n>>> rn.HalfGainREN(2, 3, 4, 2).config.gamma\n0.5")
def half_gain_ren_config(nu: int, nx: int, nv: int, ny: int, *, seed: int = 0,
                         dtype: str | None = None, default_dtype: str = "float64") -> ModelConfig:
    return build_recurrent("HalfGainREN", nu, nx, nv, ny, dtype=dtype,
                           default_dtype=default_dtype, eps=None, compat=None, gamma=GAMMA,
                           seed=seed)


def _supply(cfg: ModelConfig):
    return lipschitz_supply(cfg.gamma, cfg.nu, cfg.ny)


HALF_GAIN_REN = families.Family(
    name="HalfGainREN", kind="ren", constructor=half_gain_ren_config, shapes=ren_shapes,
    explicit=_spec.ren_explicit_wide, options=frozenset({"gamma"}), rules=(check_gamma,),
    supply=_supply, gain=lambda cfg: cfg.gamma, multiplier=slope_restricted_multiplier)


@pytest.fixture
def half_gain():
    families.register(HALF_GAIN_REN)
    try:
        yield HALF_GAIN_REN
    finally:
        families.unregister("HalfGainREN")


def _inputs(T: int = 6, batch: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    return rng.normal(size=(batch, SIZES[1])), rng.normal(size=(T, batch, SIZES[0]))


def test_a_registered_family_runs_in_every_backend(half_gain, backend):
    module = backends.module(backend.name)
    dtype = "float64" if backend.name != "jax" else "float32"     # JAX: no 64-bit mode needed
    model = module.HalfGainREN(*SIZES, seed=3, dtype=dtype)
    ref = module.LipschitzREN(*SIZES, GAMMA, seed=3, dtype=dtype)
    assert type(model).__name__ == "HalfGainREN" and model.config.gamma == GAMMA
    assert model.direct().keys() == ref.direct().keys()
    for name, value in ref.direct().items():
        assert np.array_equal(r2dn.to_numpy(model.direct()[name]), r2dn.to_numpy(value))
    x0, us = _inputs()
    x0, us = backend.from_numpy(x0.astype(dtype)), backend.from_numpy(us.astype(dtype))
    xT, ys = model.simulate(x0, us)
    xT_ref, ys_ref = ref.simulate(x0, us)
    tier = "f64" if dtype == "float64" else "f32"
    assert_close(r2dn.to_numpy(ys), r2dn.to_numpy(ys_ref), tier)
    assert_close(r2dn.to_numpy(xT), r2dn.to_numpy(xT_ref), tier)
    report = r2dn.certify(model)
    assert report.certified and report.gamma <= GAMMA * (1 + report.tolerance)


def test_a_registered_family_validates_and_checkpoints(half_gain, tmp_path):
    import r2dn.numpy as rn

    with pytest.raises(ValueError, match=r"`nu` must be a positive integer; got nu=0"):
        rn.HalfGainREN(0, 3, 4, 2)
    with pytest.raises(TypeError, match=r"HalfGainREN: .*unexpected keyword.*signature is "
                                        r"HalfGainREN\(nu, nx, nv, ny, \*, seed=0"):
        rn.HalfGainREN(*SIZES, abar=0.9)
    cfg = rn.HalfGainREN(*SIZES).config
    with pytest.raises(ValueError, match=r"`d22_zero` does not apply to this model \(it applies "
                                         r"to ContractingREN and LipschitzREN only\)"):
        cfg.replace(d22_zero=True)
    with pytest.raises(ValueError, match=r"`gamma` must be a finite number > 0; got gamma=None"):
        cfg.replace(gamma=None)
    model = rn.HalfGainREN(*SIZES, seed=5)
    path = tmp_path / "half.safetensors"
    r2dn.save(model, path)
    back = rn.load(path)
    assert type(back) is type(model) and back.config == model.config
    x0, us = _inputs()
    assert np.array_equal(back.simulate(x0, us)[1], model.simulate(x0, us)[1])
    assert "HalfGainREN" in r2dn.config.RECURRENT_FAMILIES
    assert "HalfGainREN" in r2dn.config.LIPSCHITZ_FAMILIES


def test_unregistered_and_unknown_families_are_clear_errors(half_gain):
    import r2dn.numpy as rn

    with pytest.raises(ValueError, match="already registered"):
        families.register(HALF_GAIN_REN)
    with pytest.raises(ValueError, match="shipped family"):
        families.unregister("LipschitzREN")
    with pytest.raises(ValueError, match=r"`model` must be one of .*HalfGainREN; got 'Nope'"):
        ModelConfig(model="Nope")
    with pytest.raises(ValueError, match=r"unknown options \['beta'\]"):
        families.Family(name="X", kind="ren", constructor=half_gain_ren_config,
                        shapes=ren_shapes, explicit=_spec.ren_explicit_wide,
                        options=frozenset({"beta"}), multiplier=slope_restricted_multiplier)
    families.unregister("HalfGainREN")
    try:
        with pytest.raises(AttributeError, match="has no attribute 'HalfGainREN'"):
            rn.HalfGainREN
    finally:
        families.register(HALF_GAIN_REN)          # the fixture unregisters it


def test_every_shipped_family_declares_its_parts():
    """The records the library reads: the class name, kind, a constructor whose ``model`` is
    that name, and a certificate multiplier for every recurrent family."""
    assert families.names() == tuple(families.BUILTIN)
    for name in families.BUILTIN:
        fam = families.get(name)
        assert fam.name == name and fam.kind in families.KINDS
        assert (fam.multiplier is not None) == fam.recurrent
        assert (fam.gain is not None) == (name in ("LipschitzREN", "LipschitzR2DN"))
        assert fam.contracting == name.startswith("Contracting")
