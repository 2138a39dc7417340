"""r2dn.jax.empirical_gain: adversarial ascent stays below the certified gain, and exceeds it for
a deliberately broken model (negative control)."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402

import r2dn  # noqa: E402
import r2dn.jax as rj  # noqa: E402
import r2dn.numpy as rn  # noqa: E402

from helpers import build, perturb  # noqa: E402

SEARCH = dict(batch=4, horizon=8, steps=40, lr=0.05, seed=0,
              compiler_options=rj.fast_compile_options())


@pytest.mark.parametrize("family, sizes, dtype", [
    ("LBDN", (3, 0, 0, 2), "float64"),
    ("GeneralR2DN", (1, 2, 2, 2), "float32"),
])
def test_empirical_gain_stays_below_the_certified_gain(family, sizes, dtype):
    model = perturb(rj, build(rj, family, *sizes, seed=2, hidden=(4,), gamma=1.5, dtype=dtype), 3)
    report = r2dn.certify(rn.convert(model))       # the same parameters, no JAX compilation
    assert report.certified
    found = rj.empirical_gain(model, **SEARCH)
    tol = 1e-4 if dtype == "float32" else 1e-9
    assert 0 < found <= report.gamma * (1 + tol), (found, report.gamma)


def _broken(backend, model, extra):
    """``model`` rebuilt in ``backend`` with ``extra`` added to its explicit D22."""
    class Broken(getattr(backend, model.config.model)):
        def explicit(self):
            e = super().explicit()
            return e._replace(D22=e.D22 + extra)

    broken = object.__new__(Broken)
    base = backend.JaxModel if backend is rj else backend.NumpyModel
    base.__init__(broken, model.config, model.direct())
    return broken


def test_empirical_gain_exceeds_the_certified_gain_of_a_broken_model():
    """Negative control. D22 + 3 gamma [I; 0] (ny >= nu, so [I; 0] is an isometry) makes every input
    pair's gain at least 3 gamma - gamma = 2 gamma (gamma certified for the healthy LipschitzREN):
    the search must find more than gamma, and the certificate must reject the model too."""
    model = perturb(rj, build(rj, "LipschitzREN", 2, 2, 3, 3, seed=4, gamma=1.5,
                              dtype="float64"), 5)
    report = r2dn.certify(rn.convert(model))
    assert report.certified and report.gamma <= 1.5 * (1 + 1e-9)
    extra = 3 * report.gamma * np.eye(3, 2)
    with pytest.warns(r2dn.R2DNWarning, match="not certified"):
        assert not r2dn.certify(_broken(rn, model, extra)).certified
    broken = _broken(rj, model, jnp.asarray(extra))
    assert rj.empirical_gain(broken, **SEARCH) > 2 * report.gamma * (1 - 1e-9)


def test_empirical_gain_rejects_bad_options():
    model = build(rj, "LBDN", 2, 0, 0, 1, dtype="float64")
    with pytest.raises(ValueError, match=r"`steps` must be a positive integer; got steps=0"):
        rj.empirical_gain(model, steps=0)
    with pytest.raises(ValueError, match=r"`lr` must be a number > 0; got lr=-1"):
        rj.empirical_gain(model, lr=-1)
