"""Cayley transform, Sandwich layers and LBDNs (Wang & Manchester, ICML 2023). docs/math/lbdn.md#lbdn.

Direct parameters of one Sandwich layer ``n_in -> n_out``: ``XY`` (n_in + n_out, n_out), ``a`` (1,),
``d`` (n_out,), ``b`` (n_out,). An LBDN keys them ``layers.<k>.XY`` etc.; its linear output layer
has no ``d``. Explicit layers are :class:`SandwichExplicit` records.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import NamedTuple

from array_api_compat import device

from ..compat import PRESETS, Preset
from ._xp import Array, Namespace, eye_like, solve
from .activations import Activation
from .rollout import Affine, affine

SQRT2 = math.sqrt(2.0)


class SandwichExplicit(NamedTuple):
    """Explicit Sandwich layer: ``h -> sqrt(2) A^T Psi sigma(sqrt(2) Psi^-1 B h + b)``.

    A (n_out, n_out), B (n_out, n_in), psi (n_out,) the diagonal of Psi, b (n_out,).
    ``[A^T; B^T]`` has orthonormal columns. For the LBDN's linear output layer ``A`` and ``psi``
    are unused and given as ``None``.
    """

    A: Array | None
    B: Array
    psi: Array | None
    b: Array


class LBDNExplicit(NamedTuple):
    """Explicit LBDN: Sandwich ``layers`` then, by default, a linear ``output`` layer.

    ``y = sqrt_gamma * B_L h + b_L`` with ``h`` the last Sandwich layer's output of
    ``sqrt_gamma * u``. Under ``compat="robustnn"`` every layer is a Sandwich layer with activation,
    ``output`` is ``None`` and the whole output is scaled by ``sqrt_gamma``.
    """

    layers: tuple[SandwichExplicit, ...]
    output: SandwichExplicit | None
    sqrt_gamma: Array


class FusedLBDN(NamedTuple):
    """An LBDN with adjacent linear maps multiplied out (docs/math/performance.md#performance).

    ``z_0 = u W_0^T + c_0``, ``z_k = sigma(z_{k-1}) W_k^T + c_k``, ``y = sigma(z_last) W_out^T + c_out``
    (``y = u W_out^T + c_out`` without hidden layers). One product per layer per call. The maps are
    held transposed (``weights_t[k] = W_k^T``, ``W_out_t = W_out^T``), once per call, so the
    per-step products take no transpose (in torch each ``.T`` is three operator calls per layer per
    step: 21 of the R2DN's 96 per forward step; benchmarks/profile_r2dn.py).
    """

    weights_t: tuple[Array, ...]
    biases: tuple[Array, ...]
    W_out_t: Array
    c_out: Array


def cayley(W: Array, *, xp: Namespace) -> tuple[Array, Array]:
    """Cayley transform of ``W`` ((m + n) x n): returns ``(A, B)`` with ``[A^T; B^T]`` orthonormal.

    ``U`` = top n rows, ``V`` = the other m; ``Z = U - U^T + V^T V``,
    ``A^T = (I + Z)^-1 (I - Z)``, ``B^T = -2 V (I + Z)^-1``. Returns A (n, n) and B (n, m).

    One solve gives both: with ``X = 2 (I + Z)^-1`` (``(I + Z) X = 2 I``), ``I - Z = 2 I - (I + Z)``
    makes ``A^T = X - I``, and ``B^T = -V X``. Forming X is safe where an inverse usually is
    not: the symmetric part of ``I + Z`` is ``I + V^T V >= I``, so ``||(I + Z)^-1|| <= 1`` and X
    is as accurate as a solve against any right-hand side (docs/math/lbdn.md#cayley). Without
    the second solve, the explicit map of an R2DN with six hidden layers of 96 took 0.73 of the
    time in float32 torch on a CPU
    (benchmarks/README.md#the-r2dns-explicit-map-one-solve-per-cayley-transform).
    """
    n = W.shape[1]
    U, V = W[:n, :], W[n:, :]
    Z = U - U.T + V.T @ V
    I = eye_like(n, W, xp=xp)
    X = solve(I + Z, 2.0 * I, xp=xp)
    return X.T - I, -(V @ X).T


def inverse_cayley(A_T: Array, B: Array, *, xp: Namespace) -> Array:
    """The ``W = [U; V]`` whose :func:`cayley` gives ``A`` with ``A^T = A_T`` and ``B``.

    With ``A^T = (I + Z)^-1 (I - Z)`` and ``B^T = -2 V (I + Z)^-1`` where ``Z = U - U^T + V^T V``:
    ``Z = (I + A^T)^-1 (I - A^T)`` (``I + A^T = 2 (I + Z)^-1`` is always invertible),
    ``V = -B^T (I + Z) / 2`` and ``U`` = half the skew part of ``Z - V^T V`` (the symmetric part
    of ``U`` is not identifiable: this ``U`` is skew). Exact up to rounding. ``A_T`` is (n, n),
    ``B`` (n, m); returns (n + m, n).
    """
    I = eye_like(A_T.shape[0], A_T, xp=xp)
    Z = solve(I + A_T, I - A_T, xp=xp)
    V = -0.5 * B.T @ (I + Z)
    S = Z - V.T @ V
    return xp.concat([(S - S.T) / 4, V], axis=0)


def _normalised_cayley(XY: Array, a: Array, norm_eps: float, *,
                       xp: Namespace) -> tuple[Array, Array]:
    return cayley((a / xp.sqrt(xp.sum(XY**2) + norm_eps)) * XY, xp=xp)


def _psi(d: Array, preset: Preset, *, xp: Namespace) -> Array:
    if preset.psi_clip is not None:
        d = xp.clip(d, -preset.psi_clip, preset.psi_clip)
    return xp.exp(d)


def sandwich_explicit(direct: Mapping[str, Array], prefix: str, preset: Preset, *,
                      xp: Namespace) -> SandwichExplicit:
    """Explicit form of the Sandwich layer whose parameters are keyed ``prefix + name``."""
    A, B = _normalised_cayley(direct[prefix + "XY"], direct[prefix + "a"], preset.norm_eps, xp=xp)
    return SandwichExplicit(A, B, _psi(direct[prefix + "d"], preset, xp=xp), direct[prefix + "b"])


def output_explicit(direct: Mapping[str, Array], prefix: str, preset: Preset, *,
                    xp: Namespace) -> SandwichExplicit:
    """Explicit form of the LBDN's linear output layer (no Psi, no activation)."""
    _, B = _normalised_cayley(direct[prefix + "XY"], direct[prefix + "a"], preset.norm_eps, xp=xp)
    return SandwichExplicit(None, B, None, direct[prefix + "b"])


def sandwich_apply(e: SandwichExplicit, h: Array, act: Activation) -> Array:
    """One Sandwich layer on a batch ``h`` (batch, n_in) -> (batch, n_out). 1-Lipschitz."""
    z = (SQRT2 * (h @ e.B.T)) / e.psi + e.b
    return SQRT2 * ((act.fn(z) * e.psi) @ e.A)


def lbdn_explicit(direct: Mapping[str, Array], n_layers: int, gamma: float | None,
                  compat: str | None, *, prefix: str = "", xp: Namespace) -> LBDNExplicit:
    """Explicit LBDN from direct parameters ``{prefix}layers.<k>.*`` (and ``{prefix}log_gamma``).

    ``n_layers`` counts every layer, the output layer included. ``gamma`` is the fixed bound, or
    ``None`` when ``log_gamma`` is a learned parameter.
    """
    preset = PRESETS[compat]
    n_sandwich = n_layers if not preset.linear_output else n_layers - 1
    layers = tuple(sandwich_explicit(direct, f"{prefix}layers.{k}.", preset, xp=xp)
                   for k in range(n_sandwich))
    output = (output_explicit(direct, f"{prefix}layers.{n_layers - 1}.", preset, xp=xp)
              if preset.linear_output else None)
    ref = direct[f"{prefix}layers.0.XY"]
    if gamma is None:
        sqrt_gamma = xp.exp(direct[f"{prefix}log_gamma"] / 2)
    else:
        sqrt_gamma = xp.asarray([math.sqrt(gamma)], dtype=ref.dtype, device=device(ref))
    return LBDNExplicit(layers, output, sqrt_gamma)


def lbdn_fuse(e: LBDNExplicit) -> FusedLBDN:
    """Multiply out the linear maps that meet between layers (docs/math/performance.md#performance); once per call."""
    weights, biases = [], []
    left = e.sqrt_gamma          # the linear map applied to the input before the first layer
    for k, layer in enumerate(e.layers):
        inner = (SQRT2 / layer.psi)[:, None] * layer.B          # sqrt2 Psi^-1 B
        weights.append(inner * left if k == 0 else inner @ left)
        biases.append(layer.b)
        left = SQRT2 * (layer.A.T * layer.psi[None, :])          # sqrt2 A^T Psi
    if e.output is None:                       # robustnn: the last Sandwich output scaled by sqrt(gamma)
        return FusedLBDN(tuple(W.T for W in weights), tuple(biases), (e.sqrt_gamma * left).T,
                         0.0 * e.layers[-1].b)
    W_last = e.sqrt_gamma * e.output.B
    W_out = W_last @ left if e.layers else W_last * left
    return FusedLBDN(tuple(W.T for W in weights), tuple(biases), W_out.T, e.output.b)


def lbdn_apply(f: FusedLBDN, u: Array, act: Activation, mad: Affine = affine) -> Array:
    """Evaluate a fused LBDN on a batch ``u`` (..., n_in) -> (..., n_out); ``mad`` computes each
    layer's ``h W^T + c`` (:data:`r2dn._spec.rollout.Affine`)."""
    h = u
    for Wt, c in zip(f.weights_t, f.biases):
        h = act.fn(mad(h, Wt, c))
    return mad(h, f.W_out_t, f.c_out)
