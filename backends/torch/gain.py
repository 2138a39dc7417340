"""An adversarial lower bound on a model's incremental gain (docs/math/certificates.md#empirical).

The certificate bounds ``||y(u + du) - y(u)|| <= gamma ||du||`` for every input pair (and, for a
recurrent model, from equal initial states over any horizon). :func:`empirical_gain` searches for
the pair that comes closest by gradient ascent: a found ratio above the certified gamma would
falsify the certificate, and a model whose explicit form was broken must show one.
"""

from __future__ import annotations

from typing import Any

import torch

from .models import torch_dtype

#: floor of ||du|| in the ratio, so a collapsing perturbation cannot divide by zero.
MIN_PERTURBATION_NORM = 1e-12


def _check_positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"empirical_gain: `{name}` must be a positive integer; "
                         f"got {name}={value!r}.")


def empirical_gain(model: Any, *, batch: int = 16, horizon: int = 20, steps: int = 200,
                   lr: float = 0.05, scale: float = 1.0, seed: int = 0) -> float:
    """The largest ratio ``||y(u + du) - y(u)|| / ||du||`` found by gradient ascent on input pairs.

    A lower bound on the model's incremental (Lipschitz) gain, to compare with the certified
    ``r2dn.certify(model).gamma`` (LBDN, SandwichLayer, Lipschitz and (Q, S, R) families; for
    contracting models no gain is certified, but the search still runs).

    Parameters
    ----------
    model : r2dn.torch model
        A feed-forward model, ``u (batch, in_features)``, or a recurrent one, simulated from one
        initial state ``x0 (batch, nx)`` shared by both inputs ``us, us + dus (horizon, batch, nu)``
        (the initial state is optimised too). Norms are taken over time and channels.
    batch : int
        Number of independent pairs searched in parallel.
    horizon : int
        Time steps T of the recurrent simulations (ignored for feed-forward models).
    steps : int
        Adam ascent steps on the mean of ``log(ratio)``.
    lr : float
        Adam step size (in input units).
    scale : float
        Standard deviation of the initial inputs and perturbations.
    seed : int
        Seeds the initial pairs (drawn on the CPU, then moved to the model's device).

    Returns
    -------
    float
        The best ratio over all pairs and all steps. The model's parameters are not changed and
        their ``.grad`` is not touched.
    """
    for name, value in (("batch", batch), ("horizon", horizon), ("steps", steps)):
        _check_positive_int(name, value)
    for name, value in (("lr", lr), ("scale", scale)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ValueError(f"empirical_gain: `{name}` must be a number > 0; "
                             f"got {name}={value!r}.")
    cfg = model.config
    dtype, device = torch_dtype(cfg.dtype), model.device
    gen = torch.Generator().manual_seed(seed)

    def draw(*shape: int) -> torch.Tensor:
        z = scale * torch.randn(*shape, generator=gen, dtype=torch.float64)
        return z.to(device=device, dtype=dtype).requires_grad_(True)

    if not cfg.is_recurrent:
        leaves = [draw(batch, cfg.in_features), draw(batch, cfg.in_features)]

        def ratio(u: torch.Tensor, du: torch.Tensor) -> torch.Tensor:
            dy = model(u + du) - model(u)
            return dy.norm(dim=-1) / du.norm(dim=-1).clamp_min(MIN_PERTURBATION_NORM)
    else:
        leaves = [draw(horizon, batch, cfg.nu), draw(horizon, batch, cfg.nu), draw(batch, cfg.nx)]

        def ratio(us: torch.Tensor, dus: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
            dy = model.simulate(x0, us + dus)[1] - model.simulate(x0, us)[1]
            num = dy.square().sum(dim=(0, 2)).sqrt()
            return num / dus.square().sum(dim=(0, 2)).sqrt().clamp_min(MIN_PERTURBATION_NORM)

    opt = torch.optim.Adam(leaves, lr=lr, maximize=True)
    best = 0.0
    for _ in range(steps):
        r = ratio(*leaves)
        best = max(best, float(r.detach().max()))
        grads = torch.autograd.grad(torch.log(r).mean(), leaves)
        for leaf, g in zip(leaves, grads):
            leaf.grad = g
        opt.step()
    with torch.no_grad():
        best = max(best, float(ratio(*leaves).max()))
    return best
