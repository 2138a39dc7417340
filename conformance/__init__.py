"""The cross-backend conformance suite of r2dn (installed as ``r2dn.conformance``).

Every backend (NumPy, PyTorch, JAX, and RobustNeuralNetworks.jl through ``r2dn.julia``) is run on
one declarative case matrix (:mod:`.cases`) with identical parameters, and compared with the
float64 NumPy reference (:mod:`.reference`) and committed golden fixtures (:mod:`.golden`):
explicit matrices, one step, a rollout, loss gradients, certificates and empirical gains
(:mod:`.runner`, tolerances in :mod:`.tolerances`, expected differences in
``known_differences.toml``). ``r2dn conformance`` (:mod:`r2dn.cli`) and
:func:`~.suite.run_suite` run it; ``tests/test_conformance.py`` runs the quick tier in CI.

Importing this package imports no framework; the backends are imported when a run loads them.
"""

from .cases import FULL, QUICK, Case, select

__all__ = ["FULL", "QUICK", "Case", "Outcome", "run_suite", "select"]


def __getattr__(name: str):
    # lazy, so ``python -m r2dn.conformance.golden`` does not import itself twice
    if name in ("Outcome", "run_suite"):
        from . import suite
        return getattr(suite, name)
    raise AttributeError(f"module 'r2dn.conformance' has no attribute {name!r}")
