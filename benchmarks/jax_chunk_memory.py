"""Peak memory of a long R2DN gradient in JAX, with and without ``simulate(chunk=K)``.

Run once per setting, each in a fresh process (peak RSS only grows):

    python benchmarks/jax_chunk_memory.py --steps 20000 --chunk 0      # one lax.scan
    python benchmarks/jax_chunk_memory.py --steps 20000 --chunk 500    # jax.checkpoint per chunk

Prints the peak RSS growth of the gradient call over the RSS after building the model and
inputs and compiling a 10-step gradient (nx 16, nv 32, hidden (64, 64), batch 32, float32).
"""

from __future__ import annotations

import argparse
import json
import resource

import jax
import jax.numpy as jnp


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=20000)
    p.add_argument("--chunk", type=int, default=500, help="0: no chunking")
    p.add_argument("--batch", type=int, default=32)
    args = p.parse_args()
    import r2dn.jax as rn
    model = rn.ContractingR2DN(8, 16, 32, 8, hidden=(64, 64), seed=0)
    chunk = args.chunk or None
    us = jax.random.normal(jax.random.key(0), (args.steps, args.batch, 8))
    x0 = model.init_state(args.batch)

    def loss(m, us):
        return jnp.mean(m.simulate(x0, us, chunk=chunk)[1] ** 2)

    grad = jax.jit(jax.grad(loss))
    jax.block_until_ready(jax.jit(jax.grad(loss))(model, us[:10]))
    base = peak_rss_mb()
    jax.block_until_ready(grad(model, us))
    print(json.dumps({"steps": args.steps, "chunk": args.chunk, "batch": args.batch,
                      "base_mb": round(base, 1), "growth_mb": round(peak_rss_mb() - base, 1)}))


if __name__ == "__main__":
    main()
