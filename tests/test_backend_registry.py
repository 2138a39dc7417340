"""The backend registry: every switch on a backend name reads it, and a backend registered from
the tests (array-api-strict, never shipped) runs the conformance suite's forward checks."""

from __future__ import annotations

import numpy as np
import pytest

import r2dn
import r2dn.numpy
from r2dn import backends
from r2dn._model import to_numpy
from r2dn.conformance import backends as cb
from r2dn.conformance.suite import run_suite

pytest.importorskip("array_api_strict")
import array_api_strict_backend as strict  # noqa: E402 - after the skip
from helpers import assert_close, build, perturb  # noqa: E402


def test_shipped_backends_are_the_registry():
    assert backends.names()[:3] == r2dn.BACKENDS == ("numpy", "torch", "jax")
    for name in r2dn.BACKENDS:
        record = backends.get(name)
        assert record.name == name and backends.module(name).__name__ == f"r2dn.{name}"


@pytest.mark.parametrize("call", [
    lambda: r2dn.backend("cupy"), lambda: backends.get("cupy"),
    lambda: r2dn.julia.load_model("x.bson", backend="cupy"), lambda: cb.load(("cupy",))])
def test_unknown_backend_names_raise_and_list_the_choices(call):
    import r2dn.julia  # noqa: F401
    with pytest.raises(ValueError, match="'cupy'|cupy") as info:
        call()
    assert "numpy" in str(info.value)


def test_register_rejects_a_non_record():
    with pytest.raises(TypeError, match="expected a Backend record; got dict"):
        backends.register({"name": "x"})


def test_a_registered_backend_is_seen_by_every_switch_and_removed_after():
    with strict.registered():
        assert strict.NAME in backends.names() and strict.NAME in cb.known_names()
        assert r2dn.backend(strict.NAME) is strict
        model = r2dn.backend(strict.NAME).CLASSES["LipschitzR2DN"](2, 3, 4, 1, (5,), 2.0, seed=3)
        ref = r2dn.numpy.LipschitzR2DN(2, 3, 4, 1, (5,), 2.0, seed=3)
        us = np.random.default_rng(0).normal(size=(6, 2, 2))
        _, ys = model.simulate(model.init_state(2), strict.xps.asarray(us))
        _, want = ref.simulate(ref.init_state(2), us)
        np.testing.assert_allclose(np.asarray(ys), want, rtol=1e-12, atol=1e-12)
        assert r2dn.certify(model).certified
    assert strict.NAME not in backends.names()
    with pytest.raises(ValueError, match="array_api_strict"):
        r2dn.backend(strict.NAME)


def test_array_api_strict_passes_the_quick_tier_forward_checks():
    """The conformance matrix (quick tier) on the test-only backend: every check that applies
    (explicit, dtype, step, rollout, certificate, contraction, gains, dissipation, golden)
    passes; gradients do not apply (no autodiff)."""
    with strict.registered():
        outcome = run_suite(tier="quick", backends=(strict.NAME,), progress=False)
    assert not outcome.absent, outcome.absent
    mine = [r for r in outcome.results if r.backend == strict.NAME]
    checks = {r.check for r in mine}
    assert {"explicit", "dtype", "step", "rollout", "forward", "certificate"} <= checks
    assert not checks & {"grad_fd", "grad_cross"}
    bad = [(r.case, r.check, r.status, r.detail) for r in mine if r.failed]
    assert not bad, bad
    assert len({r.case for r in mine}) == len(outcome.cases) > 10


@pytest.mark.parametrize("family", ["ContractingREN", "LipschitzR2DN", "LBDN"])
def test_every_record_converts_checks_and_runs_like_the_reference(backend, family):
    """Through the record only: a float32 model of each backend agrees with its float64 NumPy
    twin; ``asarray`` keeps the parameters' dtype, ``all_finite`` sees a NaN."""
    ref = perturb(r2dn.numpy, build(r2dn.numpy, family, 2, 3, 4, 2, seed=7, hidden=(3,)), 7)
    model = backends.module(backend.name).from_direct(ref.config.replace(dtype="float32"),
                                                      ref.direct())
    assert model._backend is backend
    like = next(iter(model.direct().values()))
    rng = np.random.default_rng(0)
    if ref.config.is_recurrent:
        x0, us = rng.normal(size=(3, 3)), rng.normal(size=(5, 3, 2))
        got = model.simulate(backend.asarray(x0, like), backend.asarray(us, like))
        want = ref.simulate(x0, us)
    else:
        u = rng.normal(size=(3, 2))
        got, want = (model(backend.asarray(u, like)),), (ref(u),)
    for a, b in zip(got, want):
        assert str(a.dtype).endswith("float32")
        assert backend.all_finite(a)
        assert_close(to_numpy(a), b, tier="f32")
    assert not backend.all_finite(backend.from_numpy(np.array([1.0, np.nan])))
