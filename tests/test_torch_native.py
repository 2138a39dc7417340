"""The torch REN's C loops (:mod:`r2dn.torch.native`): each loop solves its substitution (checked
on the equation itself and against the spec's neuron loop), a model gives the same numbers with
and without them, a rollout's operator count per step does not grow with nv, and where the loops
cannot run the spec's torch operations do, with the reason given.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import array_api_compat.torch as xpt  # noqa: E402
import r2dn.torch as rt  # noqa: E402
from r2dn import _native, _spec  # noqa: E402
from r2dn.torch import native  # noqa: E402

needs_loops = pytest.mark.skipif(native.status() != "compiled",
                                 reason=f"the C loops do not run here: {native.status()}")
TOL = {torch.float64: 1e-13, torch.float32: 2e-6}


def _inputs(nv: int, dtype: torch.dtype, batch: int = 6):
    gen = torch.Generator().manual_seed(nv)
    D11 = torch.randn(nv, nv, generator=gen, dtype=dtype) / nv ** 0.5
    b = 2 * torch.randn(batch, nv, generator=gen, dtype=dtype)
    J = torch.rand(batch, nv, generator=gen, dtype=dtype)
    return D11, b, J


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-300)).item()


@needs_loops
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("nv", [1, 5, 7, 37])   # 37: the plan pads L to 38 (leading dimension)
@pytest.mark.parametrize("batch", [6, 37])      # 37: a block of LANES (32) rows and a partial one
def test_loops_solve_their_equations_and_equal_the_spec(nv, dtype, batch):
    D11, b, J = _inputs(nv, dtype, batch)
    plan = _spec.substitution_plan(D11, xp=xpt, block=16)
    L = torch.tril(D11, -1)
    for name in native.ACTIVATIONS:
        act = _spec.activation(name, xp=xpt)
        w = native.equilibrium(native.transposed(plan.L), b, act)
        assert _rel(w, act.fn(w @ L.T + b)) < TOL[dtype], name           # w = act(L w + b)
        assert _rel(w, _spec.equilibrium(D11, b, act, xp=xpt, plan=plan)) < TOL[dtype], name
    y = native.lower_solve(plan.L, J, b)
    assert _rel(y, b + J * (y @ L.T)) < TOL[dtype]                        # y = s + J (L y)
    assert _rel(y, _spec.lower_solve(D11, J, b, xp=xpt, plan=plan)) < TOL[dtype]
    z = native.upper_solve(plan.L, J, b)
    assert _rel(z, b + (J * z) @ L) < TOL[dtype]                          # z = c + L^T (J z)
    assert _rel(z, _spec.upper_solve(D11, J, b, xp=xpt, plan=plan)) < TOL[dtype]


def _rollout(model, us):
    model.zero_grad()
    x, y = model.simulate(torch.zeros(us.shape[1], 1, dtype=us.dtype), us)
    (x.square().mean() + y.square().mean()).backward()
    return [y.detach()] + [p.grad.clone() for p in model.parameters()]


@needs_loops
@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_model_equals_the_spec_operations(activation, monkeypatch):
    """A float64 REN's outputs and gradients, with the loops and with the spec's operations; a
    counter shows the loops ran (forward and backward) in the first and not in the second."""
    model = rt.ContractingREN(1, 1, 40, 1, activation=activation, seed=3, dtype=torch.float64)
    us = torch.randn(6, 5, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    calls = []
    run = native._run
    monkeypatch.setattr(native, "_run", lambda name, *a: calls.append(name) or run(name, *a))
    with_loops = _rollout(model, us)
    assert {"equilibrium", "upper_solve"} <= set(calls)
    calls.clear()
    monkeypatch.setattr(native, "_usable", lambda *a: False)
    without = _rollout(model, us)
    assert not calls
    for a, b in zip(with_loops, without):
        assert _rel(a, b) < 1e-12


def _operator_calls(model, us, grad: bool) -> int:
    from torch.profiler import profile

    x0 = torch.zeros(us.shape[1], 1)
    with profile() as prof:
        if grad:
            model.simulate(x0, us)[1].square().mean().backward()
        else:
            with torch.no_grad():
                model.simulate(x0, us)
    return sum(e.count for e in prof.key_averages() if e.key.startswith("aten::"))


@needs_loops
def test_operator_calls_do_not_grow_with_nv(monkeypatch):
    """torch.profiler's operator calls of an 8-step rollout at nv 200 within 1.5x of nv 20,
    forward and gradient (issue 16's target); with the loops off (the control) they grow with
    nv, so the check can fail."""
    us = torch.randn(8, 16, 1, generator=torch.Generator().manual_seed(0))
    models = {nv: rt.ContractingREN(1, 1, nv, 1, activation="tanh", seed=0, identity_output=True)
              for nv in (20, 200)}

    def growth(grad):
        calls = {nv: _operator_calls(m, us, grad) for nv, m in models.items()}
        return calls[200] / calls[20]

    assert growth(False) < 1.5 and growth(True) < 1.5
    monkeypatch.setattr(native, "_usable", lambda *a: False)
    assert growth(False) > 3


@pytest.fixture
def fresh_library():
    """:func:`r2dn._native.c_library` rebuilt under the test's environment, and again after it."""
    _native.c_library.cache_clear()
    yield
    _native.c_library.cache_clear()


def test_without_a_compiler_the_spec_runs_and_status_says_why(monkeypatch, fresh_library):
    monkeypatch.setenv("CC", "/nonexistent/r2dn-cc")
    assert "no C compiler" in native.status() and "/nonexistent/r2dn-cc" in native.status()
    D11, b, _ = _inputs(5, torch.float64)
    act = _spec.activation("tanh", xp=xpt)
    assert native.transposed(torch.tril(D11, -1)) is None
    assert native.equilibrium(torch.tril(D11, -1).T, b, act) is None
    model = rt.ContractingREN(1, 1, 5, 1, seed=0, dtype=torch.float64)
    assert torch.isfinite(model.simulate(torch.zeros(2, 1, dtype=torch.float64),
                                         torch.ones(3, 2, 1, dtype=torch.float64))[1]).all()


def test_turned_off_by_the_environment(monkeypatch, fresh_library):
    monkeypatch.setenv("R2DN_NATIVE", "0")
    assert native.status() == "turned off by R2DN_NATIVE=0"


def test_a_failing_compiler_warns_once_and_falls_back(monkeypatch, fresh_library, tmp_path):
    monkeypatch.setenv("CC", "false")                 # found on PATH; every compile fails
    monkeypatch.setenv("R2DN_CACHE", str(tmp_path))
    with pytest.warns(RuntimeWarning, match="could not compile the torch REN's C loops"):
        reason = native.status()
    assert reason.startswith("compiling failed")
    D11, b, J = _inputs(5, torch.float64)
    assert native.upper_solve(torch.tril(D11, -1), J, b) is None      # no second warning


def test_loops_leave_transforms_and_other_activations_to_the_spec():
    """Inside torch.func.vmap, on a user callable or on mixed dtypes the loops decline (None),
    so the spec's differentiable, batchable operations run."""
    D11, b, J = _inputs(5, torch.float64)
    L = torch.tril(D11, -1)
    user = _spec.activation(torch.tanh, xp=xpt)
    assert native.equilibrium(L.T.contiguous(), b, user) is None
    assert native.lower_solve(L, J.float(), b) is None
    seen = []
    torch.func.vmap(lambda bb: seen.append(native.lower_solve(L, J[:1], bb[None])) or bb)(b)
    assert seen == [None]


@needs_loops
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_tanh_is_accurate_to_a_few_units_in_the_last_place(dtype):
    """The loops' own vectorized tanh (substitution.c) against float64 torch.tanh over
    [-30, 30], subnormals, zero, infinities and NaN: within 3 units of the dtype's rounding
    (measured: 1.1 in float32, 1.4 in float64; torch's own float32 tanh 0.5), the right signs and
    limits, NaN kept. (A -0 input meets the equilibrium as L w + b = 0 + -0 = +0, as in the
    spec's loop.)"""
    x = torch.cat([torch.linspace(-30, 30, 100_001, dtype=torch.float64),
                   torch.logspace(-30, 1.5, 10_001, dtype=torch.float64),
                   torch.tensor([0.0, 1e-310, -1e-310, float("inf"), -float("inf"), float("nan")],
                                dtype=torch.float64)]).to(dtype)
    act = _spec.activation("tanh", xp=xpt)
    w = native.equilibrium(torch.zeros(1, 1, dtype=dtype), x[:, None], act)[:, 0]   # nv = 1
    exact = torch.tanh(x.double())
    finite = ~exact.isnan()
    ulp = torch.finfo(dtype).eps * exact.abs().clamp_min(torch.finfo(dtype).tiny)
    assert ((w.double() - exact).abs()[finite] / ulp[finite]).max() <= 3
    assert w[~finite].isnan().all()
    signed = finite & (x != 0)                 # +-1e-310 are +-0 in float32
    assert torch.equal(torch.signbit(w[signed]), torch.signbit(exact[signed]))
    assert w[-3:-1].tolist() == [1.0, -1.0]


@needs_loops
@pytest.mark.parametrize("act", ["sigmoid", "tanh"])
def test_rows_split_between_threads_give_the_same_numbers(monkeypatch, act):
    """Above PARALLEL_WORK, with two intra-op threads, the rows go to two loop calls (counted),
    and every output is bitwise the one-thread output."""
    D11, b, J = _inputs(24, torch.float64, batch=40)
    L = _spec.substitution_plan(D11, xp=xpt).L
    act = _spec.activation(act, xp=xpt)

    def outputs():
        return (native.equilibrium(native.transposed(L), b, act), native.lower_solve(L, J, b),
                native.upper_solve(L, J, b))

    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = outputs()
        torch.set_num_threads(2)
        monkeypatch.setattr(native, "PARALLEL_WORK", 1)
        used = []
        pool = native._pool
        monkeypatch.setattr(native, "_pool", lambda n: used.append(n) or pool(n))
        two = outputs()
    finally:
        torch.set_num_threads(threads)
    assert used == [2, 2, 2]
    assert all(torch.equal(a, c) for a, c in zip(one, two))


@needs_loops
@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning",
                            "ignore:`torch.jit.trace` is deprecated:DeprecationWarning")
def test_jit_trace_records_the_torch_operations():
    """Under ``torch.jit.trace`` the loops decline, so the trace records the substitution's torch
    operations and gives the model's output on an input it was not traced with."""
    model = rt.ContractingREN(1, 1, 8, 1, seed=0, dtype=torch.float64).requires_grad_(False)
    gen = torch.Generator().manual_seed(0)
    x = torch.zeros(3, 1, dtype=torch.float64)
    u, u2 = (torch.randn(3, 1, dtype=torch.float64, generator=gen) for _ in range(2))
    traced = torch.jit.trace(lambda x, u: model(x, u)[1], (x, u), check_trace=False)
    assert _rel(traced(x, u2), model(x, u2)[1]) < 1e-13


@needs_loops
def test_the_transposed_triangle_is_built_once_per_rollout(monkeypatch):
    """The forward loop's U = L^T is per-rollout work: one :func:`native.transposed` for a
    6-step rollout (recorded by autograd: one without gradients is one rollout call), whose six
    equilibrium calls all get it."""
    model = rt.ContractingREN(1, 1, 12, 1, seed=0, dtype=torch.float64)
    built, given = [], []
    transposed, equilibrium = native.transposed, native.equilibrium
    monkeypatch.setattr(native, "transposed", lambda L: built.append(transposed(L)) or built[-1])
    monkeypatch.setattr(native, "equilibrium",
                        lambda U, b, act: given.append(U) or equilibrium(U, b, act))
    model.simulate(torch.zeros(2, 1, dtype=torch.float64), torch.ones(6, 2, 1, dtype=torch.float64))
    assert len(built) == 1 and len(given) == 6 and all(U is built[0] for U in given)


@needs_loops
def test_without_derivatives_the_loop_runs_without_the_autograd_function(monkeypatch):
    """Under torch.no_grad, where the whole rollout cannot run in C (here: made so), the REN hook
    calls the equilibrium's C loop directly (Equilibrium.apply costs more than the loop at small
    nv); with autograd recording, forward-mode AD or torch.func it goes through Equilibrium, so
    every derivative stays the implicit one. Same outputs either way."""
    from r2dn.torch import autograd

    monkeypatch.setattr(native, "rollout", lambda *a: None)
    model = rt.ContractingREN(1, 1, 12, 1, seed=0, dtype=torch.float64)
    x0, us = torch.zeros(3, 1, dtype=torch.float64), torch.ones(4, 3, 1, dtype=torch.float64)
    applied = []
    apply = autograd.Equilibrium.apply
    monkeypatch.setattr(autograd.Equilibrium, "apply", lambda *a: applied.append(1) or apply(*a))
    with torch.no_grad():
        y_plain = model.simulate(x0, us)[1]
    assert not applied
    y_graph = model.simulate(x0, us)[1]
    assert len(applied) == 4 and y_graph.requires_grad
    assert torch.equal(y_plain, y_graph.detach())
    applied.clear()
    with torch.no_grad(), torch.autograd.forward_ad.dual_level():
        model.simulate(x0, torch.autograd.forward_ad.make_dual(us, torch.ones_like(us)))
    assert len(applied) == 4


# -- a rollout's whole time loop in C (native.rollout), where nothing differentiates ------------

ROLLOUT_MODELS = {      # every family, every activation of the loops, nv 1 and 200, both presets
    "contracting-ren-tanh-nv200": lambda dt: rt.ContractingREN(
        1, 1, 200, 1, activation="tanh", identity_output=True, seed=0, dtype=dt),
    "general-ren-sigmoid": lambda dt: rt.GeneralREN(
        2, 3, 37, 2, Q=-np.eye(2), S=0.2 * np.ones((2, 2)), R=np.eye(2), activation="sigmoid",
        seed=1, dtype=dt),
    "lipschitz-ren-relu-nv1": lambda dt: rt.LipschitzREN(3, 4, 1, 2, gamma=2.0, activation="relu",
                                                         seed=2, dtype=dt),
    "passive-ren-identity": lambda dt: rt.PassiveREN(2, 2, 5, 2, nu_index=0.1,
                                                     activation="identity", seed=3, dtype=dt),
    "contracting-r2dn-relu": lambda dt: rt.ContractingR2DN(
        1, 1, 16, 1, hidden=(96, 40, 96), activation="relu", identity_output=True, seed=4,
        dtype=dt),
    "lipschitz-r2dn-tanh": lambda dt: rt.LipschitzR2DN(2, 3, 4, 2, hidden=(7,), gamma=3.0,
                                                       activation="tanh", seed=5, dtype=dt),
    "general-r2dn-sigmoid-no-hidden": lambda dt: rt.GeneralR2DN(
        2, 3, 5, 2, hidden=(), Q=-np.eye(2), S=0.1 * np.ones((2, 2)), R=np.eye(2),
        activation="sigmoid", seed=6, dtype=dt),
    "contracting-r2dn-robustnn": lambda dt: rt.ContractingR2DN(
        2, 2, 3, 2, hidden=(5, 6), activation="tanh", compat="robustnn", seed=7, dtype=dt),
}


def _count_rollouts(monkeypatch) -> list:
    calls = []
    rollout = native.rollout
    monkeypatch.setattr(native, "rollout", lambda *a: calls.append(1) or rollout(*a))
    return calls


@needs_loops
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", list(ROLLOUT_MODELS))
def test_a_rollout_without_gradients_is_one_c_call_equal_to_the_numpy_reference(name, dtype,
                                                                                  monkeypatch):
    """Under torch.no_grad the whole sequence is one C call (counted; for an R2DN where torch
    exports its BLAS), whose state and outputs equal the float64 NumPy model with the same
    parameters (a 37-row batch: one block of LANES rows and a partial one)."""
    import r2dn.numpy as rn

    model = ROLLOUT_MODELS[name](dtype)
    ref = rn.convert(model, dtype="float64")
    c = model.config
    gen = torch.Generator().manual_seed(5)
    x0 = torch.randn(37, c.nx, generator=gen, dtype=torch.float64)
    us = torch.randn(9, 37, c.nu, generator=gen, dtype=torch.float64)
    calls = _count_rollouts(monkeypatch)
    with torch.no_grad():
        dt = next(model.parameters()).dtype
        xT, ys = model.simulate(x0.to(dt), us.to(dt))
    assert calls == [1]
    if c.family == "ren" or native._gemm() is not None:
        assert native.rollout(model.explicit(), model._backend.activation(c.activation),
                              x0.to(dt), us.to(dt)) is not None
    x_ref, y_ref = ref.simulate(x0.numpy(), us.numpy())
    tol = 1e-12 if dtype == "float64" else 1e-5
    assert _rel(xT.double(), torch.as_tensor(x_ref)) < tol
    assert _rel(ys.double(), torch.as_tensor(y_ref)) < tol


@needs_loops
@pytest.mark.parametrize("family", ["ren", "r2dn"])
def test_the_rollout_falls_back_where_it_cannot_run(family, monkeypatch):
    """With autograd recording, under torch.func, for a user activation, and with the loops off,
    the spec's loop runs (no C rollout), with the same numbers."""
    make = ((lambda act: rt.ContractingREN(2, 2, 6, 1, activation=act, seed=0, dtype="float64"))
            if family == "ren" else
            (lambda act: rt.ContractingR2DN(2, 2, 6, 1, hidden=(5,), activation=act, seed=0,
                                            dtype="float64")))
    model = make("tanh")
    x0, us = torch.zeros(3, 2, dtype=torch.float64), torch.ones(4, 3, 2, dtype=torch.float64)
    ran = []
    rollout = native.rollout
    monkeypatch.setattr(native, "rollout", lambda *a: ran.append(rollout(*a) is not None))
    with torch.no_grad():
        y_c = model.simulate(x0, us)[1]
    monkeypatch.setattr(native, "rollout", rollout)
    calls = _count_rollouts(monkeypatch)
    y_graph = model.simulate(x0, us)[1]
    y_vmap = torch.func.vmap(lambda x, u: model.simulate(x[None], u[:, None])[1][:, 0],
                             in_dims=(0, 1))(x0, us)
    user = make(torch.tanh)
    with torch.no_grad():
        y_user = user.simulate(x0, us)[1]
    assert ran == [True] and calls == [1]        # the user activation's call declines
    monkeypatch.setattr(native, "_usable", lambda *a: False)
    with torch.no_grad():
        y_off = model.simulate(x0, us)[1]
    for y in (y_graph.detach(), y_vmap.movedim(0, 1), y_user, y_off):
        assert _rel(y, y_c) < 1e-13


@needs_loops
@pytest.mark.parametrize("family", ["ren", "r2dn"])
def test_rollout_operator_calls_do_not_grow_with_the_sequence(family):
    """The time loop is inside the one call: a 64-step rollout without gradients makes as many
    operator calls as an 8-step one."""
    model = (rt.ContractingREN(1, 1, 30, 1, activation="tanh", seed=0, identity_output=True)
             if family == "ren" else
             rt.ContractingR2DN(1, 1, 8, 1, hidden=(16, 16), seed=0, identity_output=True))
    if family == "r2dn" and native._gemm() is None:
        pytest.skip("torch exports no sgemm_64 here: the R2DN's rollout runs torch operations")
    gen = torch.Generator().manual_seed(0)
    short, long = (torch.randn(t, 16, 1, generator=gen) for t in (8, 64))
    assert _operator_calls(model, long, False) == _operator_calls(model, short, False)


@needs_loops
def test_rollout_rows_split_between_threads_give_the_same_numbers(monkeypatch):
    """Above PARALLEL_WORK, with two intra-op threads, a REN rollout's rows go to two calls, and
    its outputs are bitwise the one-thread outputs."""
    model = rt.ContractingREN(2, 3, 24, 2, activation="tanh", seed=0, dtype="float64")
    gen = torch.Generator().manual_seed(1)
    x0 = torch.randn(40, 3, generator=gen, dtype=torch.float64)
    us = torch.randn(5, 40, 2, generator=gen, dtype=torch.float64)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        with torch.no_grad():
            one = model.simulate(x0, us)
        torch.set_num_threads(2)
        monkeypatch.setattr(native, "PARALLEL_WORK", 1)
        used = []
        pool = native._pool
        monkeypatch.setattr(native, "_pool", lambda n: used.append(n) or pool(n))
        with torch.no_grad():
            two = model.simulate(x0, us)
    finally:
        torch.set_num_threads(threads)
    assert used == [2]
    assert all(torch.equal(a, b) for a, b in zip(one, two))
