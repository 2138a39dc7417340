"""What computing a float32 REN's explicit map in float64 costs (issue 17, docs/math/float32.md).

A float32 REN computes its explicit map in float64 and casts it once. This times, in torch on the
CPU, a float32 REN's ``simulate`` and its gradient with that map against the same model with the
map in float32 (``r2dn._spec.ren_explicit`` called directly), interleaved, medians of
``--repeats`` runs. Sizes: the expressivity grid's largest REN (nu = nx = ny = 1, nv = 200,
batch 64, horizon 8) and a wide one (nu 2, nx 75, nv 75, ny 3, batch 4, horizon 16), and the
map alone.

    python benchmarks/float32_maps.py [--repeats 15] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import r2dn._spec as spec
import r2dn.torch as rt

#: (label, nu, nx, nv, ny, batch, horizon)
SIZES = (("grid REN nv=200", 1, 1, 200, 1, 64, 8), ("wide REN", 2, 75, 75, 3, 4, 16))


def _median_time(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _float32_map(direct, cfg, *, xp):
    return spec.ren_explicit(direct, cfg, xp=xp)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    wide = spec._ren_explicit_wide
    print(f"{'size':<18}{'what':<10}{'map f64 (ms)':>14}{'map f32 (ms)':>14}{'ratio':>8}")
    for label, nu, nx, nv, ny, batch, horizon in SIZES:
        model = rt.LipschitzREN(nu, nx, nv, ny, 2.0, activation="tanh", dtype="float32", seed=0)
        x0 = torch.zeros(batch, nx)
        us = torch.randn(horizon, batch, nu)

        def forward():
            with torch.no_grad():
                model.simulate(x0, us)

        def gradient():
            model.zero_grad()
            xT, ys = model.simulate(x0, us)
            (xT.square().mean() + ys.square().mean()).backward()

        def explicit():
            with torch.no_grad():
                model.explicit()

        for what, fn in (("map", explicit), ("forward", forward), ("gradient", gradient)):
            pairs = []
            for impl in (wide, _float32_map):
                spec._ren_explicit_wide = impl
                pairs.append(_median_time(fn, args.repeats))
            spec._ren_explicit_wide = wide
            print(f"{label:<18}{what:<10}{1e3 * pairs[0]:>14.2f}{1e3 * pairs[1]:>14.2f}"
                  f"{pairs[0] / pairs[1]:>8.2f}")


if __name__ == "__main__":
    main()
