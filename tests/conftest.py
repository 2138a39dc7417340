"""What every test shares: the one tolerance table and the backend fixture.

Tolerances are relative to the scale of the expected array (its largest entry, at least 1)
unless the entry says otherwise; :func:`helpers.assert_close` applies them.
"""

from __future__ import annotations

import pytest

import r2dn
from r2dn import backends

#: the one tolerance table of the tests.
TOL = {
    # float64 against the float64 NumPy reference (two LAPACKs, a few condition numbers of ulps)
    "f64": 1e-11,
    # float32 against the float64 reference (float32 rounding times the maps' conditioning)
    "f32": 1e-4,
    # torch float32 against the float64 reference: measured below 1e-6
    "f32_torch": 1e-5,
    # torch float64 parity: elementwise relative ...
    "f64_elementwise": 1e-10,
    # ... plus an absolute floor of this times the array's scale, for entries that cancel to ~0
    "f64_floor": 1e-12,
    # an autodiff gradient against float64 central differences (step 1e-6)
    "fd": 1e-6,
    # the certified gamma is a float64 bisection to ~2^-50 relative: rounding above it
    "gain": 1e-9,
    # RobustNeuralNetworks.jl through juliacall against r2dn, by dtype
    "julia_f64": 1e-9,
    "julia_f32": 2e-4,
    # a classification accuracy recomputed from a Julia model (one image in 10,000 is 1e-4)
    "accuracy": 5e-4,
}


@pytest.fixture(params=r2dn.BACKENDS)
def backend(request) -> backends.Backend:
    """Each shipped backend's record (from the registry); skipped where its framework is
    missing. JAX float64 needs the test module to enable 64-bit mode."""
    try:
        return backends.get(request.param)
    except ImportError as err:
        pytest.skip(f"backend {request.param!r} is not installed: {err}")


@pytest.fixture
def one_torch_thread():
    """torch with one intra-op thread for the test (small tensors: threads only add noise)."""
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
