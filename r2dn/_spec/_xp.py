"""Small array-API helpers the spec shares. No framework imports: every function takes ``xp``."""

from __future__ import annotations

import warnings
from typing import Any, TypeAlias

from array_api_compat import device as _device

Array: TypeAlias = Any
Namespace: TypeAlias = Any


def eye_like(n: int, like: Array, *, xp: Namespace) -> Array:
    """The n x n identity with the dtype and device of ``like``."""
    return xp.eye(n, dtype=like.dtype, device=_device(like))


def zeros_like_shape(shape: tuple[int, ...], like: Array, *, xp: Namespace) -> Array:
    """Zeros of ``shape`` with the dtype and device of ``like``."""
    return xp.zeros(shape, dtype=like.dtype, device=_device(like))


def gram(X: Array, p: Array | None, norm_eps: float, *, xp: Namespace) -> Array:
    """``polar(X, p) = p**2 X^T X / (||X||_F**2 + norm_eps)``, or ``X^T X`` when ``p`` is None."""
    XtX = X.T @ X
    if p is None:
        return XtX
    return (p**2 / (xp.sum(X**2) + norm_eps)) * XtX


def solve(A: Array, B: Array, *, xp: Namespace) -> Array:
    """``A^-1 B`` for a matrix or a vector ``B`` (a solve, never an inverse)."""
    if B.ndim == 1:
        return xp.linalg.solve(A, B[:, None])[:, 0]
    return xp.linalg.solve(A, B)


def upper_cholesky(M: Array, *, xp: Namespace) -> Array:
    """Upper factor U with ``U^T U = M`` (M symmetric positive definite)."""
    return xp.linalg.cholesky(M).T


def block(rows: list[list[Array]], *, xp: Namespace) -> Array:
    """Assemble a block matrix from a list of block rows."""
    return xp.concat([xp.concat(r, axis=1) for r in rows], axis=0)


def blkdiag(A: Array, B: Array, *, xp: Namespace) -> Array:
    """``[[A, 0], [0, B]]``."""
    top = xp.concat([A, zeros_like_shape((A.shape[0], B.shape[1]), A, xp=xp)], axis=1)
    bottom = xp.concat([zeros_like_shape((B.shape[0], A.shape[1]), A, xp=xp), B], axis=1)
    return xp.concat([top, bottom], axis=0)


def as_array(value: Any, like: Array, *, xp: Namespace) -> Array:
    """Fixed data (a nested tuple of floats from a config) as an array like ``like``."""
    return xp.asarray(value, dtype=like.dtype, device=_device(like))


def wide_dtype(like: Array, *, xp: Namespace) -> Any:
    """float64 when the namespace can hold it on ``like``'s device, else ``like``'s own dtype.

    JAX without ``jax_enable_x64`` turns a float64 request into float32 (with a warning, silenced
    here: that answer is the question asked). Reads dtypes only, never values.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        probe = xp.zeros((), dtype=xp.float64, device=_device(like))
    return probe.dtype
