"""The float64 NumPy reference of a case: what every backend is compared with.

For a case of dtype ``d`` the reference model is ``r2dn.numpy.from_direct(make_config(case,
"float64"), direct_d)`` where ``direct_d`` are the case's parameters rounded to ``d`` (and the
signals likewise): the same maps, the same resolved ``eps``, the same numbers the backend holds,
evaluated in float64 (a float32 REN's map with its float32 rounding margin, :func:`model64`). A
backend's error is then its own arithmetic, not the rounding of its inputs.

The reference gradient is a float64 central difference of the reference loss (NumPy has no
autodiff), with one Richardson step: on a few single entries (``case.fd_entries``, one per
parameter in the full tier) and along random directions in the space of *all* free parameters
(so a wrong gradient of any parameter shows up).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import array_api_compat.numpy as xnp
import numpy as np

import r2dn
import r2dn.numpy as rn
from r2dn import _spec
from r2dn.certify import CertificateReport
from r2dn.config import CONTRACTING_FAMILIES, LIPSCHITZ_FAMILIES, ModelConfig

from .cases import Case, CaseInputs, case_direct, case_inputs, make_config
from .tolerances import FD_DIRECTIONS, FD_KINK, FD_STEP


def _round(a: Any, dtype: str) -> Any:
    return None if a is None else np.asarray(np.asarray(a, dtype=dtype), dtype=np.float64)


@dataclass(frozen=True)
class Reference:
    """Everything computed once per case from the float64 NumPy reference."""

    case: Case
    config: ModelConfig                   # the case's config (its dtype)
    config64: ModelConfig                 # the same in float64
    direct: dict[str, np.ndarray]         # the case's parameters, rounded to the case's dtype
    inputs: CaseInputs                    # the case's signals, rounded likewise
    explicit: dict[str, np.ndarray]
    step: tuple[np.ndarray, np.ndarray] | None
    rollout: tuple[np.ndarray | None, np.ndarray]
    loss: float
    fd: dict[tuple[str, int], float]      # (name, flat index) -> d loss / d theta
    fd_dropped: tuple[tuple[str, int], ...]   # entries next to a kink, left out
    fd_directions: tuple[tuple[dict[str, np.ndarray], float], ...]   # (v, d loss(theta + t v)/dt)
    certificate: CertificateReport
    bound: float | None                   # the gain every backend must stay below (None: none)
    bound_source: str

    @property
    def Pc(self) -> np.ndarray | None:
        """E^T P^-1 E (the incremental storage), recurrent models only."""
        if "E" not in self.explicit:
            return None
        E, P = self.explicit["E"], self.explicit["P"]
        return E.T @ np.linalg.solve(P, E)


def model64(config: ModelConfig, direct: dict[str, np.ndarray]) -> Any:
    """The float64 NumPy model of a case of ``config`` (any dtype) on the parameters ``direct``.

    A REN's map builds a rounding margin relative to its dtype's epsilon into the neuron block
    (docs/math/float32.md#a-margin-built-into-the-map): a float32 REN is a (slightly) different
    map from a float64 one on the same parameters. The reference of a float32 REN is therefore
    that float32 map evaluated in float64 (``_spec.ren_explicit`` with the case's config on float64
    arrays), so an error stays the backend's arithmetic alone.
    """
    model = rn.from_direct(config.replace(dtype="float64"), direct)
    if config.family == "ren" and config.dtype != "float64":
        explicit = _spec.ren_explicit(model.direct(), config, xp=xnp)
        model.explicit = lambda: explicit
    return model


def evaluate64(config: ModelConfig, direct: dict[str, np.ndarray], inputs: CaseInputs):
    """(explicit, step, rollout, loss) of the case's float64 reference model (:func:`model64`)."""
    model = model64(config, direct)
    e = {k: np.asarray(v, dtype=np.float64) for k, v in
         _spec.flatten_explicit(model.explicit()).items()}
    if not config.is_recurrent:
        y = model(inputs.u)
        return e, None, (None, y), float(np.sum(inputs.wy * y))
    step = model(inputs.x, inputs.u)
    xT, ys = model.simulate(inputs.x0, inputs.us)
    return e, step, (xT, ys), float(np.sum(inputs.wy * ys) + np.sum(inputs.wx * xT))


def loss64(config: ModelConfig, direct: dict[str, np.ndarray], inputs: CaseInputs) -> float:
    """The case's loss ``sum(wy * ys) + sum(wx * x_T)`` (``sum(wy * y)``) in float64."""
    model = model64(config, direct)
    if not config.is_recurrent:
        return float(np.sum(inputs.wy * model(inputs.u)))
    xT, ys = model.simulate(inputs.x0, inputs.us)
    return float(np.sum(inputs.wy * ys) + np.sum(inputs.wx * xT))


def fd_entries(case: Case, direct: dict[str, np.ndarray]) -> list[tuple[str, int]]:
    """One flat index of every (non-empty) free parameter, drawn from the case's seed; at most
    ``case.fd_entries`` of them (spread over the parameters) unless that is 0."""
    rng = np.random.default_rng([case.seed, 3])
    entries = [(name, int(rng.integers(v.size))) for name, v in direct.items() if v.size]
    if case.fd_entries and len(entries) > case.fd_entries:
        keep = sorted(rng.choice(len(entries), size=case.fd_entries, replace=False))
        entries = [entries[i] for i in keep]
    return entries


def _richardson(f, h: float) -> tuple[float, float]:
    """``(estimate, kink indicator)`` of f'(0) from central differences with steps h and h / 2."""
    d1 = (f(h) - f(-h)) / (2 * h)
    d2 = (f(h / 2) - f(-h / 2)) / h
    return (4 * d2 - d1) / 3, abs(d1 - d2)


def finite_difference(config, direct, inputs, entries):
    """Richardson-extrapolated central differences of the loss; entries near a kink dropped."""
    def at(name, idx, delta):
        d = dict(direct)
        v = d[name].copy().reshape(-1)
        v[idx] += delta
        d[name] = v.reshape(d[name].shape)
        return loss64(config, d, inputs)

    raw = {}
    for name, idx in entries:
        h = FD_STEP * (1 + abs(float(direct[name].reshape(-1)[idx])))
        raw[(name, idx)] = _richardson(lambda t: at(name, idx, t), h)
    scale = max([1.0] + [abs(d) for d, _ in raw.values()])
    fd = {key: d for key, (d, kink) in raw.items() if kink <= FD_KINK * scale}
    return fd, tuple(key for key in raw if key not in fd)


def directional_differences(case: Case, config, direct, inputs, n: int):
    """``n`` random unit directions v over *all* parameters and d/dt loss(theta + t v) at t = 0.

    Catches a wrong gradient of any parameter (the per-entry differences sample only a few);
    a direction whose two differences disagree (a kink) is left out.
    """
    rng = np.random.default_rng([case.seed, 4])
    out = []
    for _ in range(n):
        v = {k: rng.normal(size=a.shape) for k, a in direct.items()}
        norm = np.sqrt(sum(float(np.sum(a**2)) for a in v.values()))
        v = {k: a / norm for k, a in v.items()}
        f = lambda t, v=v: loss64(config, {k: direct[k] + t * v[k] for k in direct}, inputs)  # noqa: E731
        d, kink = _richardson(f, FD_STEP)
        if kink <= FD_KINK * max(1.0, abs(d)):
            out.append((v, d))
    return tuple(out)


def gain_bound(config: ModelConfig, cert: CertificateReport,
               direct: dict[str, np.ndarray]) -> tuple[float | None, str]:
    """The incremental gain a model of ``config`` must respect, and where it comes from."""
    if config.model in LIPSCHITZ_FAMILIES:
        return float(config.gamma), "configured gamma"
    if config.model == "LBDN":
        if config.learn_gamma:
            return float(np.exp(direct["log_gamma"][0])), "exp(log_gamma)"
        return float(config.gamma), "configured gamma"
    if config.model == "SandwichLayer":
        return 1.0, "1 (Sandwich layer)"
    if config.model in CONTRACTING_FAMILIES:
        return None, "contracting: no input-output bound"
    if cert.gamma is not None and math.isfinite(cert.gamma):
        return float(cert.gamma), "certified gamma of the float64 reference"
    return None, "no finite certified gain"


@functools.lru_cache(maxsize=None)
def reference(case: Case) -> Reference:
    """The reference of ``case`` (cached per process)."""
    config = make_config(case)
    config64 = make_config(case, "float64")
    direct = {k: _round(v, case.dtype) for k, v in case_direct(case).items()}
    inputs = CaseInputs(*(_round(a, case.dtype) for a in case_inputs(case)))
    explicit, step, rollout, loss = evaluate64(config, direct, inputs)
    fd, dropped = finite_difference(config, direct, inputs, fd_entries(case, direct))
    directions = directional_differences(case, config, direct, inputs, FD_DIRECTIONS)
    cert = r2dn.certify(rn.from_direct(config64, direct))
    bound, source = gain_bound(config, cert, direct)
    return Reference(case, config, config64, direct, inputs, explicit,
                     None if step is None else tuple(step), tuple(rollout), loss, fd, dropped, directions,
                     cert, bound, source)
