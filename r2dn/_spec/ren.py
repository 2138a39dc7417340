"""Recurrent equilibrium networks (Revay, Wang & Manchester, IEEE TAC 2023). docs/math/ren.md#ren.

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
from ._xp import Array, Namespace, as_array, eye_like, gram, solve, upper_cholesky, \
    zeros_like_shape
from .supply import supply_factors


class RENExplicit(NamedTuple):
    """Explicit REN: ``x+ = A x + B1 w + B2 u + bx``, ``v = C1 x + D11 w + D12 u + bv``,
    ``w = sigma(v)``, ``y = C2 x + D21 w + D22 u + by``; D11 strictly lower triangular.

    ``E``, ``P`` (nx, nx) and ``Lambda`` (nv,) certify it (docs/math/certificates.md#dissipation-matrix).
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


def cayley_M(direct: Mapping[str, Array], cfg: ModelConfig, *, xp: Namespace) -> Array:
    """``M = X3^T X3 + Y3 - Y3^T + Z3^T Z3 + eps I`` (d, d) of the feedthrough's Cayley transform
    (no Z3 when ny = nu)."""
    X3, Y3 = direct["X3"], direct["Y3"]
    M = X3.T @ X3 + Y3 - Y3.T + cfg.eps * eye_like(X3.shape[0], X3, xp=xp)
    if cfg.ny != cfg.nu:
        M = M + direct["Z3"].T @ direct["Z3"]
    return M


def contraction_N(direct: Mapping[str, Array], cfg: ModelConfig, *, xp: Namespace) -> Array:
    """The (ny, nu) matrix N with ||N|| <= 1 built from X3, Y3, Z3 by a Cayley transform."""
    M = cayley_M(direct, cfg, xp=xp)
    I = eye_like(M.shape[0], M, xp=xp)
    if cfg.ny == cfg.nu:
        return solve(I + M, I - M, xp=xp)
    Z3 = direct["Z3"]
    if cfg.ny > cfg.nu:
        # [(I - M)(I + M)^-1; -2 Z3 (I + M)^-1] = ([I - M, -2 Z3^T]^T solved on the right)
        right = xp.concat([(I - M).T, -2.0 * Z3.T], axis=1)      # (d, ny)
        return solve((I + M).T, right, xp=xp).T
    return solve(I + M, _wide_block(M, Z3, cfg, xp=xp), xp=xp)


def _wide_block(M: Array, Z3: Array, cfg: ModelConfig, *, xp: Namespace) -> Array:
    """``[I - M, f Z3^T]`` (ny, nu) with f the preset's wide-block factor: N = (I + M)^-1 of it."""
    I = eye_like(M.shape[0], M, xp=xp)
    return xp.concat([I - M, PRESETS[cfg.compat].d22_wide_block * Z3.T], axis=1)


def contraction_gap(direct: Mapping[str, Array], cfg: ModelConfig, *, xp: Namespace) -> Array:
    """Upper-triangular G (d, d) with ``G^T G = X3^T X3 + c Z3^T Z3 + eps I``, c = 1 - f^2 / 4.

    It factors the gap of N away from norm one without cancellation (``docs/math/float32.md``):
    ``I - N^T N = 4 (I + M)^-T G^T G (I + M)^-1`` when nu <= ny, and
    ``I - N N^T = 4 (I + M)^-1 G^T G (I + M)^-T`` when nu > ny (the Z3 term only then). G is the
    upper Cholesky factor of that Gram matrix, summed from terms that are Gram matrices
    themselves (no cancellation). A QR of the stacked ``[X3; sqrt(c) Z3; sqrt(eps) I]`` would
    round with sqrt(cond) instead of cond, but JAX's QR derivative traces matmuls at default
    precision, which the JAX backend's full-precision guarantee forbids; the REN map is computed
    in float64 wherever the namespace has it.
    """
    X3 = direct["X3"]
    gap = X3.T @ X3 + cfg.eps * eye_like(X3.shape[0], X3, xp=xp)
    if cfg.nu > cfg.ny:
        c = 1.0 - PRESETS[cfg.compat].d22_wide_block ** 2 / 4
        gap = gap + c * (direct["Z3"].T @ direct["Z3"])
    return upper_cholesky(gap, xp=xp)


def feedthrough(direct: Mapping[str, Array], cfg: ModelConfig, Q: Array | None, S: Array | None,
                R: Array | None, *, xp: Namespace) -> Array:
    """D22 of the family: zero (``identity_output``, ``d22_zero``), free (contracting), passive
    (rho = 0; rho > 0 under ``compat="julia"``), or from the supply (docs/math/ren.md#ren):
    ``D22 = L_Q^-1 N L_R - Q^-1 S^T``."""
    X = direct["X"]
    if cfg.identity_output or cfg.d22_zero:
        return zeros_like_shape((cfg.ny, cfg.nu), X, xp=xp)
    if cfg.model == "ContractingREN":
        return direct["D22"]
    if _passive_square(cfg):
        M = cayley_M(direct, cfg, xp=xp)
        I = eye_like(cfg.nu, X, xp=xp)
        if cfg.rho_index == 0:
            return cfg.nu_index * I + M
        return solve(I + M, I, xp=xp) / cfg.rho_index      # RobustNeuralNetworks.jl 0.3
    N = contraction_N(direct, cfg, xp=xp)
    L_Q, L_R, QiSt = supply_factors(Q, S, R, xp=xp)
    return solve(L_Q, N @ L_R, xp=xp) - QiSt


def _passive_square(cfg: ModelConfig) -> bool:
    """Passive RENs whose D22 is not built from N (rho = 0, or rho > 0 under julia)."""
    return cfg.model == "PassiveREN" and (cfg.rho_index == 0 or
                                          PRESETS[cfg.compat].passive_d22 == PASSIVE_D22_JULIA)


def supply_correction(direct, cfg, C2, D21, D22, Q, S, R, *, xp: Namespace) -> Array:
    """Gamma, the term added to H so the REN is (Q, S, R)-dissipative (zero when contracting).

    ``Gamma = V^T R1^-1 V - W^T Q W`` with ``R1 = R + S D22 + D22^T S^T + D22^T Q D22``,
    ``V = [T C2, T D21 - D12^T, B2^T]``, ``T = D22^T Q + S`` and ``W = [C2, D21, 0]``. Formed
    as written, R1 and T cancel to the rounding of their terms (R1 is small exactly where N is
    near norm one), so the float32 map lost up to 1e-2 (relative). With D22 built from N they are
    ``T = -L_R^T N^T L_Q`` and ``R1 = L_R^T (I - N^T N) L_R``, and
    :func:`contraction_gap` factors ``I - N^T N``: Gamma is then a sum of Gram matrices with no
    cancellation (``docs/math/float32.md``). Passive RENs with rho = 0 have Q = 0, T = I and
    ``R1 = 2 (X3^T X3 + eps I)``; ``d22_zero`` has R1 = R; Julia's passive D22 for rho > 0 keeps
    the formula as written.
    """
    B2, D12 = direct["B2"], direct["D12"]
    nx = cfg.nx
    zero = zeros_like_shape((cfg.ny, nx), C2, xp=xp)
    W = xp.concat([C2, D21, zero], axis=1)                           # (ny, 2nx + nv)
    passive0 = cfg.model == "PassiveREN" and cfg.rho_index == 0 and not cfg.d22_zero
    if passive0:
        V = xp.concat([C2, D21 - D12.T, B2.T], axis=1)              # T = S = I
        Z = solve(contraction_gap(direct, cfg, xp=xp).T, V, xp=xp)
        return (Z.T @ Z) / 2
    if cfg.d22_zero or _passive_square(cfg):
        T = D22.T @ Q + S                                           # (nu, ny)
        V = xp.concat([T @ C2, T @ D21 - D12.T, B2.T], axis=1)      # (nu, 2nx + nv)
        R1 = R + S @ D22 + D22.T @ S.T + D22.T @ Q @ D22
        return V.T @ solve(R1, V, xp=xp) - W.T @ Q @ W
    L_Q, L_R, _ = supply_factors(Q, S, R, xp=xp)
    N = contraction_N(direct, cfg, xp=xp)
    LW = L_Q @ W                                                    # -W^T Q W = LW^T LW
    U = xp.concat([-N.T @ LW[:, :nx],
                   -N.T @ LW[:, nx:nx + cfg.nv] - solve(L_R.T, D12.T, xp=xp),
                   solve(L_R.T, B2.T, xp=xp)], axis=1)              # L_R^-T V, (nu, 2nx + nv)
    M = cayley_M(direct, cfg, xp=xp)
    G = contraction_gap(direct, cfg, xp=xp)
    if cfg.nu <= cfg.ny:                 # R1^-1 = L_R^-1 (I + M) (G^T G)^-1 (I + M)^T L_R^-T / 4
        Z = solve(G.T, (eye_like(M.shape[0], M, xp=xp) + M).T @ U, xp=xp)
        return (Z.T @ Z) / 4 + LW.T @ LW
    # nu > ny: (I - N^T N)^-1 = I + N^T (I - N N^T)^-1 N and (I + M) N = [I - M, f Z3^T]
    Z = solve(G.T, _wide_block(M, direct["Z3"], cfg, xp=xp) @ U, xp=xp)
    return U.T @ U + (Z.T @ Z) / 4 + LW.T @ LW


#: the neuron block's margin, in units of the model dtype's epsilon times each neuron's own
#: diagonal entry of H (docs/math/float32.md#a-margin-built-into-the-map): above the rounding that
#: casting D11 to that dtype brings into that block of the dissipation matrix (proved up to
#: nv = 33, typical far beyond), and 1.9e-6 of Lambda in float32, inside the float32 tolerance.
MARGIN_ULPS = 16.0


def rounding_margin(K: Array, cfg: ModelConfig, *, xp: Namespace) -> Array:
    """The diagonal added to ``K = polar(X, p) + Gamma``: ``eps`` everywhere, and in the neuron
    block also ``MARGIN_ULPS * eps(dtype) * K_ii``.

    H = K + diag(margin) makes the exact dissipation matrix at least ``eps I`` in the state and
    neuron directions and at least ``MARGIN_ULPS * eps(dtype) * diag(K22)`` in the neuron block,
    relative to each neuron's own scale: exactly the scale of the rounding that casting C1, D11 and
    B1 to the model's dtype brings into that block (docs/math/float32.md). It only scales Lambda by
    ``1 + MARGIN_ULPS * eps(dtype)`` (and C1, D11, D12 by its inverse); E, P, A and B leave it
    alone. The dtype is the model's (``cfg.dtype``), not the arrays' (the map runs wide,
    :func:`r2dn._spec.direct_to_explicit`).
    """
    nx, nv = cfg.nx, cfg.nv
    unit = float(xp.finfo(getattr(xp, cfg.dtype)).eps)
    neurons = xp.concat([zeros_like_shape((nx,), K, xp=xp),
                         xp.linalg.diagonal(K)[nx:nx + nv] * (MARGIN_ULPS * unit),
                         zeros_like_shape((nx,), K, xp=xp)])
    return neurons + cfg.eps


def ren_explicit(direct: Mapping[str, Array], cfg: ModelConfig, *, xp: Namespace) -> RENExplicit:
    """Map a REN's free parameters to its explicit form.

    Training moves ``direct`` freely; this map makes every point a model of the family: for every
    finite ``direct`` the dissipation matrix of docs/math/certificates.md#dissipation-matrix is positive definite (in exact
    arithmetic; ``r2dn.certify`` reports the float margin).
    """
    nx, nv = cfg.nx, cfg.nv
    preset = PRESETS[cfg.compat]
    X = direct["X"]
    p = direct["p"] if cfg.polar else None
    C2, D21, by = output_map(direct, cfg, xp=xp)
    K = gram(X, p, preset.norm_eps, xp=xp)
    if cfg.model == "ContractingREN":
        D22 = feedthrough(direct, cfg, None, None, None, xp=xp)
    else:
        Q, S, R = supply_arrays(cfg, X, xp=xp)
        D22 = feedthrough(direct, cfg, Q, S, R, xp=xp)
        K = K + supply_correction(direct, cfg, C2, D21, D22, Q, S, R, xp=xp)
    H = K + eye_like(2 * nx + nv, X, xp=xp) * rounding_margin(K, cfg, xp=xp)[None, :]
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
