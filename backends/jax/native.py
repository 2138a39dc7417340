"""The REN equilibrium's compiled C loop as an XLA custom call, for rollouts on the CPU.

Traced with ``lax.scan`` (:mod:`r2dn._spec.equilibrium`), each step's equilibrium is an inner
loop over blocks of neurons, and on XLA's CPU runtime every iteration of a rolled loop costs
about 10 microseconds whatever it computes: at nv = 200 (13 blocks) the loop overhead alone was
about a third of a forward rollout. Here the equilibrium's *value* is one custom call into the
loop of :mod:`r2dn._native` (``substitution.c``; the handler is ``xla_ffi.cc``), registered with
``jax.ffi``.

It is a JAX primitive, ``r2dn_ren_equilibrium`` (D11, b -> w), not a bare ``ffi_call``: JAX drops
a ``custom_jvp`` rule when it partially evaluates a gradient's forward pass, so forward-over-
reverse derivatives (``jax.jvp(jax.grad(f))``, ``jax.hessian``) differentiate the primal
itself, and a bare custom call has no derivative. The primitive's JVP is the implicit-function
rule of :func:`r2dn.jax.rollout.equilibrium_layer` (which calls the primitive for its primal), at
every order. Under ``jax.vmap`` stacked D11 (ensembles) are solved one after the other, and with
one D11 the mapped problems join the rows of one call. Lowered for the CPU it is the custom call,
except where XLA's partitioner would have to split it over devices (which it cannot) and for
``jax.export``; there, and for any other platform, it is the spec's loop over blocks of neurons
(which rebuilds the substitution plan inside each step: rare cases on the CPU). Where JAX's
default backend is not the CPU the primitive is never bound, and the rollout runs the spec's loop
on its once-built plan. It applies to the named activations of ``substitution.c`` in float32 and
float64. The library is compiled on first use with the system's C and C++ compilers against
jaxlib's FFI headers and cached in ``$R2DN_CACHE``; without the compilers, or with
``R2DN_NATIVE=0``, :func:`status` says why and the spec's loop runs, unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache, partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax._src import dispatch     # apply_primitive: the eager rule of a primitive, as JAX's own
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir

from r2dn import _native, _spec

from .sharding import vary_like

TARGET = "r2dn_equilibrium_{}"
_SUFFIX = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}


@cache
def _registered() -> str:
    """Build the library and register its handlers with XLA (once per process); the status."""
    lib, reason = _native.xla_library(jax.ffi.include_dir())
    if lib is None:
        return reason
    for suffix in _SUFFIX.values():
        handler = getattr(lib, f"r2dn_xla_equilibrium_{suffix}")
        jax.ffi.register_ffi_target(TARGET.format(suffix), jax.ffi.pycapsule(handler),
                                    platform="cpu")
    return "compiled"


def status() -> str:
    """Whether the custom call runs here: ``"compiled"``, or the reason it does not."""
    return _registered()


def _vectorized(f: Callable[[Any, Any], Any], ndim: int) -> Callable[[Any, Any], Any]:
    """``f(D11 (nv, nv), b (batch, nv))`` over ``ndim - 2`` leading dimensions of both."""
    for _ in range(ndim - 2):
        f = jax.vmap(f)
    return f


def _custom_call(D11: Any, b: Any, *, activation: str) -> Any:
    suffix = _SUFFIX[np.dtype(b.dtype)]
    call = jax.ffi.ffi_call(TARGET.format(suffix), jax.ShapeDtypeStruct(b.shape, b.dtype))
    code = np.int32(_native.ACTIVATIONS[activation])
    return call(jnp.swapaxes(D11, -1, -2), b, activation=code)


def _spec_loop(D11: Any, b: Any, *, activation: str) -> Any:
    from .rollout import full_precision, lax_scan
    act = _spec.activation(activation, xp=jnp)
    with full_precision():
        return _vectorized(lambda D, v: _spec.equilibrium(D, v, act, xp=jnp, scan=lax_scan),
                           b.ndim)(D11, b)


def _jvp(primals: tuple, tangents: tuple, *, activation: str) -> tuple[Any, Any]:
    from .rollout import equilibrium_layer
    tangents = tuple(ad.instantiate_zeros(t) for t in tangents)
    return jax.jvp(_vectorized(equilibrium_layer(activation), primals[1].ndim), primals, tangents)


def _batch(args: tuple, dims: tuple, *, activation: str) -> tuple[Any, int]:
    """``jax.vmap``: with one D11 for every problem (a model shared by several batches) the
    mapped axis joins b's rows, so the loop solves them together in full blocks of rows; with
    stacked D11 (an ensemble) the problems are stacked and solved one after the other."""
    (D11, b), (dD, db) = args, dims
    if dD is None:
        b = jnp.moveaxis(b, db, -3)
        w = equilibrium_p.bind(D11, b.reshape(*b.shape[:-3], -1, b.shape[-1]),
                               activation=activation)
        return w.reshape(b.shape), b.ndim - 3
    size = D11.shape[dD]
    D11, b = (jnp.broadcast_to(x, (size, *x.shape)) if d is None else jnp.moveaxis(x, d, 0)
              for x, d in zip(args, dims))
    return equilibrium_p.bind(D11, b, activation=activation), 0


equilibrium_p = Primitive("r2dn_ren_equilibrium")
# eager calls compile once per shape and dtype and run (also under jax.disable_jit)
equilibrium_p.def_impl(partial(dispatch.apply_primitive, equilibrium_p))
# w: b's shape, dtype and sharding; strongly typed (b may be weakly typed, w never is);
# D11 and b vary over the same manual mesh axes (:func:`equilibrium` marks them)
equilibrium_p.def_abstract_eval(lambda D11, b, *, activation: b.strip_weak_type())
ad.primitive_jvps[equilibrium_p] = _jvp
batching.primitive_batchers[equilibrium_p] = _batch
mlir.register_lowering(equilibrium_p, mlir.lower_fun(_spec_loop, multiple_results=False))


def _one_partition(ctx: mlir.LoweringRuleContext) -> bool:
    """The call is lowered for one device's data: no SPMD partitioner will split it. XLA cannot
    split a custom call, so where the partitioner places the program over several devices (a
    jit over a sharded batch with automatic axes) it would gather the whole batch onto every
    device; there the spec's loop, which it splits, is lowered instead. Inside ``shard_map``
    over every mesh axis each device holds its own rows (how :mod:`.sharding` runs explicit
    axes)."""
    axes = ctx.module_context.axis_context
    if isinstance(axes, mlir.ShardingContext):
        return axes.num_devices == 1
    if isinstance(axes, mlir.SPMDAxisContext):       # axes of size 1 split nothing
        return all(axes.mesh.shape[name] == 1 for name in axes.mesh.axis_names
                   if name not in axes.manual_axes)
    return True


def _cpu_lowering(ctx: mlir.LoweringRuleContext, D11: Any, b: Any, *, activation: str) -> Any:
    """The custom call, except where the partitioner would split it (:func:`_one_partition`),
    for ``jax.export`` (a serialized program must not name a target another process may not
    have registered), or where the library is not built: there the spec's loop."""
    usable = (_one_partition(ctx) and not ctx.module_context.lowering_parameters.for_export
              and status() == "compiled")
    rule = _custom_call if usable else _spec_loop
    return mlir.lower_fun(partial(rule, activation=activation), multiple_results=False)(
        ctx, D11, b)


mlir.register_lowering(equilibrium_p, _cpu_lowering, platform="cpu")


def equilibrium(D11: Any, b: Any, act: _spec.Activation,
                spec: Callable[[Any, Any], Any]) -> Any:
    """``w = act(D11 w + b)`` (D11 (nv, nv) strictly lower triangular, b (batch, nv)): the
    primitive where the C loop applies (JAX's default backend the CPU, a named activation, one
    float dtype, the library built), else ``spec(D11, b)``, the spec's loop with the rollout's
    substitution plan (built once before the time loop; the primitive's own fallback lowering,
    ``_spec_loop``, builds it inside the step, so a GPU or TPU program never holds the
    primitive, and a GPU host never compiles the C library)."""
    if (jax.default_backend() != "cpu" or act.name not in _native.ACTIVATIONS
            or np.dtype(b.dtype) not in _SUFFIX or D11.dtype != b.dtype
            or status() != "compiled"):
        return spec(D11, b)
    return equilibrium_p.bind(vary_like(D11, b), vary_like(b, D11), activation=act.name)
