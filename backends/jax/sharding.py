"""Data parallelism for the REN equilibrium: run it on each device's part of the batch.

The equilibrium's reverse-mode rule (``_spec.equilibrium_vjp``) forms ``g_D11 = g_b^T w``, a
product that contracts over the batch. When the batch is split across devices that product needs a
sum over devices, which JAX must be told about:

- under ``jax.set_mesh`` with *explicit* axes, a product contracting a sharded dimension is a
  ``ShardingTypeError`` unless its output sharding is given;
- inside ``jax.shard_map`` (``check_vma=True``, the default), a custom rule must return a
  cotangent that varies over the same mesh axes as its primal: ``g_D11`` varies over the batch
  axes, D11 does not.

:func:`batch_parallel` wraps the equilibrium so both are answered the same way: D11 is marked as
varying over the batch's mesh axes (``jax.lax.pcast(..., to="varying")``, whose transpose is
the ``psum`` of the per-device ``g_D11``), and with explicit axes the call runs under ``jax.shard_map`` over the axes
that split the batch. With no mesh, or automatic axes (where XLA's partitioner places the sum), it
is the plain call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
from jax.sharding import PartitionSpec


def _batch_axes(b: Any) -> tuple[str, ...]:
    """The explicit mesh axes that split the batch (first) dimension of ``b``, outside shard_map."""
    spec = getattr(jax.typeof(b).sharding, "spec", None)
    if not spec or spec[0] is None:
        return ()
    return tuple(spec[0]) if isinstance(spec[0], tuple) else (spec[0],)


def vary_like(a: Any, b: Any) -> Any:
    """``a`` marked as varying over the manual mesh axes ``b`` varies over (inside shard_map;
    elsewhere ``a`` itself)."""
    missing = (jax.typeof(b).manual_axis_type.varying
               - jax.typeof(a).manual_axis_type.varying)
    return jax.lax.pcast(a, tuple(sorted(missing)), to="varying") if missing else a


def batch_parallel(layer: Callable[..., Any]) -> Callable[..., Any]:
    """``layer(D11, b, plan=None)`` (b: (batch, nv)) made correct for a batch split over mesh axes.

    Returns a function of the same signature; see the module docstring for what it changes. Where
    D11 has to be re-marked or re-sharded, ``plan`` (slices of D11, see
    :func:`r2dn._spec.substitution_plan`) is rebuilt from the marked D11 inside the layer.
    """
    def call(D11: Any, b: Any, plan: Any = None) -> Any:
        axes = _batch_axes(b)
        if not axes:
            marked = vary_like(D11, b)
            return layer(marked, b, plan if marked is D11 else None)
        spec = PartitionSpec(axes if len(axes) > 1 else axes[0])
        local = jax.shard_map(lambda d, v: layer(vary_like(d, v), v), out_specs=spec,
                              in_specs=(PartitionSpec(), spec), axis_names=set(axes))
        # D11 whole on every device (nv x nv: cheap), b split over its batch only
        return local(jax.reshard(D11, PartitionSpec()), jax.reshard(b, spec))

    return call
