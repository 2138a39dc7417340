"""Every model call enters the backend once (docs/architecture.md#how-a-call-flows).

Counted with ``tools/count_crossings.py``'s profiler: a *hand-over* is a call from a file of
``r2dn/`` into one of ``backends/<name>/`` made while no earlier such call is still running.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import r2dn

from helpers import REPO

_spec = importlib.util.spec_from_file_location("count_crossings", REPO / "tools" / "count_crossings.py")
crossings = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(crossings)

MODELS = dict(crossings.MODELS)


def hand_overs(backend, model, what: str) -> dict[str, int]:
    counts = crossings.count(crossings.calls(model, backend.name, 4)[what], backend.name)
    return {name: n for (kind, name), n in counts.items() if kind == "hand-over"}


@pytest.mark.parametrize("family", sorted(MODELS))
@pytest.mark.parametrize("what", ["simulate", "model(x0, us)", "model(x, u)"])
def test_a_model_call_hands_over_once(backend, family, what):
    if backend.name == "jax" and family != "LipschitzR2DN":
        pytest.skip("a warm jitted JAX call runs no Python below jit: one family shows it")
    model = getattr(r2dn.backends.module(backend.name), family)(*MODELS[family], seed=0)
    got = hand_overs(backend, model, what)
    if backend.name == "numpy":           # the core's own call hook; the backend holds the arrays
        assert got == {"_direct_arrays": 1}
    elif backend.name == "jax" and what == "simulate":     # a JAX simulate starts in the backend
        assert got == {}
    else:
        assert got == {"call": 1}


def test_the_counter_sees_a_second_hand_over(monkeypatch):
    """Negative control: a forward that also runs a core method reading the backend
    (``direct()`` -> torch's ``_direct_arrays``) outside the hook makes a second hand-over."""
    rt = pytest.importorskip("r2dn.torch")
    model = rt.LipschitzR2DN(*MODELS["LipschitzR2DN"], seed=0)
    from r2dn import _model
    forward = _model.RecurrentMixin.forward

    def forward_reading_direct(self, x, u, *, chunk=None):
        self.direct()                       # r2dn/_model.py calling backends/torch/models.py
        return forward(self, x, u, chunk=chunk)

    monkeypatch.setattr(_model.RecurrentMixin, "forward", forward_reading_direct)
    got = hand_overs(r2dn.backends.get("torch"), model, "model(x0, us)")
    assert got == {"_direct_arrays": 1, "call": 1}


def test_torch_simulate_refuses_one_step():
    """``simulate`` is always a sequence: a 2-D ``us`` is an error (not one step)."""
    rt = pytest.importorskip("r2dn.torch")
    torch = pytest.importorskip("torch")
    model = rt.LipschitzR2DN(*MODELS["LipschitzR2DN"], seed=0)
    with pytest.raises(ValueError, match=r"LipschitzR2DN\.simulate: `us` must have shape \(T, batch, nu\)"):
        model.simulate(model.init_state(3), torch.zeros(3, 2))
    rn = pytest.importorskip("r2dn.numpy")
    with pytest.raises(ValueError, match=r"LipschitzR2DN\.simulate: `us` must have shape"):
        rn.LipschitzR2DN(*MODELS["LipschitzR2DN"], seed=0).simulate(np.zeros((3, 3)), np.zeros((3, 2)))
