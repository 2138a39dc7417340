"""Gradients of the torch backend: the REN equilibrium's implicit-function backward pass, whole
simulations under gradcheck (float64 finite differences), and torch.compile of ``simulate``.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import array_api_compat.torch as xpt  # noqa: E402
import r2dn.torch as rt  # noqa: E402
from r2dn import _spec  # noqa: E402


@pytest.fixture(autouse=True)
def _one_intra_op_thread():
    """These models are tiny: intra-op threads only add synchronisation, which costs ~10x on a
    loaded CI runner (a 4x4 tril waits ~20 ms for a descheduled OpenMP thread). Restored after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _smooth_user_activation(v):
    """A slope-[0, 1] callable with no derivative known to the spec (autograd supplies it)."""
    return 0.5 * torch.tanh(v) + 0.5 * torch.sigmoid(v)


def _equilibrium_inputs(nv: int = 4, batch: int = 3, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    D11 = torch.randn(nv, nv, generator=gen, dtype=torch.float64)
    b = torch.randn(batch, nv, generator=gen, dtype=torch.float64)
    return D11.requires_grad_(True), b.requires_grad_(True)


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "identity", _smooth_user_activation],
                         ids=["tanh", "sigmoid", "identity", "callable"])
def test_equilibrium_function_gradcheck(activation):
    act = _spec.activation(activation, xp=rt.TorchModel._xp)
    solver = rt.implicit_equilibrium(act)
    D11, b = _equilibrium_inputs()
    assert torch.autograd.gradcheck(solver, (D11, b))
    w = solver(D11, b)                                 # it is the equilibrium w = sigma(D11 w + b)
    lower = torch.tril(D11, -1)
    torch.testing.assert_close(w, act.fn(w @ lower.T + b), rtol=1e-12, atol=1e-12)


def test_equilibrium_backward_is_the_spec_formula_not_unrolled():
    """The graph holds one Equilibrium node, not nv unrolled steps, and matches autograd through
    the unrolled spec loop."""
    act = _spec.activation("tanh", xp=rt.TorchModel._xp)
    D11, b = _equilibrium_inputs(nv=5)
    w = rt.implicit_equilibrium(act)(D11, b)
    assert type(w.grad_fn).__name__ == "EquilibriumBackward"
    gw = torch.randn_like(w)
    g_implicit = torch.autograd.grad(w, (D11, b), gw)
    w_unrolled = _spec.equilibrium(D11, b, act, xp=rt.TorchModel._xp)
    g_unrolled = torch.autograd.grad(w_unrolled, (D11, b), gw)
    for gi, gu in zip(g_implicit, g_unrolled):
        torch.testing.assert_close(gi, gu, rtol=1e-12, atol=1e-12)


def test_relu_equilibrium_gradient_matches_unrolled():
    act = _spec.activation("relu", xp=rt.TorchModel._xp)
    D11, b = _equilibrium_inputs(nv=6, batch=5, seed=3)
    gw = torch.randn(5, 6, dtype=torch.float64)
    g1 = torch.autograd.grad(rt.implicit_equilibrium(act)(D11, b), (D11, b), gw)
    g2 = torch.autograd.grad(_spec.equilibrium(D11, b, act, xp=rt.TorchModel._xp), (D11, b), gw)
    for a, c in zip(g1, g2):
        torch.testing.assert_close(a, c, rtol=1e-12, atol=1e-12)


def _gradcheck_simulate(model, T: int = 3, batch: int = 2) -> bool:
    gen = torch.Generator().manual_seed(1)
    c = model.config
    x0 = torch.randn(batch, c.nx, generator=gen, dtype=torch.float64, requires_grad=True)
    us = torch.randn(T, batch, c.nu, generator=gen, dtype=torch.float64, requires_grad=True)
    fixed = {k: v.detach() for k, v in model.direct().items()}
    names = [k for k, v in fixed.items() if v.numel()]
    params = tuple(fixed[k].clone().requires_grad_(True) for k in names)

    def f(x0, us, *ps):
        return torch.func.functional_call(model, {**fixed, **dict(zip(names, ps))}, (x0, us))

    # fast_mode checks the Jacobian along random directions (vs finite differences) instead of
    # entry by entry: the same test of the backward formula at a fraction of the cost.
    return torch.autograd.gradcheck(f, (x0, us, *params), fast_mode=True)


@pytest.mark.parametrize("make", [
    lambda: rt.GeneralREN(2, 2, 3, 3, Q=-np.eye(3), S=0.1 * np.ones((2, 3)), R=np.eye(2),
                          activation="tanh", dtype="float64", seed=4),
    lambda: rt.LipschitzREN(3, 2, 3, 1, gamma=2.0, activation=_smooth_user_activation,
                            dtype="float64", seed=5),
    lambda: rt.LipschitzR2DN(2, 2, 3, 2, hidden=(3,), gamma=1.5, activation="tanh",
                             dtype="float64", seed=6),
], ids=["GeneralREN-tanh", "LipschitzREN-callable", "LipschitzR2DN-tanh"])
def test_simulate_gradcheck(make):
    model = make()
    assert _gradcheck_simulate(model)


def _graph_nodes(*outputs: torch.Tensor) -> dict[str, int]:
    """How many autograd nodes of each type lie behind ``outputs``."""
    counts: dict[str, int] = {}
    seen, stack = set(), [o.grad_fn for o in outputs]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        counts[type(node).__name__] = counts.get(type(node).__name__, 0) + 1
        stack.extend(f for f, _ in node.next_functions)
    return counts


@pytest.mark.parametrize("family", ["ContractingREN", "ContractingR2DN"])
def test_rollout_does_not_index_its_sequences_step_by_step(family):
    """Indexing a (T, ...) array at every step puts a select node per step in the graph, whose
    backward writes into a zero array of the whole sequence: quadratic in T (it was 30 % of a
    REN gradient at T = 128). The indexing nodes of the graph must not grow with T."""
    kw = {"hidden": (4,)} if family.endswith("R2DN") else {}
    model = getattr(rt, family)(2, 3, 5, 2, seed=0, **kw)

    def indexing_nodes(T):
        xT, ys = model.simulate(model.init_state(4), torch.randn(T, 4, 2))
        nodes = _graph_nodes(xT, ys)
        assert "EquilibriumBackward" in nodes or family.endswith("R2DN")
        return {k: v for k, v in nodes.items() if k.startswith(("Select", "Slice", "Index"))}

    assert indexing_nodes(6) == indexing_nodes(12)


def test_gradient_step_decreases_loss():
    """A training-style backward: gradients are finite and the loss decreases along -grad."""
    model = rt.ContractingREN(2, 3, 4, 1, activation="relu", dtype="float64", seed=2)
    us = torch.randn(6, 4, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    x0 = model.init_state(4)

    def loss():
        return model.simulate(x0, us)[1].square().mean()

    first = loss()
    first.backward()
    with torch.no_grad():
        for p in model.parameters():
            p -= 1e-3 * p.grad
        assert loss() < first


@pytest.mark.parametrize("make", [
    lambda: rt.ContractingR2DN(2, 3, 4, 1, hidden=(5,), seed=0),
    lambda: rt.LipschitzREN(2, 2, 2, 1, gamma=1.0, activation="tanh", seed=0),
], ids=["ContractingR2DN", "LipschitzREN"])
def test_compile_simulate_aot(make):
    """Dynamo capture and AOT-autograd tracing of simulate, forward and backward (fast backend)."""
    torch._dynamo.reset()
    model = make()
    gen = torch.Generator().manual_seed(0)
    x0, us = torch.randn(3, model.config.nx, generator=gen), torch.randn(2, 3, 2, generator=gen)
    compiled = torch.compile(model.simulate, backend="aot_eager")
    xT, ys = compiled(x0, us)
    xr, yr = model.simulate(x0, us)
    torch.testing.assert_close(ys, yr, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(xT, xr, rtol=1e-5, atol=1e-6)
    g_compiled = torch.autograd.grad(ys.sum(), list(model.parameters()), allow_unused=True)
    g_eager = torch.autograd.grad(yr.sum(), list(model.parameters()), allow_unused=True)
    for a, b in zip(g_compiled, g_eager):
        if b is not None:
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_compile_simulate_inductor():
    """The default inductor backend (C++ codegen): about 20-40 s of compilation on a 2-core CPU."""
    torch._dynamo.reset()
    model = rt.ContractingR2DN(2, 3, 4, 1, hidden=(5,), seed=0)
    gen = torch.Generator().manual_seed(0)
    x0, us = torch.randn(3, 3, generator=gen), torch.randn(4, 3, 2, generator=gen)
    xT, ys = torch.compile(model.simulate)(x0, us)
    xr, yr = model.simulate(x0, us)
    torch.testing.assert_close(ys, yr, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(xT, xr, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("nv", [5, 16, 37])
def test_block_triangular_solves_equal_the_neuron_loop(nv):
    """The torch kernel ``tri_solve`` solves each block of the linear substitutions at once; the
    spec's neuron-by-neuron loop (no kernel) is the reference. Both directions, nv with and without
    padding (37 = 3 blocks of 13, padded to 39), float64, to rounding; and the results solve their
    systems (I - J L) y = s and (I - L^T J) z = c, checked with dense products."""
    from r2dn.torch.primitives import tri_solve
    gen = torch.Generator().manual_seed(nv)
    D11 = torch.randn(nv, nv, generator=gen, dtype=torch.float64) / nv ** 0.5
    J, s = torch.rand(7, nv, generator=gen, dtype=torch.float64), torch.randn(7, nv, generator=gen,
                                                                              dtype=torch.float64)
    L = torch.tril(D11, -1)
    for solve, system in ((_spec.lower_solve, lambda y: y - J * (y @ L.T)),
                          (_spec.upper_solve, lambda z: z - (J * z) @ L)):
        loop = solve(D11, J, s, xp=xpt)
        blocks = solve(D11, J, s, xp=xpt, tri_solve=tri_solve)
        torch.testing.assert_close(blocks, loop, rtol=1e-13, atol=1e-13)
        torch.testing.assert_close(system(blocks), s, rtol=1e-12, atol=1e-12)
