"""Certificate sweep: every recurrent family, float32 and float64, random sizes up to 10, seeds,
gamma, abar, (Q, S, R) and options, every free parameter moved by 1, 3 or 10 times its RMS.

    python benchmarks/certificate_sweep.py [--trials 10500] [--seed 0] [--backend numpy] [--quick]
                                           [--rounding]

The check is ``r2dn.certify`` on the model's own explicit matrices (read in float64): certified
when the relative slack ``delta`` its matrices need (rate abar (1 + delta), gain gamma (1 + delta)
or the supply relaxed by delta) is within the rounding allowance of its dtype (64 ulps, times
max(1, scale / ||Sigma||) for dissipative models). Prints,
per family and dtype, the models drawn, those not certified, the largest delta in ulps and the
smallest relative margin; exits with status 1 if any model is not certified. ``--rounding`` also
prints, for the float32 RENs, the largest move of the neuron block of the dissipation matrix that
the cast to float32 causes, ``||D^-1/2 (L32 - L64)_ww D^-1/2|| / eps32`` with ``D = 2 Lambda``
(docs/math/float32.md#a-margin-built-into-the-map), once with E, P and Lambda of the float64
map (what ``certify`` uses) and once with the model's own float32 ones.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections import defaultdict

import array_api_compat.numpy as xnp
import numpy as np

import r2dn
from r2dn import _spec
from r2dn._model import to_numpy
from r2dn.certify import ROUNDING_ULPS, dissipation_matrix
from r2dn.config import LIPSCHITZ_FAMILIES, R2DN_FAMILIES, RECURRENT_FAMILIES, random_supply

#: perturbation of every free parameter, in units of its RMS (plus 0.1, so zeros move too)
SCALES = (1.0, 3.0, 10.0)
DTYPES = ("float32", "float64")
#: models of the quick mode (every family, dtype and scale at least once)
QUICK_TRIALS = 2 * len(RECURRENT_FAMILIES) * len(SCALES)


def draw(rn, rng: np.random.Generator, family: str, trial: int, dtype: str, scale: float):
    """A random model of ``family`` in ``dtype`` with its parameters moved by ``scale`` RMS."""
    nu, nx, nv, ny = (int(v) for v in rng.integers(1, 11, size=4))
    if family == "PassiveREN":
        ny = nu
    kw = dict(abar=float(rng.choice([1.0, 0.99, 0.9, 0.5, 0.1])), polar=bool(rng.integers(2)),
              init=str(rng.choice(["random", "long_memory"])), seed=trial,
              activation=str(rng.choice(["relu", "tanh", "sigmoid"])), dtype=dtype)
    args: list = [nu, nx, nv, ny]
    if family in R2DN_FAMILIES:
        args.append(tuple(int(h) for h in rng.integers(1, 11, size=rng.integers(0, 3))))
    if family in LIPSCHITZ_FAMILIES:
        args.append(float(10 ** rng.uniform(-2, 2)))
    if family.startswith("General"):
        args += list(random_supply(rng, nu, ny))
    if family == "PassiveREN":
        kw.update(nu_index=float(rng.choice([0.0, 0.1, -0.1])),
                  rho_index=float(rng.choice([0.0, 0.5])))
    model = getattr(rn, family)(*args, **kw)
    direct = {}
    for k, v in model.direct().items():
        v = np.asarray(to_numpy(v), dtype=np.float64)
        size = scale * (np.sqrt(np.mean(v**2)) + 0.1) if v.size else 0.0
        direct[k] = v + size * rng.normal(size=v.shape)
    return rn.from_direct(model.config, direct)


def neuron_rounding(model) -> tuple[float, float]:
    """The cast's move of L's neuron block, D-scaled, in eps32: (float64 proof, own proof)."""
    cfg = model.config
    direct = {k: np.asarray(to_numpy(v), dtype=np.float64) for k, v in model.direct().items()}
    exact = _spec.direct_to_explicit(direct, cfg, xp=xnp)       # the float32 model's map, wide
    own = type(exact)(*(np.asarray(to_numpy(v), dtype=np.float64) for v in model.explicit()))
    wide = own._replace(E=exact.E, P=exact.P, Lambda=exact.Lambda)
    w = slice(cfg.nx, cfg.nx + cfg.nv)
    scale = 1 / np.sqrt(2 * exact.Lambda)
    ref = dissipation_matrix(exact, cfg)[w, w]

    def move(e) -> float:
        d = dissipation_matrix(e, cfg)[w, w] - ref
        return float(np.linalg.norm(scale[:, None] * d * scale[None, :], 2)
                     / np.finfo(np.float32).eps)

    return move(wide), move(own)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", default="numpy", choices=r2dn.BACKENDS)
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_TRIALS} models (every family, dtype and scale)")
    parser.add_argument("--rounding", action="store_true",
                        help="also the cast's move of the neuron block (float32 RENs)")
    args = parser.parse_args()
    trials = QUICK_TRIALS if args.quick else args.trials
    rn = r2dn.backend(args.backend)
    rng = np.random.default_rng(args.seed)
    count: dict[tuple[str, str], int] = defaultdict(int)
    worst_delta: dict[tuple[str, str], float] = defaultdict(float)
    worst_margin: dict[tuple[str, str], float] = defaultdict(lambda: np.inf)
    slack_needed: dict[tuple[str, str], int] = defaultdict(int)
    rounding: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    failures = []
    start = time.perf_counter()
    for trial in range(trials):
        family = RECURRENT_FAMILIES[trial % len(RECURRENT_FAMILIES)]
        k = trial // len(RECURRENT_FAMILIES)
        dtype = DTYPES[k % len(DTYPES)]
        scale = SCALES[(k // len(DTYPES)) % len(SCALES)]
        model = draw(rn, rng, family, trial, dtype, scale)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", r2dn.R2DNWarning)   # counted and printed below
            rep = r2dn.certify(model, bounds=False)
        key = (family, dtype)
        count[key] += 1
        ulps = rep.delta / float(np.finfo(dtype).eps)
        worst_delta[key] = max(worst_delta[key], ulps)
        worst_margin[key] = min(worst_margin[key], rep.relative_margin)
        slack_needed[key] += rep.delta > 0
        if not rep.certified:
            failures.append((trial, scale, model.config, rep))
        if args.rounding and dtype == "float32" and model.config.family == "ren":
            rounding[family] = [max(a, b) for a, b in zip(rounding[family],
                                                          neuron_rounding(model))]
    seconds = time.perf_counter() - start
    print(f"{trials} models in {seconds:.0f} s: {len(failures)} not certified "
          f"(rounding allowance {ROUNDING_ULPS} ulps x max(1, scale / ||Sigma||))")
    print(f"{'family':<17}{'dtype':<9}{'models':>7}{'uncert.':>8}{'delta>0':>8}"
          f"{'max delta (ulps)':>18}{'min margin':>12}")
    for (family, dtype) in sorted(count):
        key = (family, dtype)
        bad = sum(1 for f in failures if (f[2].model, f[2].dtype) == key)
        print(f"{family:<17}{dtype:<9}{count[key]:>7}{bad:>8}{slack_needed[key]:>8}"
              f"{worst_delta[key]:>18.3g}{worst_margin[key]:>12.2e}")
    for family, (wide, own) in sorted(rounding.items()):
        print(f"{family}: neuron block moved by the float32 cast, at most {wide:.3g} eps32 "
              f"(float64 E, P, Lambda; the margin is 16) and {own:.3g} (float32 ones)")
    for trial, scale, cfg, rep in failures[:10]:
        print(f"NOT CERTIFIED: trial {trial}, {scale:g}x RMS, {cfg}, {rep}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
