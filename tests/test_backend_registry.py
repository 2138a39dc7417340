"""The backend registry: every switch on a backend name reads it, and a backend registered from
the tests (array-api-strict, never shipped) runs the conformance suite's forward checks."""

from __future__ import annotations

import numpy as np
import pytest

import r2dn
from r2dn import backends
from r2dn.conformance import backends as cb
from r2dn.conformance.suite import run_suite

pytest.importorskip("array_api_strict")
import array_api_strict_backend as strict  # noqa: E402 - after the skip


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
