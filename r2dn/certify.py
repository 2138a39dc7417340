"""Certificates: the dissipation matrix of docs/math/certificates.md, computed in float64 NumPy from any model.

For two trajectories with differences z = [dx; dw; du], V(dx) = dx^T P_c dx with P_c = E^T P^-1 E.
The model is certified when the dissipation matrix L is positive definite: then
V+ <= abar^2 V + s(dy, du) (contraction at rate abar; for Lipschitz models ||dy|| <= gamma ||du||
over any horizon from equal initial states). ``certify`` reads ``model.explicit()`` and
``model.config`` only, so it takes a model of any backend.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import array_api_compat.numpy as xnp
import numpy as np

from . import _spec
from ._model import to_numpy
from .errors import R2DNWarning
from .config import ModelConfig, lipschitz_supply

#: bisection steps for the certified rate and gain (relative precision about 2^-50).
BISECTION_STEPS = 50
#: certified gain search range, relative to the configured gamma (or to 1).
GAIN_SEARCH_RANGE = 1e12
#: tolerance of the lossless Sandwich-layer certificate, in units of the model dtype's epsilon
#: times cond(I + A) of the layer (the conditioning of its Cayley transform).
SANDWICH_TOL_ULPS = 64
#: rounding allowance of a recurrent model's certificate, in units of its dtype's epsilon: the
#: relative slack ``delta`` of rate and gain (or supply) up to which a model counts as certified
#: (see :func:`certify`).
ROUNDING_ULPS = 64
#: smallest slack the bisection for ``delta`` resolves (below every dtype's allowance).
DELTA_FLOOR = 1e-18


@dataclass(frozen=True)
class CertificateReport:
    """What :func:`certify` found (docs/math/certificates.md).

    Attributes
    ----------
    model : str
        The model class.
    min_eig : float
        Smallest eigenvalue of the dissipation matrix (float64) at the model's own abar and
        supply.
    scale : float
        Largest absolute eigenvalue, so ``min_eig / scale`` is the relative margin.
    certified : bool
        ``delta <= tolerance`` (and every Sandwich layer certified, for LBDNs and R2DNs).
    rate : float
        Smallest abar keeping the matrix positive definite with the same P_c and Lambda and the
        supply relaxed by ``tolerance`` (``nan`` for feed-forward models; ``inf`` when not
        certified at abar = 1).
    gamma : float or None
        Certified incremental gain for Lipschitz and (Q, S, R) models (at abar relaxed by
        ``tolerance``) and LBDNs, else None (``inf`` when no gain up to 1e12 times the configured
        one is certified).
    network_min_eig : float or None
        For LBDNs and R2DNs, min over Sandwich layers of lambda_min(I - A A^T - B B^T), which is
        zero up to rounding for an exact Cayley transform (the layer is 1-Lipschitz iff it is
        >= 0; certified while >= -64 u cond(I + A), the rounding of its Cayley transform).
    delta : float
        The smallest relative slack at which the model's own explicit matrices are certified:
        they provably meet the rate ``abar (1 + delta)`` and the gain ``gamma (1 + delta)``
        (Lipschitz), or the supply ``s(dy, du) + delta ||Sigma|| |du|^2`` ((Q, S, R) and
        passive); 0 when certified as configured, ``inf`` beyond 1. Feed-forward models: 0, or
        ``inf`` when a Sandwich layer fails.
    tolerance : float
        The rounding allowance that ``delta`` is held to: ``ROUNDING_ULPS * eps(dtype)``, times
        ``max(1, scale / ||Sigma||)`` for dissipative models (rounding moves L by about
        eps * scale, which a relative change delta of the supply absorbs once delta ||Sigma||
        exceeds it).
    """

    model: str
    min_eig: float
    scale: float
    certified: bool
    rate: float
    gamma: float | None
    network_min_eig: float | None
    delta: float = 0.0
    tolerance: float = 0.0

    @property
    def relative_margin(self) -> float:
        return self.min_eig / self.scale if self.scale > 0 else self.min_eig


def _np(tree: Any) -> Any:
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):
        return type(tree)(*(_np(v) for v in tree))
    if isinstance(tree, tuple):
        return tuple(_np(v) for v in tree)
    return None if tree is None else np.asarray(to_numpy(tree), dtype=np.float64)


def slope_restricted_multiplier(e: Any, cfg: ModelConfig) -> np.ndarray:
    """The REN's multiplier term: sigma slope-restricted in [0, 1] with the diagonal Lambda of
    its explicit map (docs/math/certificates.md#dissipation-matrix); rows [dx; dw; du]."""
    nx, nv, nu = cfg.nx, cfg.nv, cfg.nu
    n = nx + nv + nu
    C = np.concatenate([e.C1, e.D11, e.D12], axis=1)
    LC = e.Lambda[:, None] * C
    M = np.zeros((n, n))
    M[nx:nx + nv, :] += LC
    M[:, nx:nx + nv] += LC.T
    M[nx:nx + nv, nx:nx + nv] -= 2 * np.diag(e.Lambda)
    return M


def lipschitz_multiplier(e: Any, cfg: ModelConfig) -> np.ndarray:
    """The R2DN's multiplier term: phi 1-Lipschitz, multiplier 1 (|dw|^2 <= |dv|^2 with
    dv = C1 dx + D12 du); rows [dx; dw; du]."""
    nx, nv = cfg.nx, cfg.nv
    K = np.concatenate([e.C1, np.zeros((nv, nv)), e.D12], axis=1)
    M = K.T @ K
    M[nx:nx + nv, nx:nx + nv] -= np.eye(nv)
    return M


def dissipation_matrix(e: Any, cfg: ModelConfig, abar: float | None = None,
                       supply: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
                       contracting: bool | None = None) -> np.ndarray:
    """The dissipation matrix L (docs/math/certificates.md#dissipation-matrix) for explicit parameters ``e`` (NumPy float64).

    ``abar`` and ``supply`` default to the model's; ``contracting=True`` drops the input rows and
    the supply (the default for contracting families). Rows are ordered [dx; dw; du].
    """
    abar = cfg.abar if abar is None else abar
    family = cfg.spec()
    contracting = family.contracting if contracting is None else contracting
    supply = cfg.supply() if supply is None else supply
    nx, nv, nu = cfg.nx, cfg.nv, cfg.nu
    Pc = e.E.T @ np.linalg.solve(e.P, e.E)
    ABB = np.concatenate([e.A, e.B1, e.B2], axis=1)
    L = -ABB.T @ Pc @ ABB
    L[:nx, :nx] += abar**2 * Pc
    L -= family.multiplier(e, cfg)
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


def _sandwich_min_eig(layers: Any, ulps: float = 0.0) -> float:
    """min over layers of lambda_min(I - A A^T - B B^T) + ulps * cond(I + A): the layer's
    eigenvalue with its rounding allowance added (``ulps = tolerance of one unit of cond``).

    The Cayley transform's orthogonality error grows with cond(I + Z) = cond(I + A), since
    I + A^T = 2 (I + Z)^-1; the linear output layer (no A) gets ``ulps`` alone.
    """
    out = math.inf
    for layer in layers:
        AAt = 0.0 if layer.A is None else layer.A @ layer.A.T
        G = np.eye(layer.B.shape[0]) - AAt - layer.B @ layer.B.T
        cond = 1.0 if layer.A is None else float(np.linalg.cond(np.eye(len(layer.A)) + layer.A))
        out = min(out, _min_eig(G) + ulps * cond)
    return out


def _network_layers(e: Any) -> tuple:
    net = e.network if hasattr(e, "network") else e
    if hasattr(net, "layers"):
        return net.layers + ((net.output,) if net.output is not None else ())
    return (net,)                                   # a single SandwichLayer


def relaxed_supply(cfg: ModelConfig, delta: float
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The model's supply relaxed by the relative slack ``delta`` (``None`` when contracting).

    Lipschitz families: the supply of gain ``gamma (1 + delta)``. (Q, S, R) and passive models:
    ``(Q, S, R + delta ||Sigma|| I)`` with ``Sigma = [[Q, S^T], [S, R]]`` (spectral norm), i.e.
    ``s(dy, du) + delta ||Sigma|| |du|^2``.
    """
    family = cfg.spec()
    if family.contracting:
        return None
    if family.gain is not None:
        return lipschitz_supply(family.gain(cfg) * (1 + delta), cfg.nu, cfg.ny)
    Q, S, R = cfg.supply()
    size = float(np.linalg.norm(np.block([[Q, S.T], [S, R]]), 2))
    return Q, S, R + delta * size * np.eye(R.shape[0])


def _slack(e: Any, cfg: ModelConfig) -> float:
    """Smallest delta in [0, 1] with L(abar (1 + delta), relaxed_supply(delta)) > 0, else inf."""
    def ok(delta: float) -> bool:
        L = dissipation_matrix(e, cfg, abar=cfg.abar * (1 + delta),
                               supply=relaxed_supply(cfg, delta))
        return _min_eig(L) > 0

    if ok(0.0):
        return 0.0
    if not ok(1.0):
        return math.inf
    return _bisect(ok, DELTA_FLOOR, 1.0)


def _warn(cfg: ModelConfig, rep: CertificateReport, model: Any, float64_maps: bool) -> None:
    what = (f"certify: the {cfg.dtype} {cfg.model} meets its certificate only with relative "
            f"slack delta = {rep.delta:.3g} (rate abar (1 + delta), gain gamma (1 + delta)), above "
            f"the rounding allowance {rep.tolerance:.3g}")
    if (cfg.dtype != "float64" and not float64_maps and hasattr(model, "direct")
            and certify(model, float64_maps=True, warn=False).certified):
        what += (f": its parameters are certified in float64, but its {cfg.dtype} arithmetic "
                 "cannot be trusted to the certificate. Run it in float64 (dtype='float64', "
                 "model.to(torch.float64), or r2dn.porting to a float64 model), or move it away "
                 "from this ill-conditioned point (smaller parameters, larger eps).")
    else:
        what += (": the parameter point itself is not certified (explicit matrices edited by "
                 "hand, or a preset whose construction does not guarantee this supply). Rebuild "
                 "the model from its direct parameters, or report it with its config.")
    warnings.warn(what, R2DNWarning, stacklevel=3)


def _with_wide_certificate(e: Any, model: Any, cfg: ModelConfig) -> Any:
    """The model's dynamics matrices with E, P and Lambda of its own parameters mapped in float64.

    E, P and Lambda are not part of a REN's dynamics: they are the proof (the storage function
    P_c = E^T P^-1 E and the multiplier), and any proof certifies the model. The float64 map of
    the model's own parameters (the same map and margin as the model's, before the cast) gives
    them without the cast's rounding, which ``cond(P)`` amplifies in ``B1^T P_c B1``
    (docs/math/float32.md#a-margin-built-into-the-map). Models without ``direct()`` and other
    families keep their own.
    """
    if cfg.family != "ren" or cfg.dtype == "float64" or not hasattr(model, "direct"):
        return e
    direct = {k: np.asarray(to_numpy(v), dtype=np.float64) for k, v in model.direct().items()}
    wide = _spec.direct_to_explicit(direct, cfg, xp=xnp)
    return e._replace(E=wide.E, P=wide.P, Lambda=wide.Lambda)


def certify(model: Any, *, float64_maps: bool = False, warn: bool = True,
            bounds: bool = True) -> CertificateReport:
    """Check a model of any backend against its certificate (docs/math/certificates.md#dissipation-matrix), in float64.

    The certificate is checked on the explicit matrices the model runs, read exactly into
    float64. A float32 model's matrices are its float64 map rounded once (RENs, see
    ``docs/math/float32.md``) or its float32 map; the construction makes the exact dissipation
    matrix positive semidefinite with a margin that can be zero in some directions (a Lipschitz
    REN is tight in its input direction), so rounding may leave it slightly indefinite. The
    report therefore gives ``delta``, the smallest relative slack at which those matrices are
    provably certified: the model meets the rate ``abar (1 + delta)`` and the gain
    ``gamma (1 + delta)`` (for (Q, S, R) and passive models, the supply relaxed by
    ``delta ||Sigma|| |du|^2``). Rounding the entries of the explicit matrices (relative u / 2,
    u = eps(dtype)) moves each term of the dissipation matrix, a product of at most five of
    them, by about 5 u / 2 of its size, so L moves by about u * scale; a relative change delta
    of the supply absorbs that once delta ||Sigma|| exceeds it. ``certified`` is true exactly
    when ``delta <= tolerance`` with ``tolerance = ROUNDING_ULPS * u * max(1, scale / ||Sigma||)``
    (``ROUNDING_ULPS * u`` for contracting models; 64 u is 7.6e-6 in float32, 1.4e-14 in
    float64), and every Sandwich layer of an R2DN passes its own rounding test.

    Slack of rate and supply reaches the state and input directions of L, not the neuron block;
    there the map builds a margin instead (docs/math/float32.md#a-margin-built-into-the-map): H
    gets ``16 eps(dtype) K_ii`` on each neuron's diagonal, so the exact L is at least that in
    neuron i's direction, while casting D11 to the dtype moves that block by at most
    ``(nv - 1) eps / 2`` in the same scaling and B1 by ``sqrt(nv) kappa eps`` (kappa: the
    storage function's amplification of an entrywise change of B1). For the same reason E, P
    and Lambda of a float32 REN with ``direct()`` (the proof, not the dynamics: any P_c and
    Lambda that make L positive semidefinite certify the model) come from the float64 map of
    its own parameters, and only the matrices it runs carry the cast's rounding. The sweep
    ``benchmarks/certificate_sweep.py`` (README) measures delta over 10,500 perturbed models.

    Parameters
    ----------
    model : an r2dn model of any backend (only ``explicit()`` and ``config`` are read)
    float64_maps : bool
        ``False`` (default): certify the explicit matrices the model itself computes (in its
        dtype). ``True``: recompute them from ``direct()`` in float64 first, which certifies the
        parameter point itself.
    warn : bool
        Emit an :class:`r2dn.errors.R2DNWarning` when the model is not certified, saying whether
        its parameters are certified in float64 (then its float32 arithmetic is what cannot be
        trusted, and it should run in float64) or not at all.
    bounds : bool
        ``False`` skips the bisections for ``rate`` and ``gamma`` (reported as ``nan`` and
        ``None``): the verdict and ``delta`` alone, about 30 times faster (sweeps).

    Returns
    -------
    CertificateReport
        ``certified``, ``min_eig``, ``scale``, ``relative_margin``, ``rate``, ``gamma``,
        ``network_min_eig``, ``delta`` and ``tolerance``.

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
        e = _with_wide_certificate(_np(model.explicit()), model, cfg)
    for name, value in zip(e._fields, e):
        if isinstance(value, np.ndarray) and not np.all(np.isfinite(value)):
            raise ValueError(f"certify: explicit parameter `{name}` of the {cfg.model} is not finite.")
    dtype = "float64" if float64_maps else cfg.dtype
    tol = SANDWICH_TOL_ULPS * float(np.finfo(dtype).eps)
    allowance = ROUNDING_ULPS * float(np.finfo(dtype).eps)
    if cfg.family in ("lbdn", "sandwich"):
        net = _sandwich_min_eig(_network_layers(e))
        ok = _sandwich_min_eig(_network_layers(e), tol) >= 0
        gamma = float(e.sqrt_gamma[0] ** 2) if cfg.family == "lbdn" else 1.0
        return CertificateReport(cfg.model, net, 1.0, ok, math.nan, gamma if ok else math.inf, net,
                                 0.0 if ok else math.inf, allowance)

    L = dissipation_matrix(e, cfg)
    eigs = np.linalg.eigvalsh((L + L.T) / 2)
    min_eig, scale = float(eigs[0]), float(np.max(np.abs(eigs)))
    if not cfg.spec().contracting:                 # rounding of L, as a share of the supply
        Q, S, R = cfg.supply()
        size = float(np.linalg.norm(np.block([[Q, S.T], [S, R]]), 2))
        allowance *= max(1.0, scale / size)
    net = _sandwich_min_eig(_network_layers(e)) if cfg.family == "r2dn" else None
    delta = _slack(e, cfg)
    certified = delta <= allowance and (net is None
                                        or _sandwich_min_eig(_network_layers(e), tol) >= 0)
    rate, gamma = _bounds(e, cfg, allowance) if bounds else (math.nan, None)
    rep = CertificateReport(cfg.model, min_eig, scale, certified, rate, gamma, net, delta,
                            allowance)
    if warn and not certified:
        _warn(cfg, rep, model, float64_maps)
    return rep


def _bounds(e: Any, cfg: ModelConfig, allowance: float) -> tuple[float, float | None]:
    """Certified rate (supply relaxed by ``allowance``) and gain (abar relaxed by it)."""
    supply = relaxed_supply(cfg, allowance)

    def rate_ok(a: float) -> bool:
        return _min_eig(dissipation_matrix(e, cfg, abar=a, supply=supply)) > 0

    rate = _bisect(rate_ok, 0.0, 1.0) if rate_ok(1.0) else math.inf
    family = cfg.spec()
    if family.contracting:
        return rate, None
    ref = 1.0 if family.gain is None else family.gain(cfg)
    abar = cfg.abar * (1 + allowance)

    def gain_ok(g: float) -> bool:
        S = lipschitz_supply(g, cfg.nu, cfg.ny)
        return _min_eig(dissipation_matrix(e, cfg, abar=abar, supply=S, contracting=False)) > 0

    hi = ref * GAIN_SEARCH_RANGE
    return rate, (_bisect(gain_ok, ref / GAIN_SEARCH_RANGE, hi) if gain_ok(hi) else math.inf)
