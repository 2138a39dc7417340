"""Torch's time loop: the spec's rollout, with torch's own splitting, compiled steps and chunks.

No maths here: every step is :func:`r2dn._spec.cell`, every sequence :func:`r2dn._spec.simulate_loop`.
This module chooses how torch runs them:

* ``torch.unbind`` splits the input terms into steps (``torch.func.vmap`` has a batching rule for
  it, not for the ``moveaxis`` behind the array API's ``unstack``);
* under ``torch.compile`` the loop stays in Python around a compiled block of K steps (one call,
  one graph, for K steps; :data:`BLOCK` by default), with the eager cell for the ``T mod K``
  remainder, so every sequence length reuses the same graph (compiling the whole loop would unroll
  T steps and recompile for each new T);
* ``chunk=K`` runs each K-step piece as one :class:`Chunk` autograd node: the forward pass keeps
  only the chunk's first state, the backward pass recomputes the chunk and differentiates it
  (docs/guides/torch.md#long-sequences-chunk).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, NamedTuple

import array_api_compat.torch as xp_torch
import torch
import torch.autograd.forward_ad as forward_ad
from torch._functorch.pyfunctorch import retrieve_all_functorch_interpreters
from torch.utils import _pytree as pytree
from torch.utils.checkpoint import checkpoint

from r2dn import _spec

from . import native
from .autograd import differentiated
from .primitives import affine

#: default steps per compiled block (a compiled call costs a fixed overhead: guards, the autograd
#: wrapper, buffer allocation; a block pays it once per K steps; benchmarks/torch_compile.py)
BLOCK = 4

#: ``model.compile()``'s options on a CPU when none are given: inductor's C++ wrapper (one C++
#: module per graph instead of a Python wrapper calling C++ kernels) compiled the F-16-size R2DN
#: gradient in 24.8 CPU s instead of 37.9 to 40.7, and ran it 1.65x as fast as eager instead of
#: 1.02x to 1.36x (benchmarks/README.md#torchcompile-of-blocks-of-steps-torch_compilepy)
CPU_OPTIONS: dict[str, Any] = {"options": {"cpp_wrapper": True}}


class Block(NamedTuple):
    """A compiled ``fn(e, nonlinearity, x, us) -> (x_next, ys)`` for ``us`` of ``steps`` steps."""

    fn: Callable[..., Any]
    steps: int


_COMPILED: dict[str, Block] = {}

#: where nothing records derivatives, the eager loop runs the spec's loop over pieces of the
#: sequence whose temporaries (input terms, stacked states and neuron outputs) stay below this
#: many bytes: inference memory does not grow with T, and glibc's allocator keeps serving the
#: pieces from its heap instead of mapping and page-faulting fresh memory for each rollout (a
#: third of the torch REN's forward time at nv 200, T 128, batch 64;
#: benchmarks/README.md#side-by-side-with-the-authors-code-vs_robustnnpy)
PIECE_BYTES = 1 << 19


def _steps(e: Any, nonlinearity: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
           us: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The spec's loop over a fixed number of steps (compiled, it is one graph of that many)."""
    return _spec.simulate_loop(e, nonlinearity, x, us, xp=xp_torch, unstack=torch.unbind,
                               mad=affine)


def compiled(steps: int = BLOCK, **options: Any) -> Block:
    """The loop over ``steps`` steps under ``torch.compile(**options)``, one per ``steps`` and
    options (dynamo caches its graphs per input shape and ``requires_grad``, never per T)."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"compile: `steps` (time steps per compiled block) must be a positive "
                         f"integer; got steps={steps!r}.")
    key = repr((steps, sorted(options.items())))
    if key not in _COMPILED:
        _COMPILED[key] = Block(torch.compile(_steps, **options), steps)
    return _COMPILED[key]


def _loop(e: Any, nonlinearity: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
          us: torch.Tensor, block: Block | None,
          act: _spec.Activation | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x_T, ys)`` of the spec's loop: eager, or compiled blocks then the eager remainder.

    Where nothing differentiates the rollout (:func:`r2dn.torch.autograd.differentiated`), the
    model's activation ``act`` is given and :func:`.native.rollout` applies, the eager remainder
    is one C call; elsewhere, without derivatives, the eager loop runs in pieces of
    :data:`PIECE_BYTES` worth of steps."""
    whole = 0 if block is None else us.shape[0] - us.shape[0] % block.steps
    ys = []
    for part in torch.split(us[:whole], block.steps) if whole else ():
        x, y = block.fn(e, nonlinearity, x, part)
        ys.append(y)
    rest = us[whole:]
    recorded = differentiated(x, us, *(t for t in pytree.tree_leaves(e)
                                       if isinstance(t, torch.Tensor)))
    done = None if recorded or act is None or not rest.shape[0] else native.rollout(
        e, act, x, rest)
    if done is not None:               # the whole remainder in one C call, no temporaries
        x, y = done
        ys.append(y)
    elif rest.shape[0]:
        # one piece (every differentiated rollout) is the sequence itself: no split op to record
        width = e.C1.shape[0] + e.A.shape[0] + e.C2.shape[0]
        piece = rest.shape[0] if recorded else max(   # (an empty batch: one piece)
            1, PIECE_BYTES // max(1, x.shape[0] * width * x.element_size()))
        for part in (rest,) if piece >= rest.shape[0] else torch.split(rest, piece):
            x, y = _steps(e, nonlinearity, x, part)
            ys.append(y)
    return x, ys[0] if len(ys) == 1 else torch.cat(ys)


class Chunk(torch.autograd.Function):
    """Steps of a rollout that autograd records as one node, recomputed in the backward pass.

    ``Chunk.apply(run, prepare, rebuild, nonlinearity, x, us, *leaves)``: ``run(e, nonlinearity,
    x, us) -> (x_next, ys)`` is the loop, ``leaves`` the explicit parameters' tensors,
    ``rebuild(leaves)`` the explicit parameters (:func:`_flatten`), ``nonlinearity`` theirs
    (prepared once per rollout, used by the forward pass) and ``prepare(e)`` rebuilds it from the
    backward pass's aliases.

    Forward runs without recording and saves only its inputs (the chunk's first state, its inputs
    and the explicit parameters, shared by every chunk). Backward rebuilds the nonlinearity from
    aliases of the saved inputs, recomputes the chunk and calls ``torch.autograd.grad``, both
    under the forward pass's autocast state (off: the models compute in their own dtype), also
    when the backward pass runs inside a ``torch.autocast`` region. With ``create_graph`` the
    aliases are views of the inputs (so the gradient stays a function of them and double backward
    is right); otherwise detached leaves (nothing outside the chunk is traversed).
    """

    @staticmethod
    def forward(ctx: Any, run: Callable[..., Any], prepare: Callable[[Any], Any],
                rebuild: Callable[[list], Any], nonlinearity: Callable[..., Any], x: torch.Tensor,
                us: torch.Tensor, *leaves: torch.Tensor) -> Any:
        ctx.run, ctx.prepare, ctx.rebuild = run, prepare, rebuild
        ctx.autocast = _autocast_state(x.device)
        ctx.save_for_backward(x, us, *leaves)
        return run(rebuild(list(leaves)), nonlinearity, x, us)

    @staticmethod
    def backward(ctx: Any, *cotangents: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        higher = torch.is_grad_enabled()                 # backward(create_graph=True)
        needs = ctx.needs_input_grad[4:]
        inputs = [(t.view_as(t) if higher else t.detach().requires_grad_(True)) if need
                  else t.detach() for t, need in zip(ctx.saved_tensors, needs)]
        with contextlib.ExitStack() as stack:
            for kind, enabled, dtype in ctx.autocast:     # as in the forward pass
                stack.enter_context(torch.autocast(kind, dtype=dtype, enabled=enabled))
            with torch.enable_grad():
                e = ctx.rebuild(inputs[2:])
                outputs = ctx.run(e, ctx.prepare(e), inputs[0], inputs[1])
            wanted = [t for t, need in zip(inputs, needs) if need]
            grads = iter(torch.autograd.grad(outputs, wanted, cotangents, create_graph=higher,
                                             allow_unused=True))
        return (None, None, None, None, *(next(grads) if need else None for need in needs))


def autocast_devices(device: torch.device) -> tuple[str, ...]:
    """The autocast device types that govern a computation on ``device``: the CPU's and
    ``device``'s, where autocast exists."""
    return tuple(dict.fromkeys(t for t in ("cpu", device.type)
                               if torch.amp.is_autocast_available(t)))


def _autocast_state(device: torch.device) -> list[tuple[str, bool, torch.dtype]]:
    """``(device type, enabled, dtype)`` of autocast for :func:`autocast_devices`, which a
    chunk's backward pass restores to recompute what its forward pass computed."""
    return [(k, torch.is_autocast_enabled(k), torch.get_autocast_dtype(k))
            for k in autocast_devices(device)]


def _flatten(e: Any) -> tuple[list[torch.Tensor], Callable[[list], Any]]:
    """The tensors of the explicit parameters ``e`` (nested NamedTuples, some fields ``None``)
    and ``rebuild(tensors) -> e``."""
    leaves, spec = pytree.tree_flatten(e)
    slots = [i for i, leaf in enumerate(leaves) if isinstance(leaf, torch.Tensor)]

    def rebuild(tensors: list) -> Any:
        filled = list(leaves)
        for i, t in zip(slots, tensors):
            filled[i] = t
        return pytree.tree_unflatten(filled, spec)

    return [leaves[i] for i in slots], rebuild


def _transforms() -> list[str]:
    """Names of the active ``torch.func`` transforms and of forward-mode AD, innermost last."""
    names = [str(i.key()).rsplit(".", 1)[-1].lower() for i in retrieve_all_functorch_interpreters()]
    return names + (["forward_ad"] if forward_ad._current_level >= 0 else [])


@torch.compiler.disable
def rollout(e: Any, nonlinearity: Callable[[torch.Tensor], torch.Tensor], x0: torch.Tensor,
            us: torch.Tensor, *, chunk: int | None = None, block: Block | None = None,
            prepare: Callable[[Any], Callable[[torch.Tensor], torch.Tensor]] | None = None,
            act: _spec.Activation | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x_T (batch, nx), ys (T, batch, ny))`` of the spec's loop, run the torch way.

    Parameters
    ----------
    e, nonlinearity
        The explicit parameters and the prepared ``v -> w`` map (:func:`r2dn._spec.nonlinearity`).
    x0 : torch.Tensor (batch, nx)
    us : torch.Tensor (T, batch, nu)
    chunk : int, optional
        Steps per recomputed chunk (:class:`Chunk`; ``None``: one ordinary autograd graph).
    block : callable, optional
        A compiled block of steps (:func:`compiled`) for the loop's whole blocks.
    prepare : callable, optional
        ``e -> nonlinearity``, which a chunk needs to rebuild the map from its own inputs in the
        backward pass (required with ``chunk``).
    act : r2dn._spec.Activation, optional
        The model's activation: where nothing differentiates the rollout, its steps then run as
        one C call (:func:`.native.rollout`), where that applies.

    Raises
    ------
    RuntimeError
        ``chunk`` under ``torch.func.grad`` (and ``vjp``, ``jacrev``, ``hessian``), which cannot
        see through a chunk's recomputation.

    Notes
    -----
    Excluded from ``torch.compile`` tracing (a graph break): the loop runs eagerly around the
    compiled block, so a new T neither unrolls nor recompiles anything. Under ``torch.func.vmap``
    or ``jvp`` and under forward-mode AD, chunks are ``torch.utils.checkpoint`` pieces instead
    (right numbers; the memory saving is only :class:`Chunk`'s).
    """
    if block is not None and e.A.requires_grad and not x0.requires_grad:
        # the compiled graphs depend on whether `x` requires grad: a detached copy of a constant
        # x0 that does makes the first step use the later steps' graphs (one compilation)
        x0 = x0.detach().requires_grad_(True)

    def run(e: Any, nonlinearity: Callable[..., Any], x: torch.Tensor,
            part: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return _loop(e, nonlinearity, x, part, block, act)

    if chunk is None or chunk >= us.shape[0]:
        return run(e, nonlinearity, x0, us)
    transforms = _transforms()
    if "grad" in transforms:
        raise RuntimeError(
            f"simulate(..., chunk={chunk}) under torch.func.grad (or vjp, jacrev, hessian): a "
            "chunk recomputes itself in torch.autograd's backward pass, which torch.func's reverse "
            "mode cannot follow. Call without `chunk=` under torch.func, or differentiate the "
            "chunked rollout with torch.autograd.grad / loss.backward().")
    x, ys = x0, []
    if transforms:
        for part in torch.split(us, chunk):
            x, y = checkpoint(run, e, nonlinearity, x, part, use_reentrant=False)
            ys.append(y)
        return x, torch.cat(ys)
    if prepare is None:
        raise TypeError("rollout(..., chunk=...) needs `prepare` (e -> nonlinearity) to rebuild "
                        "the map in the backward pass.")
    leaves, rebuild = _flatten(e)
    for part in torch.split(us, chunk):
        x, y = Chunk.apply(run, prepare, rebuild, nonlinearity, x, part, *leaves)
        ys.append(y)
    return x, torch.cat(ys)
