"""Compiled loops for the torch REN's triangular substitutions on the CPU.

The REN equilibrium is a substitution over its nv neurons, one after the other. Written with torch
operations (:mod:`r2dn._spec.equilibrium`), each neuron costs a few operator calls, so a step's
operator count grows with nv and an eager rollout is dispatch-bound. On CPU tensors the
:class:`~r2dn.torch.autograd.Equilibrium` Functions instead call one C loop per substitution
(:mod:`r2dn._native`'s ``substitution.c``): a fixed handful of operator calls per step whatever
nv is.
The maths, the derivatives and every transform stay the spec's: the loops replace the three
substitutions' *values* only, where the tensors are plain CPU float32/float64 tensors outside
``torch.func`` transforms and ``torch.compile`` tracing. Everywhere else (CUDA, vmap, compile)
the spec's torch operations run, with the same numbers up to rounding.

The C file is compiled once per machine with the system's C compiler (``$CC``, else ``cc``) into
``$R2DN_CACHE`` (default ``~/.cache/r2dn``) and loaded with ``ctypes``
(:func:`r2dn._native.c_library`); the loops release the GIL, and a large call splits its batch
rows between torch's intra-op threads.
Without a compiler, or with ``R2DN_NATIVE=0`` in the environment, :func:`status` says why and the
spec's operations run (with a one-time warning when a compiler was wanted and failed).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import Any

import torch

from r2dn import _native, _spec
from r2dn._native import ACTIVATIONS, LANES

_SUFFIX = {torch.float32: "f32", torch.float64: "f64"}
#: a loop call with at least this many multiply-adds (batch * nv^2 / 2) splits its batch rows
#: between torch's intra-op threads; below it, handing the rows out costs more than it saves
PARALLEL_WORK = 1 << 21


def status() -> str:
    """Whether the C loops run here: ``"compiled"``, or the reason they do not."""
    return _native.c_library()[1]


def _plain(t: torch.Tensor) -> bool:
    return (t.is_cpu and t.dtype in _SUFFIX and t.layout == torch.strided
            and type(t) in (torch.Tensor, torch.nn.Parameter)
            and not torch._C._functorch.is_functorch_wrapped_tensor(t))


def _usable(L: torch.Tensor, *rows: torch.Tensor) -> bool:
    """The loops apply: plain CPU tensors of one float dtype, outside ``torch.compile`` and
    ``torch.jit.trace`` (which would record the loop's output as a constant)."""
    return (not torch.compiler.is_compiling() and not torch.jit.is_tracing() and _plain(L)
            and all(_plain(r) and r.dtype == L.dtype and r.ndim == 2 for r in rows)
            and _native.c_library()[0] is not None)


@cache
def _pool(threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="r2dn-native")


if hasattr(os, "register_at_fork"):     # a forked child (a DataLoader worker) has no pool threads
    os.register_at_fork(after_in_child=_pool.cache_clear)


def _run(name: str, M: torch.Tensor, rows: tuple[torch.Tensor, ...], *extra: int) -> torch.Tensor:
    """``out`` (like ``rows[-1]``) from the loop ``r2dn_<name>_<dtype>``; M (ld, ld) holds the
    loop's triangle (L, or U = L^T for the forward substitutions) in its leading (n, n) block.

    With more than one torch intra-op thread and at least :data:`PARALLEL_WORK` multiply-adds,
    the batch rows are split between that many threads (the loops release the GIL; each row's
    arithmetic is the same either way)."""
    M = M.contiguous()
    rows = tuple(r.contiguous() for r in rows)
    out = torch.empty_like(rows[-1], memory_format=torch.contiguous_format)
    batch, n = out.shape
    fn = _functions(_native.c_library()[0])[name, M.dtype]
    ptrs, ld, row = [r.data_ptr() for r in rows + (out,)], M.shape[1], n * out.element_size()
    blocks = -(-batch // LANES)
    threads = min(torch.get_num_threads(), blocks)
    if threads > 1 and batch * n * n >= 2 * PARALLEL_WORK:
        cut = [min(batch, LANES * (blocks * i // threads)) for i in range(threads + 1)]
        failed = any(list(_pool(threads).map(      # list: every part has finished before `out`
            lambda lo, hi: fn(hi - lo, n, ld, M.data_ptr(), *(p + lo * row for p in ptrs), *extra),
            cut[:-1], cut[1:])))                    # is returned or dropped
    else:
        failed = fn(batch, n, ld, M.data_ptr(), *ptrs, *extra)
    if failed:
        raise MemoryError(f"r2dn: the C loop {name} could not allocate its {n} x {LANES} "
                          "accumulators")
    return out


@cache
def _functions(lib: Any) -> dict[tuple[str, torch.dtype], Any]:
    """The library's ctypes functions by (loop name, dtype)."""
    return {(name, dtype): getattr(lib, f"r2dn_{name}_{suffix}")
            for name in _native.ARGS for dtype, suffix in _SUFFIX.items()}


def transposed(L: torch.Tensor) -> torch.Tensor | None:
    """U = L^T, contiguous, for the forward substitutions' loops (which add rows of U), or None
    where the loops do not apply. A rollout builds it once, with its substitution plan."""
    return L.T.contiguous() if _usable(L) else None


def equilibrium(U: torch.Tensor, b: torch.Tensor, act: _spec.Activation) -> torch.Tensor | None:
    """``w = act(L w + b)`` (:func:`r2dn._spec.equilibrium`) by the C loop, or None where it
    does not apply. U: :func:`transposed` of the strict lower triangle L in a (ld, ld) array,
    ld >= nv (a :class:`r2dn._spec.SubstitutionPlan`'s ``L``); b (batch, nv)."""
    code = ACTIVATIONS.get(act.name)
    if code is None or not _usable(U, b):
        return None
    return _run("equilibrium", U, (b,), code)


def lower_solve(L: torch.Tensor, J: torch.Tensor, s: torch.Tensor) -> torch.Tensor | None:
    """``y = (I - J L)^-1 s`` (:func:`r2dn._spec.lower_solve`) by the C loop, or None. It
    transposes L on each call: it runs in double backward only, not in a rollout."""
    return _run("lower_solve", L.T, (J, s)) if _usable(L, J, s) else None


def upper_solve(L: torch.Tensor, J: torch.Tensor, c: torch.Tensor) -> torch.Tensor | None:
    """``z = (I - L^T J)^-1 c`` (:func:`r2dn._spec.upper_solve`) by the C loop, or None."""
    return _run("upper_solve", L, (J, c)) if _usable(L, J, c) else None
