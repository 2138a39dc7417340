"""Certificates: the dissipation matrix of docs/math/certificates.md, computed in float64 NumPy from any model.

For two trajectories with differences z = [dx; dw; du], V(dx) = dx^T P_c dx with P_c = E^T P^-1 E.
The model is certified when the dissipation matrix L is positive definite: then
V+ <= abar^2 V + s(dy, du) (contraction at rate abar; for Lipschitz models ||dy|| <= gamma ||du||
over any horizon from equal initial states). ``certify`` reads ``model.explicit()`` and
``model.config`` only, so it takes a model of any backend.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import array_api_compat.numpy as xnp
import numpy as np

from . import _spec
from ._model import to_numpy
from .config import CONTRACTING_FAMILIES, LIPSCHITZ_FAMILIES, ModelConfig, lipschitz_supply

#: bisection steps for the certified rate and gain (relative precision about 2^-50).
BISECTION_STEPS = 50
#: certified gain search range, relative to the configured gamma (or to 1).
GAIN_SEARCH_RANGE = 1e12
#: tolerance of the lossless Sandwich-layer certificate, in units of the model dtype's epsilon.
SANDWICH_TOL_ULPS = 64


@dataclass(frozen=True)
class CertificateReport:
    """What :func:`certify` found (docs/math/certificates.md).

    Attributes
    ----------
    model : str
        The model class.
    min_eig : float
        Smallest eigenvalue of the dissipation matrix (float64); ``> 0`` means certified. For
        LBDNs and Sandwich layers, ``network_min_eig``.
    scale : float
        Largest absolute eigenvalue of the dissipation matrix; ``relative_margin`` is
        ``min_eig / scale``, the figure to compare with the dtype's rounding.
    certified : bool
        ``min_eig > 0`` and, for LBDNs and R2DNs, every Sandwich layer within rounding of
        1-Lipschitz.
    rate : float
        Smallest abar keeping the matrix positive definite with the same metric and multiplier
        (``nan`` for feed-forward models; ``inf`` when not certified at abar = 1).
    gamma : float or None
        Certified incremental gain for Lipschitz and (Q, S, R) models and LBDNs, else ``None``
        (``inf`` when no gain up to 1e12 times the configured one is certified).
    network_min_eig : float or None
        For LBDNs and R2DNs, the smallest ``lambda_min(I - A A^T - B B^T)`` over the Sandwich
        layers. It is zero in exact arithmetic, so a tiny negative value (about -1e-16 in
        float64) is rounding, not a failure; the layer check allows 64 machine epsilons of the
        model's dtype. ``None`` for RENs.
    """

    model: str
    min_eig: float
    scale: float
    certified: bool
    rate: float
    gamma: float | None
    network_min_eig: float | None

    @property
    def relative_margin(self) -> float:
        return self.min_eig / self.scale if self.scale > 0 else self.min_eig


def _np(tree: Any) -> Any:
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):
        return type(tree)(*(_np(v) for v in tree))
    if isinstance(tree, tuple):
        return tuple(_np(v) for v in tree)
    return None if tree is None else np.asarray(to_numpy(tree), dtype=np.float64)


def dissipation_matrix(e: Any, cfg: ModelConfig, abar: float | None = None,
                       supply: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
                       contracting: bool | None = None) -> np.ndarray:
    """The dissipation matrix L (docs/math/certificates.md#dissipation-matrix) for explicit parameters ``e`` (NumPy float64).

    ``abar`` and ``supply`` default to the model's; ``contracting=True`` drops the input rows and
    the supply (the default for contracting families). Rows are ordered [dx; dw; du].
    """
    abar = cfg.abar if abar is None else abar
    contracting = cfg.model in CONTRACTING_FAMILIES if contracting is None else contracting
    supply = cfg.supply() if supply is None else supply
    nx, nv, nu = cfg.nx, cfg.nv, cfg.nu
    Pc = e.E.T @ np.linalg.solve(e.P, e.E)
    ABB = np.concatenate([e.A, e.B1, e.B2], axis=1)
    n = nx + nv + nu
    L = -ABB.T @ Pc @ ABB
    L[:nx, :nx] += abar**2 * Pc
    if hasattr(e, "Lambda"):                        # REN: slope-restricted sigma, diagonal Lambda
        C = np.concatenate([e.C1, e.D11, e.D12], axis=1)
        LC = e.Lambda[:, None] * C
        M = np.zeros((n, n))
        M[nx:nx + nv, :] += LC
        M[:, nx:nx + nv] += LC.T
        M[nx:nx + nv, nx:nx + nv] -= 2 * np.diag(e.Lambda)
    else:                                           # R2DN: 1-Lipschitz phi, multiplier 1
        K = np.concatenate([e.C1, np.zeros((nv, nv)), e.D12], axis=1)
        M = K.T @ K
        M[nx:nx + nv, nx:nx + nv] -= np.eye(nv)
    L -= M
    if contracting:
        return L[:nx + nv, :nx + nv]
    Q, S, R = supply
    N = np.block([[e.C2, e.D21, e.D22], [np.zeros((nu, nx + nv)), np.eye(nu)]])
    Sigma = np.block([[Q, S.T], [S, R]])
    return L + N.T @ Sigma @ N


def _min_eig(L: np.ndarray) -> float:
    return float(np.linalg.eigvalsh((L + L.T) / 2)[0])


def _bisect(feasible, lo: float, hi: float) -> float:
    """Smallest value in [lo, hi] where the monotone predicate ``feasible`` holds (hi must)."""
    for _ in range(BISECTION_STEPS):
        mid = math.sqrt(lo * hi) if lo > 0 else hi / 2
        lo, hi = (lo, mid) if feasible(mid) else (mid, hi)
    return hi


def _sandwich_min_eig(layers: Any) -> float:
    out = math.inf
    for layer in layers:
        AAt = 0.0 if layer.A is None else layer.A @ layer.A.T
        G = np.eye(layer.B.shape[0]) - AAt - layer.B @ layer.B.T
        out = min(out, _min_eig(G))
    return out


def _network_layers(e: Any) -> tuple:
    net = e.network if hasattr(e, "network") else e
    if hasattr(net, "layers"):
        return net.layers + ((net.output,) if net.output is not None else ())
    return (net,)                                   # a single SandwichLayer


def certify(model: Any, *, float64_maps: bool = False) -> CertificateReport:
    """Check a model of any backend against its certificate, in float64.

    Builds the dissipation matrix (docs/math/certificates.md#dissipation-matrix) from
    ``model.explicit()`` and checks that it is positive definite; then finds the certified rate
    and, for Lipschitz and (Q, S, R) models, the certified gain by bisection.

    Parameters
    ----------
    model : r2dn model
        A model of any backend (only ``model.explicit()`` and ``model.config`` are read).
    float64_maps : bool, default False
        ``False``: certify the explicit matrices the model itself computes (in its dtype).
        ``True``: recompute them from ``direct()`` in float64 first, which certifies the
        parameter point itself. For float32 models whose certificate margin is below float32
        rounding (a REN's input direction can be tight to O(eps):
        docs/math/certificates.md#certified) the two differ.

    Returns
    -------
    CertificateReport
        ``certified``, ``min_eig``, ``scale``, ``relative_margin``, ``rate``, ``gamma`` and
        ``network_min_eig``.

    Raises
    ------
    ValueError
        When the model's explicit parameters are not finite.

    Examples
    --------
    >>> import r2dn, r2dn.numpy as rn
    >>> report = r2dn.certify(rn.LipschitzREN(2, 3, 4, 1, gamma=2.0))
    >>> report.certified, report.gamma <= 2.0
    (True, True)
    """
    cfg: ModelConfig = model.config
    if float64_maps:
        direct = {k: np.asarray(to_numpy(v), dtype=np.float64) for k, v in model.direct().items()}
        e = _spec.direct_to_explicit(direct, cfg.replace(dtype="float64"), xp=xnp)
    else:
        e = _np(model.explicit())
    for name, value in zip(e._fields, e):
        if isinstance(value, np.ndarray) and not np.all(np.isfinite(value)):
            raise ValueError(f"certify: explicit parameter `{name}` of the {cfg.model} is not finite.")
    tol = SANDWICH_TOL_ULPS * float(np.finfo(cfg.dtype).eps)
    if cfg.family in ("lbdn", "sandwich"):
        net = _sandwich_min_eig(_network_layers(e))
        ok = net >= -tol
        gamma = float(e.sqrt_gamma[0] ** 2) if cfg.family == "lbdn" else 1.0
        return CertificateReport(cfg.model, net, 1.0, ok, math.nan, gamma if ok else math.inf, net)

    L = dissipation_matrix(e, cfg)
    eigs = np.linalg.eigvalsh((L + L.T) / 2)
    min_eig, scale = float(eigs[0]), float(np.max(np.abs(eigs)))
    net = _sandwich_min_eig(_network_layers(e)) if cfg.family == "r2dn" else None
    certified = min_eig > 0 and (net is None or net >= -tol)

    def rate_ok(a: float) -> bool:
        return _min_eig(dissipation_matrix(e, cfg, abar=a)) > 0

    rate = _bisect(rate_ok, 0.0, 1.0) if rate_ok(1.0) else math.inf
    gamma = None
    if cfg.model not in CONTRACTING_FAMILIES:
        ref = cfg.gamma if cfg.model in LIPSCHITZ_FAMILIES else 1.0

        def gain_ok(g: float) -> bool:
            S = lipschitz_supply(g, cfg.nu, cfg.ny)
            return _min_eig(dissipation_matrix(e, cfg, supply=S, contracting=False)) > 0

        hi = ref * GAIN_SEARCH_RANGE
        gamma = _bisect(gain_ok, ref / GAIN_SEARCH_RANGE, hi) if gain_ok(hi) else math.inf
    return CertificateReport(cfg.model, min_eig, scale, certified, rate, gamma, net)
