"""Shared test helpers: data folder, closeness at the tolerances of ``conftest.TOL``, model
factories with random valid options."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from r2dn.config import FAMILIES, R2DN_FAMILIES, random_supply as random_qsr

REPO = Path(__file__).resolve().parents[1]

from conftest import TOL


def data_dir(sub: str = "") -> Path | None:
    """The shared data folder (``$R2DN_DATA`` or ``../shared/data``), or None when absent."""
    root = Path(os.environ.get("R2DN_DATA", REPO.parent / "shared" / "data"))
    path = root / sub if sub else root
    return path if path.exists() else None


def assert_close(actual, desired, tier: str = "f64", scale: float | None = None) -> None:
    """Relative closeness at the tier's tolerance, measured against the scale of ``desired``."""
    actual = np.asarray(actual, dtype=np.float64)
    desired = np.asarray(desired, dtype=np.float64)
    assert actual.shape == desired.shape, (actual.shape, desired.shape)
    ref = scale if scale is not None else max(1.0, float(np.max(np.abs(desired), initial=0.0)))
    err = float(np.max(np.abs(actual - desired), initial=0.0))
    assert err <= TOL[tier] * ref, f"max error {err:.3g} > {TOL[tier]:g} x scale {ref:.3g}"




def build(rn, family: str, nu: int, nx: int, nv: int, ny: int, *, seed: int = 0,
          hidden=(4,), gamma: float = 2.0, **options):
    """A model of ``family`` from backend module ``rn`` with the given sizes (valid extras drawn)."""
    cls = getattr(rn, family)
    rng = np.random.default_rng(1000 + seed)
    if family == "SandwichLayer":
        return cls(nu, ny, seed=seed, **options)
    if family == "LBDN":
        return cls(nu, hidden, ny, gamma, seed=seed, **options)
    args = [nu, nx, nv, ny]
    if family in R2DN_FAMILIES:
        args.append(hidden)
    if family.startswith("Lipschitz"):
        args.append(gamma)
    if family.startswith("General"):
        args += list(random_qsr(rng, nu, ny))
    if family == "PassiveREN":
        args[3] = nu
    return cls(*args, seed=seed, **options)


def perturb(rn, model, seed: int, scale: float = 0.5):
    """The same model with every free parameter moved by Gaussian noise (relative ``scale``)."""
    rng = np.random.default_rng(seed)
    direct = {}
    for k, v in model.direct().items():
        v = np.asarray(v, dtype=np.float64)
        size = scale * (np.sqrt(np.mean(v**2)) + 0.1) if v.size else 0.0
        direct[k] = v + size * rng.normal(size=v.shape)
    return rn.from_direct(model.config, direct)


RECURRENT = [f for f in FAMILIES if f not in ("SandwichLayer", "LBDN")]
