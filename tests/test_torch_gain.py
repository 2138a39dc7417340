"""``r2dn.torch.empirical_gain``: the adversarial search never beats the certificate, and it does
beat it (negative control) once the model's explicit form is broken past its certified gain."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import r2dn  # noqa: E402
import r2dn.torch as rt  # noqa: E402
from conftest import TOL  # noqa: E402


@pytest.fixture(autouse=True)
def _one_intra_op_thread():
    """These models are tiny: intra-op threads only add synchronisation, which costs ~10x on a
    loaded CI runner (a 4x4 tril waits ~20 ms for a descheduled OpenMP thread). Restored after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


#: the certified gamma is a float64 bisection to ~2^-50 relative; allow rounding above it.
GAIN_RTOL = TOL["gain"]
#: a short search: enough to find the planted violations below, a fraction of a second per model.
SEARCH = dict(steps=25, batch=4, horizon=6, seed=0)

MODELS = {
    "LBDN": lambda: rt.LBDN(3, (8, 8), 2, gamma=2.0, dtype="float64", seed=1),
    "LBDN-learn_gamma": lambda: rt.LBDN(2, (4,), 3, gamma=0.5, learn_gamma=True, dtype="float64",
                                        seed=3),
    "LipschitzREN": lambda: rt.LipschitzREN(2, 3, 4, 2, gamma=1.0, dtype="float64", seed=1),
    "LipschitzR2DN": lambda: rt.LipschitzR2DN(3, 3, 4, 1, hidden=(6,), gamma=2.0,
                                              dtype="float64", seed=2),
    "GeneralREN": lambda: rt.GeneralREN(2, 3, 4, 2, Q=-np.eye(2), S=0.2 * np.ones((2, 2)),
                                        R=np.eye(2), activation="tanh", dtype="float64", seed=1),
    "GeneralR2DN": lambda: rt.GeneralR2DN(1, 2, 3, 2, hidden=(4,), Q=-np.eye(2),
                                          S=0.2 * np.ones((1, 2)), R=np.eye(1),
                                          dtype="float64", seed=1),
}


def break_model(model, gamma: float) -> None:
    """Plant a violation in ``model.explicit()`` that the search has to find.

    Recurrent: add a feedthrough ``1.5 gamma I`` to D22 (the output then jumps by 1.5 gamma |du|
    along some input direction, on top of the dynamic response). LBDN: scale the first layer's
    B by 3, so that layer is no longer 1-Lipschitz (its Cayley structure is broken).
    """
    original = model.explicit

    def explicit():
        e = original()
        if model.config.is_recurrent:
            eye = torch.eye(*e.D22.shape, dtype=e.D22.dtype, device=e.D22.device)
            return e._replace(D22=e.D22 + 1.5 * gamma * eye)
        first = e.layers[0]._replace(B=3.0 * e.layers[0].B)
        return e._replace(layers=(first, *e.layers[1:]))

    model.explicit = explicit


@pytest.mark.parametrize("name", list(MODELS))
def test_empirical_gain_below_certificate_and_negative_control(name):
    model = MODELS[name]()
    report = r2dn.certify(model)
    assert report.certified and report.gamma is not None and np.isfinite(report.gamma)
    found = rt.empirical_gain(model, **SEARCH)
    assert 0 < found <= report.gamma * (1 + GAIN_RTOL)
    assert all(p.grad is None for p in model.parameters())
    break_model(model, report.gamma)
    assert rt.empirical_gain(model, **SEARCH) > report.gamma * 1.05


def test_sandwich_layer_gain_is_nearly_tight():
    """A single Sandwich layer's bound (1) is nearly attained: the search is not vacuous."""
    model = rt.SandwichLayer(3, 3, dtype="float64", seed=0)
    found = rt.empirical_gain(model, **SEARCH)
    assert 0.9 < found <= 1 + GAIN_RTOL


def test_empirical_gain_float32_and_deterministic():
    model = rt.LipschitzR2DN(2, 2, 3, 2, hidden=(4,), gamma=1.0, seed=0)
    a = rt.empirical_gain(model, steps=5, batch=2, horizon=4)
    assert a == rt.empirical_gain(model, steps=5, batch=2, horizon=4)
    assert a <= r2dn.certify(model).gamma * (1 + 1e-5)


@pytest.mark.parametrize("kw, match", [
    (dict(steps=0), "`steps` must be a positive integer; got steps=0"),
    (dict(batch=2.5), "`batch` must be a positive integer; got batch=2.5"),
    (dict(lr=-1.0), "`lr` must be a number > 0; got lr=-1.0"),
])
def test_empirical_gain_argument_errors(kw, match):
    with pytest.raises(ValueError, match=match):
        rt.empirical_gain(rt.LBDN(2, (3,), 1), **kw)
