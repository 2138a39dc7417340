"""Float32 explicit maps (issue 17, ``docs/math/float32.md``).

Oracles: the supply correction as the paper writes it (``V^T R1^-1 V - W^T Q W``, evaluated in
float64 on well-conditioned draws) and the float64 NumPy map on the same float32 parameters.
"""

from __future__ import annotations

import array_api_compat.numpy as xnp
import numpy as np
import pytest

import r2dn.numpy as rn
from r2dn import _spec
from r2dn._spec.ren import feedthrough, output_map, supply_arrays, supply_correction

from helpers import build, perturb

#: (family, nu, ny, options): square, tall, wide; passive rho = 0 and rho > 0; every compat
SHAPES = [("LipschitzREN", 2, 2, {}), ("LipschitzREN", 1, 3, {"compat": "julia"}),
          ("LipschitzREN", 3, 1, {"compat": "julia"}), ("GeneralREN", 3, 2, {}),
          ("GeneralREN", 2, 3, {"compat": "robustnn"}),
          ("PassiveREN", 2, 2, {"nu_index": 0.1, "rho_index": 0.0}),
          ("PassiveREN", 3, 3, {"nu_index": -0.1, "rho_index": 0.5})]


def _as_written(direct, cfg):
    """Gamma = V^T R1^-1 V - W^T Q W with R1 and T formed as written (docs/math/ren.md#ren)."""
    Q, S, R = supply_arrays(cfg, direct["X"], xp=xnp)
    C2, D21, _ = output_map(direct, cfg, xp=xnp)
    D22 = feedthrough(direct, cfg, Q, S, R, xp=xnp)
    T = D22.T @ Q + S
    V = np.concatenate([T @ C2, T @ D21 - direct["D12"].T, direct["B2"].T], axis=1)
    W = np.concatenate([C2, D21, np.zeros((cfg.ny, cfg.nx))], axis=1)
    R1 = R + S @ D22 + D22.T @ S.T + D22.T @ Q @ D22
    return V.T @ np.linalg.solve(R1, V) - W.T @ Q @ W


@pytest.mark.parametrize("family,nu,ny,opts", SHAPES)
@pytest.mark.parametrize("seed", [0, 1])
def test_factored_supply_correction_is_the_formula(family, nu, ny, opts, seed):
    model = perturb(rn, build(rn, family, nu, 3, 2, ny, seed=seed, **opts), seed, 0.3)
    direct, cfg = model.direct(), model.config
    Q, S, R = supply_arrays(cfg, direct["X"], xp=xnp)
    C2, D21, _ = output_map(direct, cfg, xp=xnp)
    D22 = feedthrough(direct, cfg, Q, S, R, xp=xnp)
    got = supply_correction(direct, cfg, C2, D21, D22, Q, S, R, xp=xnp)
    want = _as_written(direct, cfg)
    assert np.max(np.abs(got - want)) <= 1e-9 * np.max(np.abs(want))


@pytest.mark.parametrize("family", ["ContractingREN", "LipschitzREN", "GeneralREN", "PassiveREN",
                                    "ContractingR2DN", "LipschitzR2DN", "GeneralR2DN"])
@pytest.mark.parametrize("scale", [1.0, 10.0])
def test_float32_maps_match_float64_after_large_moves(family, scale):
    """Parameters moved by 1 and 10 times their RMS, as training does. REN maps run in float64
    and are cast once, so each entry is within half an ulp (2^-24 relative) of the same map in
    float64; a float64 model on those parameters differs from it by the float32 neuron margin
    (Lambda scaled by 1 + 16 eps32, C1, D11, D12 by its inverse: 1.9e-6), within the float32
    tolerance. R2DN maps run in float32 (measured at most 4e-6 of the largest entry over 300
    draws up to 10x)."""
    worst = worst_vs_float64_model = 0.0
    for seed in range(4):
        base = build(rn, family, 3, 4, 5, 2, seed=seed, hidden=(3,), abar=0.9)
        m64 = perturb(rn, base, seed + 10, scale)
        d32 = {k: np.asarray(v, np.float32) for k, v in m64.direct().items()}
        cfg32 = m64.config.replace(dtype="float32")
        e32 = _spec.flatten_explicit(_spec.direct_to_explicit(d32, cfg32, xp=xnp))
        d64 = {k: v.astype(np.float64) for k, v in d32.items()}
        e64 = _spec.flatten_explicit(_spec.direct_to_explicit(d64, cfg32, xp=xnp))
        f64 = _spec.flatten_explicit(_spec.direct_to_explicit(d64, m64.config, xp=xnp))
        for k, ref in e64.items():
            assert e32[k].dtype == np.float32, k
            size = max(1.0, np.max(np.abs(ref), initial=0.0))
            worst = max(worst, np.max(np.abs(e32[k] - ref), initial=0.0) / size)
            worst_vs_float64_model = max(worst_vs_float64_model,
                                         np.max(np.abs(e32[k] - f64[k]), initial=0.0) / size)
    assert worst <= (2.0**-24 if "REN" in family else 1e-5), worst
    assert worst_vs_float64_model <= 1e-5, worst_vs_float64_model
