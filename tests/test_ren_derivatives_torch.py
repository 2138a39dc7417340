"""Every derivative of the torch REN equilibrium against central differences (float64): double
backward (Hessian-vector products through ``simulate``), forward mode (``torch.func.jvp``,
``jacfwd``), and ``torch.func.vmap`` of the equilibrium against a loop."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import r2dn.torch as rt  # noqa: E402
from r2dn import _spec  # noqa: E402

from helpers import build  # noqa: E402

REN_FAMILIES = ["ContractingREN", "LipschitzREN", "PassiveREN", "GeneralREN"]
H = 1e-5                     # central-difference step (truncation ~H^2, rounding ~eps / H)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b))


def _simulate_loss(model, T: int = 4, batch: int = 3):
    """``params -> loss`` of a rollout (a nonlinear loss, so the Hessian is not trivial), and the
    model's free parameters as a flat float64 vector."""
    gen = torch.Generator().manual_seed(2)
    c = model.config
    x0 = torch.randn(batch, c.nx, generator=gen, dtype=torch.float64)
    us = torch.randn(T, batch, c.nu, generator=gen, dtype=torch.float64)
    direct = {k: v.detach() for k, v in model.direct().items()}
    names = [k for k, v in direct.items() if v.numel()]
    shapes = [direct[k].shape for k in names]
    sizes = [direct[k].numel() for k in names]

    def loss(theta):
        parts = dict(zip(names, (p.reshape(s) for p, s in zip(theta.split(sizes), shapes))))
        xT, ys = torch.func.functional_call(model, {**direct, **parts}, (x0, us))
        return torch.sum(torch.sin(ys)) + torch.sum(xT**2)

    return loss, torch.cat([direct[k].reshape(-1) for k in names])


def _model(family: str, activation="tanh", seed: int = 0):
    return build(rt, family, 2, 3, 4, 2, seed=seed, activation=activation, dtype="float64")


@pytest.mark.parametrize("family", REN_FAMILIES)
def test_double_backward_hvp_matches_central_differences(family):
    """H v by double backward through ``simulate`` equals central differences of the gradient
    (the first-order gradient is checked against finite differences in test_torch_autograd)."""
    loss, theta = _simulate_loss(_model(family))
    v = torch.randn(theta.shape, generator=torch.Generator().manual_seed(3), dtype=theta.dtype)

    def grad(t):
        t = t.detach().requires_grad_(True)
        return torch.autograd.grad(loss(t), t)[0]

    t = theta.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(loss(t), t, create_graph=True)
    (hvp,) = torch.autograd.grad(g @ v, t)
    fd = (grad(theta + H * v) - grad(theta - H * v)) / (2 * H)
    assert _rel(hvp, fd) < 1e-6


@pytest.mark.parametrize("family", ["ContractingREN", "GeneralREN"])
def test_forward_mode_jvp_matches_central_differences(family):
    """``torch.func.jvp`` of a rollout (the equilibrium's forward rule, one substitution)."""
    loss, theta = _simulate_loss(_model(family, seed=1))
    v = torch.randn(theta.shape, generator=torch.Generator().manual_seed(4), dtype=theta.dtype)
    _, tangent = torch.func.jvp(loss, (theta,), (v,))
    fd = (loss(theta + H * v) - loss(theta - H * v)) / (2 * H)
    assert abs(float(tangent - fd)) < 1e-8 * max(1.0, abs(float(fd)))


@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid"])
def test_equilibrium_jacfwd_hessian_match_reverse_mode_and_differences(activation):
    """jacfwd equals jacrev of the equilibrium in (D11, b); torch.func.hessian of a scalar of it
    (forward over reverse) equals central differences of its gradient."""
    act = _spec.activation(activation, xp=rt.TorchModel._xp)
    solver = rt.implicit_equilibrium(act)
    gen = torch.Generator().manual_seed(5)
    nv = 20                                           # two blocks of neurons
    D11 = 0.3 * torch.randn(nv, nv, generator=gen, dtype=torch.float64)
    b = torch.randn(3, nv, generator=gen, dtype=torch.float64)
    fwd = torch.func.jacfwd(solver, argnums=(0, 1))(D11, b)
    rev = torch.func.jacrev(solver, argnums=(0, 1))(D11, b)
    for f, r in zip(fwd, rev):
        torch.testing.assert_close(f, r, rtol=1e-12, atol=1e-12)
    if activation == "relu":
        return                                        # piecewise linear: no curvature to test
    def scalar(bb):
        return torch.sum(torch.sin(solver(D11, bb)))
    hess = torch.func.hessian(scalar)(b).reshape(b.numel(), b.numel())
    grad = torch.func.grad(scalar)
    e = torch.randn(b.shape, generator=gen, dtype=torch.float64)
    fd = (grad(b + H * e) - grad(b - H * e)) / (2 * H)
    assert _rel(hess @ e.reshape(-1), fd.reshape(-1)) < 1e-6


def test_vmap_of_the_equilibrium_matches_a_loop():
    """``torch.func.vmap`` over a batch of inputs and over an ensemble of D11 (stacked models),
    values and gradients, equals a Python loop."""
    act = _spec.activation("tanh", xp=rt.TorchModel._xp)
    solver = rt.implicit_equilibrium(act)
    gen = torch.Generator().manual_seed(6)
    Ds = 0.5 * torch.randn(3, 18, 18, generator=gen, dtype=torch.float64)
    bs = torch.randn(3, 5, 18, generator=gen, dtype=torch.float64)
    over_b = torch.func.vmap(solver, in_dims=(None, 0))(Ds[0], bs)
    over_both = torch.func.vmap(solver)(Ds, bs)
    for k in range(3):
        torch.testing.assert_close(over_b[k], solver(Ds[0], bs[k]), rtol=1e-14, atol=1e-14)
        torch.testing.assert_close(over_both[k], solver(Ds[k], bs[k]), rtol=1e-14, atol=1e-14)

    def loss(D, b):
        return torch.sum(torch.sin(solver(D, b)))

    g_vmap = torch.func.vmap(torch.func.grad(loss, argnums=(0, 1)))(Ds, bs)
    for k in range(3):
        g_loop = torch.func.grad(loss, argnums=(0, 1))(Ds[k], bs[k])
        for a, c in zip(g_vmap, g_loop):
            torch.testing.assert_close(a[k], c, rtol=1e-12, atol=1e-12)
