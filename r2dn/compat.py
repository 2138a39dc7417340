"""Compatibility presets: every constant that pins r2dn to another implementation's numbers.

``compat=None`` is r2dn's own convention. ``"julia"`` reproduces RobustNeuralNetworks.jl 0.3 and
``"robustnn"`` the R2DN authors' JAX code (the paper's ``robustnn`` package). docs/math/compat.md#presets tabulates
the differences; each one is a named field of :class:`Preset` so that no constant hides in a
default argument.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Compat = Literal["julia", "robustnn"] | None
COMPAT_CHOICES = (None, "julia", "robustnn")

#: float32 machine epsilon, the robustnn code's regulariser in every dtype.
FLOAT32_EPS = float(np.finfo(np.float32).eps)
#: The default regulariser in float64 (and Julia's in every dtype).
FLOAT64_EPS_DEFAULT = 1e-12
#: robustnn adds this inside the square root of every norm it normalises by (the polar norm of X
#: and the Sandwich layers' ||XY||): sqrt(sum(X**2) + 1.19e-7).
ROBUSTNN_NORM_EPS = 1.1920929e-07
#: robustnn clips d to [-20, 20] before Psi = exp(d).
ROBUSTNN_PSI_CLIP = 20.0
#: The D22 block when ny < nu: -2 in the REN paper, -1/2 in RobustNeuralNetworks.jl 0.3.
D22_WIDE_BLOCK_DEFAULT = -2.0
D22_WIDE_BLOCK_JULIA = -0.5
#: PassiveREN with rho_index > 0: D22 = L_Q^-1 N L_R - Q^-1 S^T (REN paper, r2dn's default), or
#: RobustNeuralNetworks.jl 0.3's D22 = (I + M)^-1 / rho (same M = X3^T X3 + Y3 - Y3^T + eps I).
PASSIVE_D22_PAPER = "paper"
PASSIVE_D22_JULIA = "julia"


@dataclass(frozen=True)
class Preset:
    """The constants one compatibility preset fixes (see docs/math/compat.md#presets)."""

    norm_eps: float          # added to sum(X**2) in the polar norm and the Sandwich normalisation
    psi_clip: float | None   # clip d to [-psi_clip, psi_clip] before exp, or no clip
    linear_output: bool      # LBDN last layer linear (True) or a full Sandwich layer with activation
    d22_wide_block: float    # factor of the (I+M)^-1 Z3^T block of N when ny < nu
    qsr_eps_shift: bool      # use Q - eps*I and R + eps*I in GeneralREN
    passive_d22: str         # PassiveREN D22 when rho_index > 0: PASSIVE_D22_PAPER or _JULIA


PRESETS: dict[Compat, Preset] = {
    None: Preset(0.0, None, True, D22_WIDE_BLOCK_DEFAULT, False, PASSIVE_D22_PAPER),
    "julia": Preset(0.0, None, True, D22_WIDE_BLOCK_JULIA, False, PASSIVE_D22_JULIA),
    "robustnn": Preset(ROBUSTNN_NORM_EPS, ROBUSTNN_PSI_CLIP, False, D22_WIDE_BLOCK_DEFAULT, True,
                       PASSIVE_D22_PAPER),
}


def default_eps(compat: Compat, dtype: str) -> float:
    """The regulariser eps a model gets when the caller passes ``eps=None``."""
    if compat == "julia":
        return FLOAT64_EPS_DEFAULT
    if compat == "robustnn":
        return FLOAT32_EPS
    return FLOAT64_EPS_DEFAULT if dtype == "float64" else FLOAT32_EPS
