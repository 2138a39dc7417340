"""Robust recurrent deep networks (Barbara, Wang & Manchester, arXiv 2504.01250). docs/math/r2dn.md#r2dn.

Explicit model: ``v = C1 x + D12 u + bv``, ``w = phi(v)`` with phi a 1-Lipschitz LBDN
(nv -> hidden -> nv), ``x+ = A x + B1 w + B2 u + bx``, ``y = C2 x + D21 w + D22 u + by``.

Direct parameters: ``X`` (2nx, 2nx), ``p`` (1,) when polar, ``Y`` (nx, nx), ``B1`` (nx, nv),
``C1`` (nv, nx), ``B2`` (nx, nu), ``D12`` (nv, nu), ``bx``, ``bv``, and unless ``identity_output``
``C2`` (ny, nx), ``D21`` (ny, nv), ``D22`` (ny, nu), ``by``; the LBDN under ``network.``. For the
Lipschitz and (Q, S, R) families ``B2``, ``C2``, ``D12``, ``D21``, ``D22`` are the hatted free
matrices of docs/math/r2dn.md#r2dn (``D12``, ``D21``, ``D22`` are the non-zero blocks of G).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import NamedTuple

from ..compat import PRESETS
from ..config import ModelConfig
from ._xp import Array, Namespace, blkdiag, block, eye_like, gram, solve, zeros_like_shape
from .lbdn import LBDNExplicit, lbdn_explicit
from .ren import output_map, supply_arrays
from .supply import supply_factors


class R2DNExplicit(NamedTuple):
    """Explicit R2DN (no D11: no equilibrium to solve). ``E``, ``P`` certify it (docs/math/certificates.md#dissipation-matrix)."""

    A: Array
    B1: Array
    B2: Array
    C1: Array
    C2: Array
    D12: Array
    D21: Array
    D22: Array
    bx: Array
    bv: Array
    by: Array
    E: Array
    P: Array
    network: LBDNExplicit


def _state_blocks(H: Array, Y: Array, abar: float, nx: int):
    """``(E, F, P)`` from H = [[H11, .], [F, P]]: E = (H11 + P / abar^2 + Y - Y^T) / 2."""
    P, F = H[nx:, nx:], H[nx:, :nx]
    return (H[:nx, :nx] + P / abar**2 + Y - Y.T) / 2, F, P


def _network(direct: Mapping[str, Array], cfg: ModelConfig, *, xp: Namespace) -> LBDNExplicit:
    return lbdn_explicit(direct, len(cfg.hidden) + 1, 1.0, cfg.compat, prefix="network.", xp=xp)


def contracting_r2dn_explicit(direct: Mapping[str, Array], cfg: ModelConfig, *,
                              xp: Namespace) -> R2DNExplicit:
    """Contracting R2DN: H = polar(X, p) + blkdiag(C1^T C1, B1 B1^T) + eps I (as the authors' code,
    plus the rate term abar, certified by docs/math/certificates.md#dissipation-matrix)."""
    nx = cfg.nx
    X, Y, B1, C1 = direct["X"], direct["Y"], direct["B1"], direct["C1"]
    p = direct["p"] if cfg.polar else None
    H = (gram(X, p, PRESETS[cfg.compat].norm_eps, xp=xp) + blkdiag(C1.T @ C1, B1 @ B1.T, xp=xp)
         + cfg.eps * eye_like(2 * nx, X, xp=xp))
    E, F, P = _state_blocks(H, Y, cfg.abar, nx)
    AB = solve(E, xp.concat([F, B1], axis=1), xp=xp)
    C2, D21, by = output_map(direct, cfg, xp=xp)
    D22 = zeros_like_shape((cfg.ny, cfg.nu), X, xp=xp) if cfg.identity_output else direct["D22"]
    return R2DNExplicit(A=AB[:, :nx], B1=AB[:, nx:], B2=direct["B2"], C1=C1, C2=C2,
                        D12=direct["D12"], D21=D21, D22=D22, bx=direct["bx"], bv=direct["bv"],
                        by=by, E=E, P=P, network=_network(direct, cfg, xp=xp))


def dissipative_r2dn_explicit(direct: Mapping[str, Array], cfg: ModelConfig, *,
                              xp: Namespace) -> R2DNExplicit:
    """Lipschitz and (Q, S, R) R2DNs (r2dn's construction, docs/math/r2dn.md#qsr, steps 1-4)."""
    nx, nv, nu, ny = cfg.nx, cfg.nv, cfg.nu, cfg.ny
    X, Y, B1, C1 = direct["X"], direct["Y"], direct["B1"], direct["C1"]
    B2h, C2h = direct["B2"], direct["C2"]
    G12, G21, G22 = direct["D12"], direct["D21"], direct["D22"]
    scale = 1 / xp.sqrt(1 + xp.sum(G12**2) + xp.sum(G21**2) + xp.sum(G22**2))
    D12h, D21h, D22h = scale * G12, scale * G21, scale * G22
    Dh = block([[zeros_like_shape((nv, nv), X, xp=xp), D12h], [D21h, D22h]], xp=xp)
    Ch = xp.concat([C1, C2h], axis=0)                   # (nv + ny, nx)
    Bh = xp.concat([B1, B2h], axis=1)                   # (nx, nv + nu)
    mid = block([[eye_like(nv + ny, X, xp=xp), Dh], [Dh.T, eye_like(nv + nu, X, xp=xp)]], xp=xp)
    L = blkdiag(Ch.T, Bh, xp=xp)                         # (2nx, 2nv + ny + nu)
    p = direct["p"] if cfg.polar else None
    H = (gram(X, p, PRESETS[cfg.compat].norm_eps, xp=xp) + cfg.eps * eye_like(2 * nx, X, xp=xp)
         + L @ solve(mid, L.T, xp=xp))
    E, F, P = _state_blocks(H, Y, cfg.abar, nx)
    if cfg.model == "LipschitzR2DN":
        # Q = -I/gamma, S = 0, R = gamma I: L_Q = I/sqrt(gamma), L_R = sqrt(gamma) I, Q^-1 S^T = 0,
        # so the two Cholesky factors and two solves below are scalings by sqrt(gamma).
        r = math.sqrt(cfg.gamma)
        AB = solve(E, xp.concat([F, B1, r * B2h], axis=1), xp=xp)
        return R2DNExplicit(A=AB[:, :nx], B1=AB[:, nx:nx + nv], B2=AB[:, nx + nv:], C1=C1,
                            C2=r * C2h, D12=r * D12h, D21=r * D21h, D22=cfg.gamma * D22h,
                            bx=direct["bx"], bv=direct["bv"], by=direct["by"], E=E, P=P,
                            network=_network(direct, cfg, xp=xp))
    Q, S, R = supply_arrays(cfg, X, xp=xp)
    L_Q, L_R, QiSt = supply_factors(Q, S, R, xp=xp)
    AB = solve(E, xp.concat([F, B1, B2h @ L_R], axis=1), xp=xp)
    CD = solve(L_Q, xp.concat([C2h, D21h, D22h @ L_R], axis=1), xp=xp)
    return R2DNExplicit(A=AB[:, :nx], B1=AB[:, nx:nx + nv], B2=AB[:, nx + nv:], C1=C1,
                        C2=CD[:, :nx], D12=D12h @ L_R, D21=CD[:, nx:nx + nv],
                        D22=CD[:, nx + nv:] - QiSt, bx=direct["bx"], bv=direct["bv"],
                        by=direct["by"], E=E, P=P, network=_network(direct, cfg, xp=xp))


def r2dn_explicit(direct: Mapping[str, Array], cfg: ModelConfig, *, xp: Namespace) -> R2DNExplicit:
    """Map an R2DN's free parameters to its explicit form (any R2DN family)."""
    if cfg.model == "ContractingR2DN":
        return contracting_r2dn_explicit(direct, cfg, xp=xp)
    return dissipative_r2dn_explicit(direct, cfg, xp=xp)
