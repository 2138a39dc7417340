"""The torch backend inside torch's machinery: sequences through ``forward``, ``chunk=``,
torch.func (vmap, jvp, jacfwd, double backward, ensembles), autocast, torch.compile, device/dtype.

References: the float64 NumPy models, central differences, loops of single calls.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import r2dn  # noqa: E402
import r2dn.numpy as rnp  # noqa: E402
import r2dn.torch as rt  # noqa: E402
from torch.func import functional_call, jacfwd, jacrev, jvp, stack_module_state, vmap  # noqa: E402

F64 = torch.float64


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _r2dn(seed=0, **kw):
    return rt.ContractingR2DN(2, 3, 4, 2, hidden=(5,), seed=seed, dtype=F64, **kw)


def _ren(seed=0):
    return rt.ContractingREN(2, 3, 4, 2, seed=seed, dtype=F64)


def _data(batch=5, T=10, seed=1, nx=3, nu=2):
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, nx, generator=gen, dtype=F64),
            torch.randn(T, batch, nu, generator=gen, dtype=F64))


def _rel(a, b):
    a, b = a.detach(), b.detach()
    return float((a - b).norm() / b.norm()) if b.norm() > 0 else float(a.norm())


# -- 1. the sequence goes through forward -------------------------------------------------------

@pytest.mark.parametrize("make", [_r2dn, _ren], ids=["r2dn", "ren"])
def test_forward_of_a_sequence_is_simulate_and_the_numpy_reference(make):
    model = make()
    x0, us = _data()
    xT, ys = model(x0, us)
    assert ys.shape == (10, 5, 2) and xT.shape == (5, 3)
    xs2, ys2 = model.simulate(x0, us)
    assert torch.equal(xT, xs2) and torch.equal(ys, ys2)
    ref = rnp.convert(model)
    xT_np, ys_np = ref.simulate(x0.numpy(), us.numpy())
    np.testing.assert_allclose(ys.detach().numpy(), ys_np, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(xT.detach().numpy(), xT_np, rtol=1e-12, atol=1e-12)
    x1, y1 = model(x0, us[0])                      # a 2-D u is still one step
    assert y1.shape == (5, 2)
    torch.testing.assert_close(y1, ys[0], rtol=1e-12, atol=1e-12)


def test_forward_hooks_see_the_sequence():
    model, seen = _r2dn(), []
    model.register_forward_hook(lambda mod, args, out: seen.append(args[1].shape))
    x0, us = _data(T=4)
    model.simulate(x0, us)
    assert seen == [torch.Size([4, 5, 2])]


@pytest.mark.parametrize("make", [_r2dn, _ren], ids=["r2dn", "ren"])
def test_inference_runs_in_pieces_with_the_numpy_reference_numbers(make, monkeypatch):
    """Under torch.no_grad the eager loop runs the spec's loop over pieces of at most
    PIECE_BYTES of temporaries (here 3 steps: 3 x batch 5 x (nv 4 + nx 3 + ny 2) x 8 bytes);
    outputs equal the NumPy reference. With autograd recording it stays one piece; with grad
    mode on but nothing requiring grad, nothing records, so pieces again. (Where the C rollout
    applies it runs without temporaries, in one call: tests/test_torch_native.py; here it is the
    spec's loop, as where the C rollout cannot run.)"""
    from r2dn.torch import native, rollout

    monkeypatch.setattr(native, "rollout", lambda *a: None)
    model = make()
    x0, us = _data()
    monkeypatch.setattr(rollout, "PIECE_BYTES", 3 * 5 * 9 * 8)
    pieces = []
    steps = rollout._steps
    monkeypatch.setattr(rollout, "_steps", lambda e, nl, x, u: pieces.append(len(u)) or
                        steps(e, nl, x, u))
    with torch.no_grad():
        xT, ys = model.simulate(x0, us)
    assert pieces == [3, 3, 3, 1]
    xT_np, ys_np = rnp.convert(model).simulate(x0.numpy(), us.numpy())
    np.testing.assert_allclose(ys.numpy(), ys_np, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(xT.numpy(), xT_np, rtol=1e-12, atol=1e-12)
    pieces.clear()
    model.simulate(x0, us)
    assert pieces == [10]
    pieces.clear()
    model.requires_grad_(False)
    model.simulate(x0, us)
    assert pieces == [3, 3, 3, 1]


@pytest.mark.parametrize("make", [_r2dn, _ren], ids=["r2dn", "ren"])
def test_an_empty_batch_runs_without_gradients(make, monkeypatch):
    """Batch 0 under torch.no_grad gives empty outputs, in C and in the spec's pieces (whose size
    divided by the batch's bytes)."""
    from r2dn.torch import native

    model = make()
    x0, us = _data()
    for declined in (False, True):
        if declined:
            monkeypatch.setattr(native, "rollout", lambda *a: None)
        with torch.no_grad():
            xT, ys = model.simulate(x0[:0], us[:, :0])
        assert xT.shape == (0, x0.shape[1]) and ys.shape == (us.shape[0], 0, ys.shape[2])


# -- 5. chunk= ----------------------------------------------------------------------------------

@pytest.mark.parametrize("make", [_r2dn, _ren], ids=["r2dn", "ren"])
@pytest.mark.parametrize("chunk", [1, 3, 10, 50])
def test_chunked_rollout_has_the_same_outputs_and_gradients(make, chunk):
    model = make()
    x0, us = _data(T=10)
    x0.requires_grad_(True), us.requires_grad_(True)
    params = [x0, us, *model.parameters()]

    def run(**kw):
        xT, ys = model.simulate(x0, us, **kw)
        loss = (ys.sin() ** 2).sum() + (xT ** 2).sum()
        return xT, ys, torch.autograd.grad(loss, params)

    xT, ys, grads = run()
    xTc, ysc, gradsc = run(chunk=chunk)
    torch.testing.assert_close(ysc, ys, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(xTc, xT, rtol=1e-12, atol=1e-12)
    for g, gc in zip(grads, gradsc):
        torch.testing.assert_close(gc, g, rtol=1e-12, atol=1e-12)


def _saved_numel(model, x0, us, **kw):
    """Elements autograd saves for the backward pass of one rollout."""
    total = [0]

    def pack(t):
        total[0] += t.numel()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model.simulate(x0, us, **kw)
    return total[0]


def test_chunk_is_checkpointed_and_validated():
    model = _r2dn()
    x0, us = _data(T=60)
    full, chunked = _saved_numel(model, x0, us), _saved_numel(model, x0, us, chunk=10)
    assert chunked < full / 4, (chunked, full)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match=r"ContractingR2DN\.simulate: `chunk` must be a positive"):
            model.simulate(x0, us, chunk=bad)
    with pytest.raises(ValueError, match=r"`chunk` applies to a sequence"):
        model(x0, us[0], chunk=2)


def _tanh_model(family):
    return (rt.ContractingR2DN(2, 3, 4, 2, hidden=(5,), activation="tanh", dtype=F64)
            if family == "r2dn" else rt.ContractingREN(2, 3, 4, 2, activation="tanh", dtype=F64))


@pytest.mark.parametrize("family", ["r2dn", "ren"])
def test_chunked_double_backward_matches_unchunked_and_central_differences(family):
    model = _tanh_model(family)
    x0, us = _data(T=7)                            # chunks of 3: two whole ones and a remainder
    x0.requires_grad_(True)
    params = [x0, *model.parameters()]
    gen = torch.Generator().manual_seed(5)
    v = [torch.randn(p.shape, generator=gen, dtype=F64) for p in params]

    def hvp(**kw):
        xT, ys = model.simulate(x0, us, **kw)
        g = torch.autograd.grad((ys.sin() ** 2).sum() + (xT ** 3).sum(), params, create_graph=True)
        return torch.autograd.grad(sum((gi * vi).sum() for gi, vi in zip(g, v)), params)

    for a, b in zip(hvp(chunk=3), hvp()):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    _hvp_vs_central_differences(model,
                                lambda: (model.simulate(x0, us, chunk=3)[1].sin() ** 2).sum())


@pytest.mark.parametrize("chunk", [None, 3])
def test_backward_inside_autocast_raises_and_outside_is_exact(chunk):
    """Inside the autocast region torch would run the backward products in bfloat16 (input
    gradients measured 5.5e-2 off): the backward pass raises, naming autocast. Forward inside and
    backward outside gives the gradients of the run without autocast."""
    model = rt.ContractingR2DN(2, 3, 4, 2, hidden=(5,))
    x0, us = (t.float().requires_grad_(True) for t in _data(T=7))
    ys_ref = model(x0, us, chunk=chunk)[1]
    ref = torch.autograd.grad(ys_ref.square().sum(), (x0, us, *model.parameters()))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ys = model(x0, us, chunk=chunk)[1]
        with pytest.raises(RuntimeError, match=r"inside torch\.autocast\('cpu'\)"):
            torch.autograd.grad(ys.square().sum(), (x0, us))
        ys = model(x0, us, chunk=chunk)[1]
    got = torch.autograd.grad(ys.square().sum(), (x0, us, *model.parameters()))
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


def test_chunk_under_torch_func_is_right_or_names_the_transform():
    model = _r2dn()
    x0, us = _data(T=7)
    params = {k: v.detach() for k, v in model.named_parameters()}
    loss = lambda p, chunk: (functional_call(model, p, (x0, us), {"chunk": chunk})[1] ** 2).sum()
    with pytest.raises(RuntimeError, match=r"chunk=3\) under torch\.func\.grad"):
        torch.func.grad(loss)(params, 3)
    uss = torch.randn(2, 7, 5, 2, dtype=F64)
    torch.testing.assert_close(vmap(lambda u: model(x0, u, chunk=3)[1])(uss),
                               vmap(lambda u: model(x0, u)[1])(uss), rtol=1e-12, atol=1e-12)
    d = torch.randn_like(us)
    _, tc = jvp(lambda u: model(x0, u, chunk=3)[1], (us,), (d,))
    _, t = jvp(lambda u: model(x0, u)[1], (us,), (d,))
    torch.testing.assert_close(tc, t, rtol=1e-12, atol=1e-12)
    with torch.autograd.forward_ad.dual_level():
        dual = torch.autograd.forward_ad.make_dual(us, d)
        tf = torch.autograd.forward_ad.unpack_dual(model(x0, dual, chunk=3)[1]).tangent
    torch.testing.assert_close(tf, t, rtol=1e-12, atol=1e-12)


# -- 2. torch.func ------------------------------------------------------------------------------

def test_vmap_over_rollouts_and_per_rollout_gradients():
    model = _r2dn()
    gen = torch.Generator().manual_seed(2)
    x0s = torch.randn(4, 5, 3, generator=gen, dtype=F64)
    uss = torch.randn(4, 6, 5, 2, generator=gen, dtype=F64)
    ys = vmap(lambda x, u: model(x, u)[1])(x0s, uss)
    ref = torch.stack([model(x, u)[1] for x, u in zip(x0s, uss)])
    torch.testing.assert_close(ys, ref, rtol=1e-12, atol=1e-12)
    params = {k: v.detach() for k, v in model.named_parameters()}

    def loss(p, x, u):
        return (functional_call(model, p, (x, u))[1] ** 2).sum()

    per = vmap(torch.func.grad(loss), in_dims=(None, 0, 0))(params, x0s, uss)
    for i in range(4):
        model.zero_grad()
        (model(x0s[i], uss[i])[1] ** 2).sum().backward()
        for k, p in model.named_parameters():
            torch.testing.assert_close(per[k][i], p.grad, rtol=1e-12, atol=1e-12)


def test_vmap_over_a_stacked_ensemble():
    models = [_r2dn(seed=s) for s in range(3)]
    params, buffers = stack_module_state(models)
    base = _r2dn().to("meta")
    x0, us = _data(T=5)
    ys = vmap(lambda p, b: functional_call(base, (p, b), (x0, us))[1])(params, buffers)
    for i, m in enumerate(models):
        torch.testing.assert_close(ys[i], m(x0, us)[1], rtol=1e-12, atol=1e-12)


def test_ren_vmap_is_right_or_a_named_error():
    model = _ren()
    x0s = torch.randn(3, 5, 3, dtype=F64)
    _, us = _data(T=4)
    try:
        ys = vmap(lambda x: model(x, us)[1])(x0s)
    except RuntimeError as err:
        assert "vmap" in str(err)
    else:
        torch.testing.assert_close(ys, torch.stack([model(x, us)[1] for x in x0s]),
                                   rtol=1e-12, atol=1e-12)


def test_jvp_and_jacfwd_of_an_r2dn_against_central_differences():
    model = _r2dn()
    x0, us = _data(T=4, batch=2)
    f = lambda u: model(x0, u)[1]
    d = torch.randn_like(us)
    _, tangent = jvp(f, (us,), (d,))
    h = 1e-6
    fd = (f(us + h * d) - f(us - h * d)) / (2 * h)
    assert _rel(tangent, fd) < 1e-6
    J = jacfwd(lambda x: model(x, us)[1])(x0)
    torch.testing.assert_close(J, jacrev(lambda x: model(x, us)[1])(x0), rtol=1e-12, atol=1e-12)


def _hvp_vs_central_differences(model, loss):
    names = [k for k, _ in model.named_parameters()]
    params = [p for _, p in model.named_parameters()]
    gen = torch.Generator().manual_seed(3)
    v = [torch.randn(p.shape, generator=gen, dtype=F64) for p in params]
    g = torch.autograd.grad(loss(), params, create_graph=True)
    hv = torch.autograd.grad(sum((gi * vi).sum() for gi, vi in zip(g, v)), params)
    h = 1e-5

    def grad_at(sign):
        with torch.no_grad():
            for p, vi in zip(params, v):
                p.add_(sign * h * vi)
        out = torch.autograd.grad(loss(), params)
        with torch.no_grad():
            for p, vi in zip(params, v):
                p.sub_(sign * h * vi)
        return out

    gp, gm = grad_at(1.0), grad_at(-1.0)
    fd = torch.cat([((a - b) / (2 * h)).flatten() for a, b in zip(gp, gm)])
    exact = torch.cat([x.flatten() for x in hv])
    assert fd.norm() > 0, names
    assert _rel(exact, fd) < 1e-6, _rel(exact, fd)


@pytest.mark.parametrize("family", ["r2dn", "lbdn", "sandwich"])
def test_double_backward_hvp_against_central_differences(family):
    if family == "r2dn":
        model = rt.ContractingR2DN(2, 3, 4, 2, hidden=(5,), activation="tanh", dtype=F64)
        x0, us = _data(T=6)
        loss = lambda: (model(x0, us)[1].sin() ** 2).sum()
    else:
        model = (rt.LBDN(3, (5, 4), 2, activation="tanh", dtype=F64) if family == "lbdn"
                 else rt.SandwichLayer(3, 4, activation="tanh", dtype=F64))
        u = torch.randn(6, 3, dtype=F64, generator=torch.Generator().manual_seed(4))
        loss = lambda: (model(u).sin() ** 2).sum()
    _hvp_vs_central_differences(model, loss)


# -- 3. autocast --------------------------------------------------------------------------------

@pytest.mark.parametrize("make", [lambda: rt.ContractingR2DN(2, 3, 4, 2, hidden=(5,)),
                                  lambda: rt.ContractingREN(2, 3, 4, 2)], ids=["r2dn", "ren"])
def test_autocast_runs_the_model_in_its_parameters_dtype(make):
    model = make()
    x0 = model.init_state(5)
    us = torch.randn(8, 5, 2)
    xT, ys = model(x0, us)
    layer = torch.nn.Linear(2, 2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert layer(us).dtype == torch.bfloat16             # autocast is on around the model
        xTa, ysa = model(x0, us)
        _, ysb = model.simulate(x0, us.bfloat16())          # autocast outputs are accepted
        report = r2dn.certify(model)
    assert ysa.dtype == torch.float32 and torch.equal(ysa, ys) and torch.equal(xTa, xT)
    torch.testing.assert_close(ysb, model(x0, us.bfloat16().float())[1], rtol=0, atol=0)
    assert report == r2dn.certify(model)


def test_certify_a_bfloat16_model_names_the_dtype():
    model = rt.ContractingR2DN(2, 3, 4, 2, hidden=(5,)).bfloat16()
    with pytest.raises(TypeError, match=r"bfloat16.*\.float\(\) or \.double\(\)"):
        r2dn.certify(model)


# -- 4. torch.compile ---------------------------------------------------------------------------

def test_compiled_cell_does_not_recompile_for_a_new_horizon(monkeypatch):
    # float64, seeded: the compiled cell is the same maths, so it agrees to rounding
    torch.manual_seed(0)
    model = rt.ContractingR2DN(2, 3, 4, 2, hidden=(5,), dtype="float64")
    eager = rt.ContractingR2DN(2, 3, 4, 2, hidden=(5,), dtype="float64")
    # blocks of 4 steps: dynamo's guards, no C++ code generation
    model.compile(backend="aot_eager", steps=4)
    x0 = model.init_state(3)
    torch._dynamo.reset()
    monkeypatch.setattr(torch._dynamo.config, "error_on_recompile", True)
    for T in (5, 9, 2):                 # compiled once, at T = 5; remainders and T = 2 run eagerly
        us = torch.randn(T, 3, 2, dtype=torch.float64)
        model.zero_grad(), eager.zero_grad()
        _, ys = model(x0, us)
        _, ye = eager(x0, us)
        torch.testing.assert_close(ys, ye, rtol=1e-12, atol=1e-12)
        ys.square().sum().backward(), ye.square().sum().backward()
        for p, q in zip(model.parameters(), eager.parameters()):
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-12, atol=1e-12)


def test_compile_steps_is_validated():
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match=r"`steps` \(time steps per compiled block\)"):
            _r2dn().compile(steps=bad)
    with pytest.raises(ValueError, match=r"LBDN\.compile: `steps`.*applies to recurrent models"):
        rt.LBDN(3, (5,), 2).compile(steps=4)


def test_compile_defaults_to_the_cpp_wrapper_on_a_cpu_and_keeps_given_options():
    from r2dn.torch.rollout import BLOCK, CPU_OPTIONS, compiled
    assert CPU_OPTIONS == {"options": {"cpp_wrapper": True}}
    model = _r2dn()
    model.compile()                                   # nothing is compiled until the first call
    assert model._block is compiled(BLOCK, **CPU_OPTIONS)
    model.compile(backend="aot_eager")
    assert model._block is compiled(BLOCK, backend="aot_eager")


# -- 6. device= and dtype= ----------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float64", torch.float64])
def test_constructors_take_device_and_torch_dtypes(dtype):
    model = rt.ContractingR2DN(2, 3, 4, 2, hidden=(5,), dtype=dtype, device="cpu")
    assert model.config.dtype == "float64" and model.device == torch.device("cpu")
    assert all(p.dtype == torch.float64 for p in model.parameters())
    ref = rt.ContractingR2DN(2, 3, 4, 2, hidden=(5,), dtype="float64")
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), ref.parameters()))
    meta = rt.LBDN(3, (4,), 2, dtype=torch.float32, device=torch.device("meta"))
    assert meta.device.type == "meta" and meta.config.dtype == "float32"
    with pytest.raises(ValueError, match=r"`dtype` must be 'float32', 'float64', torch.float32"):
        rt.ContractingREN(2, 3, 4, 2, dtype=torch.bfloat16)
