"""Quick start: build a Lipschitz R2DN, check its certificate, and see the bound hold.

Runs with NumPy alone (``pip install .``); pass ``--backend torch`` or ``--backend jax`` to run the
same code on another framework.

    python examples/quickstart.py [--backend numpy|torch|jax]
"""

from __future__ import annotations

import argparse

import numpy as np

import r2dn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="numpy", choices=r2dn.BACKENDS)
    args = parser.parse_args()
    to = (lambda a: a) if args.backend == "numpy" else _converter(args.backend)
    rn = r2dn.backend(args.backend)

    gamma = 2.0
    model = rn.LipschitzR2DN(nu=2, nx=8, nv=16, ny=1, hidden=(32, 32), gamma=gamma,
                             dtype="float64", seed=0)
    report = r2dn.certify(model)
    print(f"{model}")
    print(f"certified: {report.certified}  min eigenvalue {report.min_eig:.3e} "
          f"(relative {report.relative_margin:.2e})")
    print(f"certified contraction rate {report.rate:.4f}, certified gain {report.gamma:.4f} "
          f"<= gamma = {gamma}")

    rng = np.random.default_rng(0)
    T, batch = 200, 16
    u1 = rng.normal(size=(T, batch, 2))
    u2 = u1 + 0.1 * rng.normal(size=(T, batch, 2))
    x0 = model.init_state(batch)
    _, y1 = model.simulate(x0, to(u1))
    _, y2 = model.simulate(x0, to(u2))
    dy = r2dn.to_numpy(y1) - r2dn.to_numpy(y2)
    ratio = np.sqrt((dy**2).sum(axis=(0, 2)) / ((u1 - u2) ** 2).sum(axis=(0, 2)))
    print(f"largest measured gain ||dy|| / ||du|| over {batch} random pairs: {ratio.max():.4f}")


def _converter(name: str):
    if name == "torch":
        import torch
        return lambda a: torch.as_tensor(a, dtype=torch.float64)
    import jax
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    return lambda a: jnp.asarray(a, dtype=jnp.float64)


if __name__ == "__main__":
    main()
