"""Recurrent equilibrium networks (Revay, Wang & Manchester, IEEE TAC 2023). DESIGN §3.2.

Direct parameters: ``X`` (2nx+nv, 2nx+nv), ``p`` (1,) when polar, ``Y1`` (nx, nx), ``B2`` (nx, nu),
``D12`` (nv, nu), ``bx`` (nx,), ``bv`` (nv,), and unless ``identity_output``: ``C2`` (ny, nx),
``D21`` (ny, nv), ``by`` (ny,). Contracting RENs have a free ``D22`` (ny, nu); the other families
build D22 from ``X3``, ``Y3`` (d, d) and ``Z3`` (|ny - nu|, d), d = min(nu, ny). With ``d22_zero``
(RobustNeuralNetworks.jl's ``D22_zero``) D22 is fixed at 0 and none of these exist.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from ..compat import PASSIVE_D22_JULIA, PRESETS
from ..config import ModelConfig
from ._xp import Array, Namespace, as_array, eye_like, gram, solve, zeros_like_shape
from .supply import supply_factors


class RENExplicit(NamedTuple):
    """Explicit REN: ``x+ = A x + B1 w + B2 u + bx``, ``v = C1 x + D11 w + D12 u + bv``,
    ``w = sigma(v)``, ``y = C2 x + D21 w + D22 u + by``; D11 strictly lower triangular.

    ``E``, ``P`` (nx, nx) and ``Lambda`` (nv,) certify it (DESIGN §3.4).
    """

    A: Array
    B1: Array
    B2: Array
    C1: Array
    C2: Array
    D11: Array
    D12: Array
    D21: Array
    D22: Array
    bx: Array
    bv: Array
    by: Array
    E: Array
    P: Array
    Lambda: Array


def output_map(direct: Mapping[str, Array], cfg: ModelConfig, *, xp: Namespace):
    """``(C2, D21, by)``: free parameters, or the identity output ``y = x``."""
    if cfg.identity_output:
        X = direct["X"]
        return (eye_like(cfg.nx, X, xp=xp), zeros_like_shape((cfg.ny, cfg.nv), X, xp=xp),
                zeros_like_shape((cfg.ny,), X, xp=xp))
    return direct["C2"], direct["D21"], direct["by"]


def supply_arrays(cfg: ModelConfig, like: Array, *, xp: Namespace):
    """(Q, S, R) of the model as arrays like ``like``.

    robustnn's GeneralREN uses Q - eps I and R + eps I (its Lipschitz REN does not: checked
    against the authors' reference vectors).
    """
    Q, S, R = (as_array(m.tolist(), like, xp=xp) for m in cfg.supply())
    if PRESETS[cfg.compat].qsr_eps_shift and cfg.model == "GeneralREN":
        Q = Q - cfg.eps * eye_like(Q.shape[0], like, xp=xp)
        R = R + cfg.eps * eye_like(R.shape[0], like, xp=xp)
    return Q, S, R


def contraction_N(direct: Mapping[str, Array], cfg: ModelConfig, *, xp: Namespace) -> Array:
    """The (ny, nu) matrix N with ||N|| <= 1 built from X3, Y3, Z3 by a Cayley transform."""
    X3, Y3, Z3 = direct["X3"], direct["Y3"], direct["Z3"]
    d = X3.shape[0]
    I = eye_like(d, X3, xp=xp)
    M = X3.T @ X3 + Y3 - Y3.T + Z3.T @ Z3 + cfg.eps * I
    if cfg.ny == cfg.nu:
        return solve(I + M, I - M, xp=xp)
    if cfg.ny > cfg.nu:
        # [(I - M)(I + M)^-1; -2 Z3 (I + M)^-1] = ([I - M, -2 Z3^T]^T solved on the right)
        right = xp.concat([(I - M).T, -2.0 * Z3.T], axis=1)      # (d, ny)
        return solve((I + M).T, right, xp=xp).T
    factor = PRESETS[cfg.compat].d22_wide_block
    return solve(I + M, xp.concat([I - M, factor * Z3.T], axis=1), xp=xp)


def feedthrough(direct: Mapping[str, Array], cfg: ModelConfig, Q: Array | None, S: Array | None,
                R: Array | None, *, xp: Namespace) -> Array:
    """D22 of the family: zero (``identity_output``, ``d22_zero``), free (contracting), passive
    (rho = 0; rho > 0 under ``compat="julia"``), or from the supply (DESIGN §3.2)."""
    X = direct["X"]
    if cfg.identity_output or cfg.d22_zero:
        return zeros_like_shape((cfg.ny, cfg.nu), X, xp=xp)
    if cfg.model == "ContractingREN":
        return direct["D22"]
    if cfg.model == "PassiveREN" and (cfg.rho_index == 0 or
                                      PRESETS[cfg.compat].passive_d22 == PASSIVE_D22_JULIA):
        X3, Y3 = direct["X3"], direct["Y3"]
        I = eye_like(cfg.nu, X, xp=xp)
        M = X3.T @ X3 + Y3 - Y3.T + cfg.eps * I
        if cfg.rho_index == 0:
            return cfg.nu_index * I + M
        return solve(I + M, I, xp=xp) / cfg.rho_index      # RobustNeuralNetworks.jl 0.3
    N = contraction_N(direct, cfg, xp=xp)
    L_Q, L_R, QiSt = supply_factors(Q, S, R, xp=xp)
    return solve(L_Q, N @ L_R, xp=xp) - QiSt


def supply_correction(direct, cfg, C2, D21, D22, Q, S, R, *, xp: Namespace) -> Array:
    """Gamma, the term added to H so the REN is (Q, S, R)-dissipative (zero when contracting)."""
    B2, D12 = direct["B2"], direct["D12"]
    nx = cfg.nx
    T = D22.T @ Q + S                                               # (nu, ny)
    V = xp.concat([T @ C2, T @ D21 - D12.T, B2.T], axis=1)          # (nu, 2nx + nv)
    W = xp.concat([C2, D21, zeros_like_shape((cfg.ny, nx), C2, xp=xp)], axis=1)
    R1 = R + S @ D22 + D22.T @ S.T + D22.T @ Q @ D22
    return V.T @ solve(R1, V, xp=xp) - W.T @ Q @ W


def ren_explicit(direct: Mapping[str, Array], cfg: ModelConfig, *, xp: Namespace) -> RENExplicit:
    """Map a REN's free parameters to its explicit form.

    Training moves ``direct`` freely; this map makes every point a model of the family: for every
    finite ``direct`` the dissipation matrix of DESIGN §3.4 is positive definite (in exact
    arithmetic; ``r2dn.certify`` reports the float margin).
    """
    nx, nv = cfg.nx, cfg.nv
    preset = PRESETS[cfg.compat]
    X = direct["X"]
    p = direct["p"] if cfg.polar else None
    C2, D21, by = output_map(direct, cfg, xp=xp)
    H = gram(X, p, preset.norm_eps, xp=xp) + cfg.eps * eye_like(2 * nx + nv, X, xp=xp)
    if cfg.model == "ContractingREN":
        D22 = feedthrough(direct, cfg, None, None, None, xp=xp)
    else:
        Q, S, R = supply_arrays(cfg, X, xp=xp)
        D22 = feedthrough(direct, cfg, Q, S, R, xp=xp)
        H = H + supply_correction(direct, cfg, C2, D21, D22, Q, S, R, xp=xp)
    H11, H21, H22 = H[:nx, :nx], H[nx:nx + nv, :nx], H[nx:nx + nv, nx:nx + nv]
    H31, H32, P = H[nx + nv:, :nx], H[nx + nv:, nx:nx + nv], H[nx + nv:, nx + nv:]
    Y1 = direct["Y1"]
    E = (H11 + P / cfg.abar**2 + Y1 - Y1.T) / 2
    Lambda = xp.linalg.diagonal(H22) / 2
    AB = solve(E, xp.concat([H31, H32, direct["B2"]], axis=1), xp=xp)
    CD = xp.concat([-H21, -xp.tril(H22, k=-1), direct["D12"]], axis=1) / Lambda[:, None]
    return RENExplicit(
        A=AB[:, :nx], B1=AB[:, nx:nx + nv], B2=AB[:, nx + nv:],
        C1=CD[:, :nx], D11=CD[:, nx:nx + nv], D12=CD[:, nx + nv:],
        C2=C2, D21=D21, D22=D22, bx=direct["bx"], bv=direct["bv"], by=by,
        E=E, P=P, Lambda=Lambda)
