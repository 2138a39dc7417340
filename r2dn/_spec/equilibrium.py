"""The REN equilibrium ``w = sigma(D11 w + b)`` (D11 strictly lower triangular) and its exact
derivatives, for any array namespace. docs/math/ren.md#ren.

Everything here is one algorithm, triangular substitution in blocks of :data:`BLOCK` neurons,
applied to three maps (``L`` is the strictly lower triangle of D11, ``J = diag(sigma'(v))``):

* :func:`equilibrium`: ``w = sigma(L w + b)``, the nonlinear forward substitution;
* :func:`lower_solve`: ``y = (I - J L)^-1 s``, the same substitution with a linear map per neuron:
  the forward-mode (tangent) rule of the equilibrium, :func:`equilibrium_jvp`;
* :func:`upper_solve`: ``z = (I - L^T J)^-1 c``, its transpose (back substitution, last block
  first): the reverse-mode rule, :func:`equilibrium_vjp`.

A block step takes a fixed number of operations whatever ``nv`` is: one product brings every
solved block's contribution to the block's pre-activations, the block's ``BLOCK`` neurons are
solved one by one on (batch, BLOCK) columns, and the solved block is written back by joining
static slices. Blocks are stacked along a leading axis (:func:`substitution_plan`, which depends
on D11 only and can be built once per rollout), so the loop over blocks is a ``scan``: a Python
loop by default (:func:`python_scan`), ``jax.lax.scan`` in the JAX backend, which then traces one
block step whatever ``nv`` is.

The solution carried between block steps is kept *rotated*: at the step of block k its columns
start at block k (forward) or end at it (reverse), so the block is read and written at a fixed
position and the step shifts the carry by one block. The plan holds each block's rows (columns)
of L rotated to match. No in-place writes, no index that depends on the loop counter and no
product with a selection matrix: each map is linear in its linear inputs, every framework can
differentiate, transpose and batch it, and the work per block step is one (batch, nv) x
(nv, BLOCK) product plus the block's own neurons.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from array_api_compat import device as _device

from ._xp import Array, Namespace, zeros_like_shape
from .activations import Activation

#: neurons per block of the substitutions
BLOCK = 16

#: ``scan(step, carry, xs, reverse) -> carry``: ``carry = step(carry, x)`` for each slice ``x`` of
#: the stacked arrays ``xs`` along their first axis (last first when ``reverse``)
Scan = Callable[[Callable[[Any, tuple], Any], Any, tuple, bool], Any]


class SubstitutionPlan(NamedTuple):
    """D11 cut into blocks for the substitutions; K = ceil(nv / block), nvp = K * block.

    ``L`` (nvp, nvp): the zero-padded strict lower triangle of D11. ``rows`` (K, block, nvp):
    block k's rows of L, their columns rotated left by k blocks (the forward carry's order at
    block k); ``cols`` (K, nvp, block): block k's columns of L, their rows rotated left by k + 1
    blocks (the reverse carry's order at block k); ``diag`` (K, block, block): the diagonal
    blocks.
    """

    L: Array
    rows: Array
    cols: Array
    diag: Array


def python_scan(step: Callable[[Any, tuple], Any], carry: Any, xs: tuple,
                reverse: bool = False) -> Any:
    """The default :data:`Scan`: a Python loop over the leading axis of ``xs``."""
    n = xs[0].shape[0]
    for k in (range(n - 1, -1, -1) if reverse else range(n)):
        carry = step(carry, tuple(x[k, ...] for x in xs))
    return carry


def substitution_plan(D11: Array, *, xp: Namespace, block: int = BLOCK) -> SubstitutionPlan:
    """The D11-only work of the substitutions, done once (see :class:`SubstitutionPlan`).

    K = ceil(nv / block) blocks of ceil(nv / K) neurons each (nv is padded by fewer than K
    neurons, none when nv is at most ``block``).
    """
    nv = D11.shape[0]
    K = -(-nv // block)
    block = -(-nv // K)
    nvp = K * block
    L = xp.tril(D11, k=-1)
    if nvp > nv:
        L = xp.concat([L, zeros_like_shape((nv, nvp - nv), L, xp=xp)], axis=1)
        L = xp.concat([L, zeros_like_shape((nvp - nv, nvp), L, xp=xp)], axis=0)
    return SubstitutionPlan(L=L, **_block_views(L, K, block, xp=xp))


def _block_views(L: Array, K: int, B: int, *, xp: Namespace) -> dict[str, Array]:
    """``rows``, ``cols`` and ``diag`` of :class:`SubstitutionPlan`, each one gather from L with
    indices computed from shapes only, so the program does not grow with the number of blocks."""
    n = K * B
    if K == 1:          # one block: every view is L itself (rotations by a whole turn)
        whole = xp.reshape(L, (1, n, n))
        return dict(rows=whole, cols=whole, diag=whole)

    def ar(m: int) -> Array:
        return xp.arange(m, device=_device(L))

    k = xp.reshape(ar(K) * B, (K, 1, 1))                 # first neuron of each block
    i, j = xp.reshape(ar(B), (1, B, 1)), xp.reshape(ar(B), (1, 1, B))
    flat = xp.reshape(L, (n * n,))

    def gather(r: Array, c: Array) -> Array:
        return xp.take(flat, xp.reshape(r * n + c, (-1,)), axis=0)

    rows = gather(k + i, (xp.reshape(ar(n), (1, 1, n)) + k) % n)
    cols = gather((xp.reshape(ar(n), (1, n, 1)) + k + B) % n, k + j)
    diag = gather(k + i, k + j)
    return dict(rows=xp.reshape(rows, (K, B, n)), cols=xp.reshape(cols, (K, n, B)),
                diag=xp.reshape(diag, (K, B, B)))


def _blocks(x: Array, K: int, *, xp: Namespace) -> Array:
    """(batch, K * block) -> (K, batch, block): block k of every row, stacked for the scan."""
    return xp.permute_dims(xp.reshape(x, (x.shape[0], K, x.shape[1] // K)), (1, 0, 2))


def _pad(x: Array, nvp: int, *, xp: Namespace) -> Array:
    """(batch, nv) -> (batch, nvp) with zero columns appended. The zeros are ``zeros_like`` of
    x's own first columns (nvp - nv < nv), so an array sharded along the batch stays so, with no
    unsharded zeros joined to it (a product with an (nv, nvp) identity, which kept the sharding
    too, cost as many multiply-adds as the whole substitution at nv 200)."""
    if x.shape[1] == nvp:
        return x
    return xp.concat([x, xp.zeros_like(x[:, :nvp - x.shape[1]])], axis=1)


def _columns(x: Array) -> tuple[Array, ...]:
    """(batch, n) -> n columns (batch, 1), by slicing (which every batching transform supports;
    torch.func.vmap has no rule for the moveaxis of array-api-compat's ``unstack``)."""
    return tuple(x[:, i:i + 1] for i in range(x.shape[1]))


#: ``tri_solve(M, r, lower) -> x``: solves ``M x = r`` row by row for unit-triangular M (batch, n,
#: n), lower or upper, whose diagonal is taken as ones and never read (the BLAS "unit" convention),
#: r (batch, n): a framework's dense triangular solve, which the array API does not have. Given to
#: :func:`lower_solve` / :func:`upper_solve`, it solves a whole block of their linear substitution
#: at once instead of neuron by neuron.
TriSolve = Callable[[Array, Array, bool], Array]

#: ``block(a, pieces, diag) -> columns``: one block of a substitution. ``a`` (batch, block) is
#: what the solved blocks (and the offset) feed the block, ``pieces`` the block's slices of the
#: other inputs, ``diag`` (block, block) the block's own rows and columns of L; returns the
#: block's solution as a list of arrays to join along the columns.
BlockSolve = Callable[[Array, list, Array], list]

#: ``unstack(x) -> rows``: the rows ``x[i, :]`` of a 2-D array, as a framework's one-call split
#: (``torch.unbind``), which the array API's ``unstack`` is not under every transform. Given to
#: :func:`equilibrium`, it splits each block's feeds in one call instead of one view per neuron.
Unstack = Callable[[Array], Sequence[Array]]


def _rows(x: Array) -> tuple[Array, ...]:
    """The default :data:`Unstack`: one slice per row."""
    return tuple(x[i, :] for i in range(x.shape[0]))


def _neuron_by_neuron(neuron: Callable[[Array, tuple[Array, ...]], Array],
                      reverse: bool, unstack: Unstack = _rows) -> BlockSolve:
    """A :data:`BlockSolve` that solves the block's neurons one at a time, in order (last first
    when ``reverse``): ``y_i = neuron(a_i + sum_j diag[i, j] y_j, inputs_i)`` over the block's
    solved neurons j (``diag^T`` when ``reverse``)."""

    def block(a: Array, pieces: list, diag: Array) -> list:
        B = diag.shape[0]
        order = range(B - 1, -1, -1) if reverse else range(B)
        ins = list(zip(*(_columns(x) for x in pieces))) or [()] * B
        feeds = unstack(diag if reverse else diag.T)     # row i: neuron i's feed to the block
        ys = [None] * B
        for i in order:
            yi = neuron(a[:, i:i + 1], ins[i])
            ys[i] = yi
            if i != order[-1]:
                a = a + yi * feeds[i]
        return ys

    return block


def _substitute(plan: SubstitutionPlan, offset: Array | None, inputs: tuple[Array, ...],
                block: BlockSolve, *, xp: Namespace, scan: Scan, reverse: bool) -> Array:
    """The blocked substitution shared by the three maps; returns the padded (batch, nvp) result.

    Forward (``reverse=False``): block k's solution from what blocks before it feed it
    (``offset_k + (L y)_k`` over those blocks) by ``block``; reverse: the same with ``L^T``, last
    block first. ``offset`` (or None) and ``inputs`` are padded (batch, nvp) arrays.

    The carry Y is the solution so far, rotated as :class:`SubstitutionPlan` describes: forward,
    block k sits in its first ``block`` columns (still zero) and the step appends the solved block
    after the others; reverse, block k sits last and the step puts it first.
    """
    K, B = plan.diag.shape[0], plan.diag.shape[1]
    if K == 1:          # one block (a static shape): nothing solved before it feeds it, no carry
        a = offset if offset is not None else xp.zeros_like(inputs[0])
        ys = block(a, list(inputs), plan.diag[0, ...])
        return ys[0] if len(ys) == 1 else xp.concat(ys, axis=1)

    def step(Y, blk):
        panel, diag, *pieces = blk
        a = Y @ panel if reverse else Y @ panel.T      # what the solved blocks feed this block
        if offset is not None:
            a = a + pieces[0]
            pieces = pieces[1:]
        ys = block(a, pieces, diag)
        if reverse:
            return xp.concat(ys + [Y[:, :-B]], axis=1)
        return xp.concat([Y[:, B:]] + ys, axis=1)

    Y0 = xp.zeros_like((inputs or (offset,))[0])       # (batch, nvp), sharded like the inputs
    panels = plan.cols if reverse else plan.rows
    sliced = tuple(_blocks(x, K, xp=xp) for x in ((offset,) if offset is not None else ()) + inputs)
    return scan(step, Y0, (panels, plan.diag) + sliced, reverse)


def _unit_triangular(J: Array, T: Array) -> Array:
    """``I - diag(J_r) T`` for each row r of J (batch, n), T (n, n) strictly triangular, as
    :data:`TriSolve` reads it: (batch, n, n) off the diagonal, whose ones are implied."""
    return -(J[:, :, None] * T)


def equilibrium(D11: Array, b: Array, act: Activation, *, xp: Namespace,
                plan: SubstitutionPlan | None = None, scan: Scan = python_scan,
                unstack: Unstack = _rows) -> Array:
    """Solve ``w = sigma(D11 w + b)`` for strictly lower-triangular D11 by forward substitution.

    b (batch, nv) -> w (batch, nv); only the strict lower triangle of D11 is read. ``act.fn`` acts
    on one neuron's (batch, 1) pre-activation at a time, in order. ``plan`` is
    :func:`substitution_plan` of D11 (built here when not given); ``scan`` drives the loop over
    blocks; ``unstack`` splits a block's rows (:data:`Unstack`). No in-place writes.
    """
    plan = substitution_plan(D11, xp=xp) if plan is None else plan
    nv = b.shape[1]
    bp = _pad(b, plan.L.shape[0], xp=xp)
    w = _substitute(plan, bp, (), _neuron_by_neuron(lambda a, ins: act.fn(a), False, unstack),
                    xp=xp, scan=scan, reverse=False)
    return w[:, :nv]


def lower_solve(D11: Array, J: Array, s: Array, *, xp: Namespace,
                plan: SubstitutionPlan | None = None, scan: Scan = python_scan,
                tri_solve: TriSolve | None = None) -> Array:
    """``y = (I - diag(J) L)^-1 s`` row by row, L the strict lower triangle of D11.

    J, s (batch, nv) -> y (batch, nv): ``y_i = s_i + J_i (L y)_i``, a forward substitution.
    Linear in ``s``; its transpose in ``s`` is :func:`upper_solve`. With ``tri_solve``, each
    block's ``(I - J_k L_kk) y_k = s_k + J_k a_k`` is one dense triangular solve per row.
    """
    plan = substitution_plan(D11, xp=xp) if plan is None else plan
    nvp, nv = plan.L.shape[0], s.shape[1]
    if tri_solve is None:
        block = _neuron_by_neuron(lambda a, ins: ins[0] + ins[1] * a, False)
    else:
        def block(a: Array, pieces: list, diag: Array) -> list:
            sk, Jk = pieces
            return [tri_solve(_unit_triangular(Jk, diag), sk + Jk * a, True)]
    y = _substitute(plan, None, (_pad(s, nvp, xp=xp), _pad(J, nvp, xp=xp)), block,
                    xp=xp, scan=scan, reverse=False)
    return y[:, :nv]


def upper_solve(D11: Array, J: Array, c: Array, *, xp: Namespace,
                plan: SubstitutionPlan | None = None, scan: Scan = python_scan,
                tri_solve: TriSolve | None = None) -> Array:
    """``z = (I - L^T diag(J))^-1 c`` row by row: the transpose of :func:`lower_solve` in ``s``.

    J, c (batch, nv) -> z (batch, nv): ``z = c + L^T g`` with ``g = J z``, found by back
    substitution on g (last neuron first), then one product. With ``tri_solve``, each block's
    ``(I - J_k L_kk^T) g_k = J_k a_k`` is one dense triangular solve per row.
    """
    plan = substitution_plan(D11, xp=xp) if plan is None else plan
    nvp, nv = plan.L.shape[0], c.shape[1]
    cp = _pad(c, nvp, xp=xp)
    if tri_solve is None:
        block = _neuron_by_neuron(lambda a, ins: ins[0] * a, True)
    else:
        def block(a: Array, pieces: list, diag: Array) -> list:
            (Jk,) = pieces
            return [tri_solve(_unit_triangular(Jk, diag.T), Jk * a, False)]
    g = _substitute(plan, cp, (_pad(J, nvp, xp=xp),), block, xp=xp, scan=scan, reverse=True)
    return (cp + g @ plan.L)[:, :nv]


def tangent_system(D11: Array, w: Array, slope: Array, dD11: Array, db: Array, *,
                   xp: Namespace) -> tuple[Callable[[Array], Array], Array]:
    """The linear system the equilibrium's tangent solves: ``(I - J L) dw = J (dL w + db)``.

    Differentiating ``w = sigma(L w + b)`` (implicit-function theorem) with J = diag(sigma'(v))
    (``slope``, batch x nv) and L, dL the strict lower triangles of D11 and dD11. Returns
    ``(matvec, rhs)``: ``matvec(y) = y - J (L y)`` row by row (the operator that
    :func:`lower_solve` inverts and :func:`upper_solve` inverts transposed) and the right-hand
    side, for a framework's linear-solve primitive (``jax.lax.custom_linear_solve``).
    """
    def matvec(y: Array) -> Array:      # forms tril(D11) only if called (equilibrium_jvp: never)
        return y - slope * (y @ xp.tril(D11, k=-1).T)

    return matvec, slope * (w @ xp.tril(dD11, k=-1).T + db)


def equilibrium_jvp(D11: Array, w: Array, slope: Array, dD11: Array, db: Array, *,
                    xp: Namespace, plan: SubstitutionPlan | None = None,
                    scan: Scan = python_scan, tri_solve: TriSolve | None = None) -> Array:
    """Forward-mode derivative of :func:`equilibrium` by the implicit-function theorem.

    ``dw = (I - J L)^-1 J (dL w + db)`` (:func:`tangent_system`), one :func:`lower_solve`.
    Linear in (dD11, db).
    """
    _, rhs = tangent_system(D11, w, slope, dD11, db, xp=xp)
    return lower_solve(D11, slope, rhs, xp=xp, plan=plan, scan=scan, tri_solve=tri_solve)


def equilibrium_vjp(D11: Array, w: Array, slope: Array, gw: Array, *, xp: Namespace,
                    plan: SubstitutionPlan | None = None, scan: Scan = python_scan,
                    tri_solve: TriSolve | None = None) -> tuple[Array, Array]:
    """Reverse-mode derivative of :func:`equilibrium` by the implicit-function theorem.

    The transpose of :func:`equilibrium_jvp`: ``g_b = J (I - L^T J)^-1 g_w`` (one
    :func:`upper_solve`) and ``g_D11 = tril(g_b^T w, -1)`` (the forward map reads only the strict
    lower triangle of D11). Returns ``(g_D11, g_b)``; D11 (nv, nv), w, slope, gw (batch, nv).
    """
    gb = slope * upper_solve(D11, slope, gw, xp=xp, plan=plan, scan=scan, tri_solve=tri_solve)
    return xp.tril(gb.T @ w, k=-1), gb
