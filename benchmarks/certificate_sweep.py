"""Certificate sweep: every recurrent family over many random sizes, seeds, gamma, abar, (Q, S, R),
options and perturbed parameters; reports failures and the smallest relative margins.

    python benchmarks/certificate_sweep.py [--trials 1500] [--seed 0] [--backend numpy]

The check is ``r2dn.certify`` (the dissipation matrix of DESIGN §3.4 built from ``explicit()`` in
float64); the exit code is 1 if any model is not certified.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict

import numpy as np
from tqdm import tqdm

import r2dn
from r2dn._model import to_numpy
from r2dn.config import RECURRENT_FAMILIES, R2DN_FAMILIES, random_supply




def draw(rn, rng: np.random.Generator, family: str, trial: int):
    nu, nx, nv, ny = (int(v) for v in rng.integers(1, 9, size=4))
    if family == "PassiveREN":
        ny = nu
    kw = dict(abar=float(rng.choice([1.0, 0.99, 0.9, 0.5, 0.1])), polar=bool(rng.integers(2)),
              init=str(rng.choice(["random", "long_memory"])), seed=trial,
              activation=str(rng.choice(["relu", "tanh", "sigmoid"])),
              dtype=str(rng.choice(["float64", "float32"])))
    args = [nu, nx, nv, ny]
    if family in R2DN_FAMILIES:
        args.append(tuple(int(h) for h in rng.integers(1, 10, size=rng.integers(0, 3))))
    if family.startswith("Lipschitz"):
        args.append(float(10 ** rng.uniform(-2, 2)))
    if family.startswith("General"):
        args += list(random_supply(rng, nu, ny))
    model = getattr(rn, family)(*args, **kw)
    if rng.uniform() < 0.5:                      # the guarantee holds for every parameter value
        scale = float(rng.choice([0.3, 1.0, 3.0]))
        direct = {}
        for k, v in model.direct().items():
            v = np.asarray(to_numpy(v), dtype=np.float64)
            size = scale * (np.sqrt(np.mean(v**2)) + 0.1) if v.size else 0.0
            direct[k] = v + size * rng.normal(size=v.shape)
        model = rn.from_direct(model.config, direct)
    return model


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", default="numpy", choices=r2dn.BACKENDS)
    args = parser.parse_args()
    rn = r2dn.backend(args.backend)
    rng = np.random.default_rng(args.seed)
    worst: dict[tuple[str, str], float] = defaultdict(lambda: np.inf)
    failures, failures64 = [], []
    for trial in tqdm(range(args.trials), desc="certify"):
        family = RECURRENT_FAMILIES[trial % len(RECURRENT_FAMILIES)]
        model = draw(rn, rng, family, trial)
        rep = r2dn.certify(model)
        key = (family, model.config.dtype)
        worst[key] = min(worst[key], rep.relative_margin)
        if not rep.certified:
            failures.append((trial, model.config, rep))
            if not r2dn.certify(model, float64_maps=True).certified:
                failures64.append(trial)
    print(f"{args.trials} models: {len(failures)} not certified with the maps in the model's dtype, "
          f"{len(failures64)} with the maps recomputed in float64")
    print(f"{'family':<18}{'dtype':<10}smallest min_eig / scale")
    for (family, dtype), margin in sorted(worst.items()):
        print(f"{family:<18}{dtype:<10}{margin:.2e}")
    for trial, cfg, rep in failures[:10]:
        print("NOT CERTIFIED:", trial, cfg, rep)
    return 1 if failures64 else 0


if __name__ == "__main__":
    sys.exit(main())
