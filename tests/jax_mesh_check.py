"""Run by tests/test_jax_sharding.py in a fresh process with two host CPU devices: data-parallel
gradients of an R2DN and a REN under ``jax.set_mesh`` (explicit and automatic axes) and under
``jax.shard_map`` (default ``check_vma=True``), against the one-device gradient. Prints a JSON
dict: ``errors`` ``{case: largest relative difference}``; ``rows``, for each REN case, the batch
rows of every REN equilibrium custom call in the compiled gradient (:mod:`r2dn.jax.native`; each
device should solve its own 2 of the 4 rows, or, where XLA partitions the program, the spec's
loop should run: no call); ``native``, whether the custom call runs here; ``varying``, the mesh
axes the primitive's output varies over when only D11 does."""

import json
import os
import re

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P  # noqa: E402

import r2dn.jax as rn  # noqa: E402
from r2dn import _spec  # noqa: E402
from r2dn.jax import native  # noqa: E402

assert jax.device_count() == 2, jax.devices()
MODELS = {"r2dn": rn.LipschitzR2DN(2, 3, 5, 2, gamma=2.0, hidden=(4,), dtype="float64", seed=1),
          "ren": rn.ContractingREN(2, 3, 5, 2, dtype="float64", seed=1)}
rng = np.random.default_rng(0)
us = jnp.asarray(rng.normal(size=(3, 4, 2)))
x0 = jnp.asarray(rng.normal(size=(4, 3)))
FAST = rn.fast_compile_options()


def loss(m, x0, us):
    _, ys = m.simulate(x0, us)
    return jnp.mean(ys ** 2)


def rel(g, ref):
    return max(float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b)))
               for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(ref)))


def call_rows(f, *args):
    """The batch rows of each REN equilibrium custom call in ``f``'s compiled program."""
    text = f.lower(*args).compile().as_text()
    return [int(m) for m in re.findall(r"f64\[(\d+),5\][^\n]*custom-call\([^\n]*"
                                       r"custom_call_target=\"r2dn_equilibrium", text)]


out, rows = {}, {}
for name, model in MODELS.items():
    ref = jax.jit(jax.grad(loss), compiler_options=FAST)(model, x0, us)
    for kind in (AxisType.Explicit, AxisType.Auto):
        mesh = jax.make_mesh((2,), ("data",), axis_types=(kind,))
        with jax.set_mesh(mesh):
            f = jax.jit(jax.grad(loss), compiler_options=FAST)
            args = (model, jax.device_put(x0, P("data")), jax.device_put(us, P(None, "data")))
            g = f(*args)
            if name == "ren":
                rows[f"{name}-set_mesh-{kind.name}"] = call_rows(f, *args)
        out[f"{name}-set_mesh-{kind.name}"] = rel(g, ref)

        def local(m, x0, us):      # the global mean loss: its gradient is the global gradient
            return jax.grad(lambda m: jax.lax.pmean(loss(m, x0, us), "data"))(m)

        f = jax.jit(jax.shard_map(local, mesh=mesh, in_specs=(P(), P("data"), P(None, "data")),
                                  out_specs=P()), compiler_options=FAST)
        args = (model, jax.device_put(x0, NamedSharding(mesh, P("data"))),
                jax.device_put(us, NamedSharding(mesh, P(None, "data"))))
        g = f(*args)
        if name == "ren":
            rows[f"{name}-shard_map-{kind.name}"] = call_rows(f, *args)
        out[f"{name}-shard_map-{kind.name}"] = rel(g, ref)
# D11 varying over the devices, b replicated: w varies too (the primitive's type, as the spec's)
mesh = jax.make_mesh((2,), ("data",), axis_types=(AxisType.Explicit,))
act = _spec.activation("tanh", xp=jnp)
seen = []
jax.jit(jax.shard_map(lambda D, b: seen.append(jax.typeof(native.equilibrium(
    D[0], b, act, None)).manual_axis_type.varying) or b, mesh=mesh,
    in_specs=(P("data"), P()), out_specs=P()))(
        jax.device_put(jnp.zeros((2, 5, 5)), NamedSharding(mesh, P("data"))),
        jax.device_put(jnp.ones((3, 5)), NamedSharding(mesh, P())))
print(json.dumps({"errors": out, "rows": rows, "native": native.status(),
                  "varying": sorted(seen[0])}))
