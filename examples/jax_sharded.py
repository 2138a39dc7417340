"""Train a Lipschitz R2DN data-parallel over every JAX device, single- or multi-host.

The batch is split over a one-axis mesh ``("data",)`` with explicit sharding; the model and the
optimiser state are replicated. ``jax.jit`` of the gradient then runs each device on its part of
the batch and sums the parameter gradients across devices (the REN's equilibrium, too: see
``r2dn.jax.sharding``). The same script runs on several hosts: start one process per host with
``--distributed`` (it calls ``jax.distributed.initialize()``, which reads the coordinator from the
cluster environment), each process feeding its own slice of the batch.

Run::

    python examples/jax_sharded.py --quick                                        # any machine
    XLA_FLAGS=--xla_force_host_platform_device_count=4 python examples/jax_sharded.py --quick
    python examples/jax_sharded.py --distributed          # on every host of a cluster

Prints the device count and the loss every few steps; the loss goes down.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import AxisType, PartitionSpec as P

import r2dn.jax as rn


def target(us: np.ndarray) -> np.ndarray:
    """A smooth nonlinear filter of the inputs to fit: y_t = tanh(sum_k 0.5^k u_{t-k})."""
    acc, ys = np.zeros(us.shape[1:]), []
    for u in us:
        acc = 0.5 * acc + u
        ys.append(np.tanh(acc))
    return np.stack(ys).astype(np.float32)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch", type=int, default=64, help="global batch (divisible by #devices)")
    p.add_argument("--horizon", type=int, default=50)
    p.add_argument("--quick", action="store_true", help="20 steps, batch 8, horizon 10")
    p.add_argument("--distributed", action="store_true", help="call jax.distributed.initialize()")
    args = p.parse_args()
    if args.quick:
        args.steps, args.batch, args.horizon = 20, 8, 10
    if args.distributed:
        jax.distributed.initialize()

    mesh = jax.make_mesh((jax.device_count(),), ("data",), axis_types=(AxisType.Explicit,))
    per_process = args.batch // jax.process_count()
    model = rn.LipschitzR2DN(1, 4, 8, 1, gamma=2.0, hidden=(16,), seed=0)
    tx = optax.adam(1e-2)
    rng = np.random.default_rng(jax.process_index())

    def loss_fn(m, x0, us, ys):
        return jnp.mean((m.simulate(x0, us)[1] - ys) ** 2)

    @jax.jit
    def step(m, state, x0, us, ys):
        loss, grads = jax.value_and_grad(loss_fn)(m, x0, us, ys)
        updates, state = tx.update(grads, state, m)
        return optax.apply_updates(m, updates), state, loss

    def shard(local: np.ndarray, spec: P) -> jax.Array:
        """This process's slice of the global batch as one array sharded over the mesh."""
        return jax.make_array_from_process_local_data(jax.NamedSharding(mesh, spec), local)

    with jax.set_mesh(mesh):
        model = jax.device_put(model, P())          # replicated parameters
        state = tx.init(model)
        for i in range(args.steps):
            us = rng.normal(size=(args.horizon, per_process, 1)).astype(np.float32)
            x0 = shard(np.zeros((per_process, 4), np.float32), P("data"))
            model, state, loss = step(model, state, x0, shard(us, P(None, "data")),
                                      shard(target(us), P(None, "data")))
            if i % max(1, args.steps // 10) == 0 or i == args.steps - 1:
                print(f"step {i:4d}  loss {float(loss):.4f}  ({jax.device_count()} devices)")


if __name__ == "__main__":
    main()
