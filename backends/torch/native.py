"""Compiled loops for the torch REN's triangular substitutions on the CPU.

The REN equilibrium is a substitution over its nv neurons, one after the other. Written with torch
operations (:mod:`r2dn._spec.equilibrium`), each neuron costs a few operator calls, so a step's
operator count grows with nv and an eager rollout is dispatch-bound. On CPU tensors the
:class:`~r2dn.torch.autograd.Equilibrium` Functions instead call one C loop per substitution
(:mod:`r2dn._native`'s ``substitution.c``): a fixed handful of operator calls per step whatever
nv is. Where nothing can differentiate a rollout (``torch.no_grad``, no forward-mode level, no
``torch.func`` transform), :func:`rollout` runs a REN's or an R2DN's whole time loop in one C
call (the R2DN's layer products by torch's own BLAS): no operator call per step at all.
The maths, the derivatives and every transform stay the spec's: the loops replace the
substitutions' (and an undifferentiated rollout's) *values* only, where the tensors are plain CPU
float32/float64 tensors outside ``torch.func`` transforms and ``torch.compile`` tracing.
Everywhere else (CUDA, vmap, compile) the spec's torch operations run, with the same numbers up to
rounding.

The C file is compiled once per machine with the system's C compiler (``$CC``, else ``cc``) into
``$R2DN_CACHE`` (default ``~/.cache/r2dn``) and loaded with ``ctypes``
(:func:`r2dn._native.c_library`); the loops release the GIL, and a large call splits its batch
rows between torch's intra-op threads.
Without a compiler, or with ``R2DN_NATIVE=0`` in the environment, :func:`status` says why and the
spec's operations run (with a one-time warning when a compiler was wanted and failed).
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path
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


def _by_rows(name: str, batch: int, work: int, call: Callable[[int, int], int]) -> None:
    """``call(lo, hi)`` (a C loop over the batch rows ``lo:hi``; nonzero when it could not
    allocate its work arrays) over every row: at once, or, with more than one torch intra-op
    thread and at least 2 x :data:`PARALLEL_WORK` multiply-adds (``work``), in parts of whole
    LANES-row blocks, one per thread (the loops release the GIL; each row's arithmetic is the
    same either way)."""
    blocks = -(-batch // LANES)
    threads = min(torch.get_num_threads(), blocks)
    if threads > 1 and work >= 2 * PARALLEL_WORK:
        cut = [min(batch, LANES * (blocks * i // threads)) for i in range(threads + 1)]
        failed = any(list(_pool(threads).map(call, cut[:-1], cut[1:])))   # list: every part
    else:                                                                  # has finished here
        failed = call(0, batch)
    if failed:
        raise MemoryError(f"r2dn: the C loop {name} could not allocate its work arrays")


def _run(name: str, M: torch.Tensor, rows: tuple[torch.Tensor, ...], *extra: int) -> torch.Tensor:
    """``out`` (like ``rows[-1]``) from the loop ``r2dn_<name>_<dtype>``; M (ld, ld) holds the
    loop's triangle (L, or U = L^T for the forward substitutions) in its leading (n, n) block."""
    M = M.contiguous()
    rows = tuple(r.contiguous() for r in rows)
    out = torch.empty_like(rows[-1], memory_format=torch.contiguous_format)
    batch, n = out.shape
    fn = _functions(_native.c_library()[0])[name, M.dtype]
    ptrs, ld, row = [r.data_ptr() for r in rows + (out,)], M.shape[1], n * out.element_size()
    _by_rows(name, batch, batch * n * n, lambda lo, hi: fn(
        hi - lo, n, ld, M.data_ptr(), *(p + lo * row for p in ptrs), *extra))
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


def _lti(e: Any) -> list[torch.Tensor]:
    """A recurrent model's linear part in the C rollouts' order and layout: C1^T, D12^T and bv
    (the neurons' inputs are sums of their rows), A, B1, B2, bx, C2, D21, D22, by (each output
    row a dot product)."""
    return [t.contiguous() for t in (e.C1.T, e.D12.T, e.bv, e.A, e.B1, e.B2, e.bx, e.C2, e.D21,
                                     e.D22, e.by)]


def _pointers(tensors: list[torch.Tensor]) -> ctypes.Array:
    return (ctypes.c_void_p * len(tensors))(*(t.data_ptr() for t in tensors))


@cache
def _gemm() -> dict[torch.dtype, int] | None:
    """The addresses of the BLAS ``sgemm_64`` and ``dgemm_64`` (the Fortran interface with 64-bit
    integers) that torch's own CPU library exports (MKL's, in the x86-64 Linux wheels), or None:
    the R2DN's products must be the BLAS torch itself runs, not a slower one of ours."""
    for path in sorted((Path(torch.__file__).parent / "lib").glob("libtorch_cpu.*")):
        try:
            lib = ctypes.CDLL(str(path))         # already loaded by torch: the same library
            return {dtype: ctypes.cast(getattr(lib, f"{letter}gemm_64"), ctypes.c_void_p).value
                    for dtype, letter in ((torch.float32, "s"), (torch.float64, "d"))}
        except (OSError, AttributeError):        # not loadable, or no ILP64 gemm exported
            continue
    return None


def rollout(e: Any, act: _spec.Activation, x0: torch.Tensor,
            us: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(x_T, ys)`` of a REN's or an R2DN's whole rollout from ``x0 (batch, nx)`` over ``us (T,
    batch, nu)`` by one C call, or None where it does not apply: a named activation of the C
    loops, plain CPU float32/float64 tensors and, for an R2DN, torch's BLAS (:func:`_gemm`). The
    caller checks that nothing differentiates the rollout.

    Each step is :func:`r2dn._spec.simulate_loop`'s: ``v = C1 x + D12 u + bv``, ``w = phi(v)``
    (the REN's equilibrium ``w = act(D11 w + v)``, or the R2DN's fused LBDN, whose products the
    loop hands to torch's BLAS), ``y = C2 x + D21 w + D22 u + by``, ``x+ = A x + B1 w + B2 u +
    bx``. A step costs no operator call and no memory but its output: an eager rollout without
    gradients pays torch's dispatch once per sequence instead of the cell's operations in every
    step."""
    lti = _lti(e)
    ren = isinstance(e, _spec.RENExplicit)
    if (act.name not in ACTIVATIONS or not _usable(e.A, x0)
            or not all(_plain(t) and t.dtype == x0.dtype for t in (us, *lti))
            or (ren and not _usable(e.D11)) or (not ren and _gemm() is None)):
        return None
    x0, us = x0.contiguous(), us.contiguous()
    steps, batch, nu = us.shape
    nx, nv, ny = e.A.shape[0], e.C1.shape[0], e.C2.shape[0]
    ys, xT = x0.new_empty((steps, batch, ny)), x0.new_empty((batch, nx))
    lib, code, table = _native.c_library()[0], ACTIVATIONS[act.name], _pointers(lti)
    if not ren:
        return _r2dn(e, code, x0, us, ys, xT, table)
    # the loop reads U = D11^T's strict upper triangle only (D11's strict lower one)
    fn, U, size = _functions(lib)["ren_rollout", x0.dtype], e.D11.T.contiguous(), x0.element_size()

    def rows(lo: int, hi: int) -> int:
        at = [t.data_ptr() + lo * w * size for t, w in ((x0, nx), (us, nu), (ys, ny), (xT, nx))]
        return fn(steps, hi - lo, batch, nu, nx, nv, ny, U.data_ptr(), table, *at, code)

    _by_rows("ren_rollout", batch, steps * batch * nv * nv, rows)
    return xT, ys


def _r2dn(e: Any, code: int, x0: torch.Tensor, us: torch.Tensor, ys: torch.Tensor,
          xT: torch.Tensor, table: ctypes.Array) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`rollout` of an R2DN: its fused LBDN's layers (:func:`r2dn._spec.lbdn_fuse`) as
    row-major ``W^T`` and biases; one call over every row (the BLAS threads the products)."""
    fused = _spec.lbdn_fuse(e.network)
    weights = [W.contiguous() for W in (*fused.weights_t, fused.W_out_t)]
    biases = [c.contiguous() for c in (*fused.biases, fused.c_out)]
    widths = (ctypes.c_int64 * (len(weights) + 1))(weights[0].shape[0],
                                                   *(W.shape[1] for W in weights))
    steps, batch, nu = us.shape
    failed = _functions(_native.c_library()[0])["r2dn_rollout", x0.dtype](
        steps, batch, nu, e.A.shape[0], e.C1.shape[0], e.C2.shape[0], len(weights) - 1, widths,
        _pointers(weights), _pointers(biases), table, x0.data_ptr(), us.data_ptr(), ys.data_ptr(),
        xT.data_ptr(), code, _gemm()[x0.dtype])
    if failed:
        raise MemoryError("r2dn: the C loop r2dn_rollout could not allocate its work arrays")
    return xT, ys
