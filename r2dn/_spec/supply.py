"""The factors of an incremental supply rate (Q, S, R), in one place (docs/math/ren.md#long-memory-init and docs/math/r2dn.md#long-memory-init)."""

from __future__ import annotations

from typing import NamedTuple

from ._xp import Array, Namespace, solve, upper_cholesky


class SupplyFactors(NamedTuple):
    """``L_Q^T L_Q = -Q``, ``L_R^T L_R = R - S Q^-1 S^T`` (upper factors) and ``QiSt = Q^-1 S^T``."""

    L_Q: Array
    L_R: Array
    QiSt: Array


def supply_factors(Q: Array, S: Array, R: Array, *, xp: Namespace) -> SupplyFactors:
    """The factors every (Q, S, R) map uses: Q negative definite, ``R - S Q^-1 S^T`` positive
    definite (the config checks both)."""
    QiSt = solve(Q, S.T, xp=xp)
    return SupplyFactors(upper_cholesky(-Q, xp=xp), upper_cholesky(R - S @ QiSt, xp=xp), QiSt)
