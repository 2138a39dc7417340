"""Parameter shapes and NumPy initialisation of every model, in float64.

Parameters are drawn with ``numpy.random.default_rng(seed)`` in float64, in the fixed order of
:func:`direct_shapes`, then cast by the backend, so one seed gives the same model on every backend
(that is what makes porting and the conformance suite exact).
"""

from __future__ import annotations

import numpy as np

from .compat import PRESETS
from .config import ModelConfig

#: long-memory init: F = abar (I - diag(LONG_MEMORY_SPREAD * U[0, 1))), so A is close to abar I.
LONG_MEMORY_SPREAD = 0.05
#: long-memory REN init: Lambda = (lambda_max(D11 + D11^T) / 2 + LONG_MEMORY_LAMBDA_MARGIN) I.
#: A margin of 1e-4 would do for the guarantee, but with nv = 1 (D11 = 0) it makes Lambda = 1e-4
#: and the explicit D12 = Lambda^-1 D12 about 1e4 times too large (ill-conditioned in float32), so
#: we keep Lambda >= 1 (docs/math/ren.md#long-memory-init).
LONG_MEMORY_LAMBDA_MARGIN = 1.0


def lbdn_shapes(n_in: int, hidden: tuple[int, ...], n_out: int, compat, prefix: str = "",
                learn_gamma: bool = False) -> dict[str, tuple[int, ...]]:
    """Shapes of an LBDN's direct parameters ``{prefix}layers.<k>.{XY,a,d,b}`` (+ ``log_gamma``)."""
    widths = (n_in, *hidden, n_out)
    linear_output = PRESETS[compat].linear_output
    shapes: dict[str, tuple[int, ...]] = {}
    for k in range(len(widths) - 1):
        n_i, n_o = widths[k], widths[k + 1]
        pre = f"{prefix}layers.{k}."
        shapes[pre + "XY"] = (n_i + n_o, n_o)
        shapes[pre + "a"] = (1,)
        if k < len(widths) - 2 or not linear_output:
            shapes[pre + "d"] = (n_o,)
        shapes[pre + "b"] = (n_o,)
    if learn_gamma:
        shapes[prefix + "log_gamma"] = (1,)
    return shapes


def sandwich_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Shapes of a Sandwich layer's direct parameters ``XY, a, d, b``."""
    n_i, n_o = cfg.in_features, cfg.out_features
    return {"XY": (n_i + n_o, n_o), "a": (1,), "d": (n_o,), "b": (n_o,)}


def lbdn_network_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Shapes of an LBDN model's direct parameters (:func:`lbdn_shapes` of its widths)."""
    return lbdn_shapes(cfg.in_features, cfg.hidden, cfg.out_features, cfg.compat,
                       learn_gamma=cfg.learn_gamma)


def ren_shapes(cfg: ModelConfig, *, free_d22: bool = False) -> dict[str, tuple[int, ...]]:
    """Shapes of a REN's direct parameters. ``free_d22``: D22 is a free parameter (contracting
    RENs); otherwise it is built from ``X3, Y3, Z3`` and the supply (unless ``d22_zero``)."""
    return _recurrent_shapes(cfg, r2dn=False, free_d22=free_d22)


def r2dn_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Shapes of an R2DN's direct parameters, its LBDN's under ``network.``."""
    return _recurrent_shapes(cfg, r2dn=True, free_d22=True)


def _recurrent_shapes(cfg: ModelConfig, *, r2dn: bool, free_d22: bool
                      ) -> dict[str, tuple[int, ...]]:
    nu, nx, nv, ny = cfg.nu, cfg.nx, cfg.nv, cfg.ny
    n_X = 2 * nx if r2dn else 2 * nx + nv
    s: dict[str, tuple[int, ...]] = {"X": (n_X, n_X)}
    if cfg.polar:
        s["p"] = (1,)
    s["Y" if r2dn else "Y1"] = (nx, nx)
    if r2dn:
        s["B1"] = (nx, nv)
        s["C1"] = (nv, nx)
    s["B2"] = (nx, nu)
    s["D12"] = (nv, nu)
    if not cfg.identity_output:
        s["C2"] = (ny, nx)
        s["D21"] = (ny, nv)
    if not cfg.identity_output and not cfg.d22_zero and free_d22:
        s["D22"] = (ny, nu)
    if not free_d22 and not cfg.d22_zero:
        d = min(nu, ny)
        s["X3"] = (d, d)
        s["Y3"] = (d, d)
        s["Z3"] = (abs(ny - nu), d)
    s["bx"] = (nx,)
    s["bv"] = (nv,)
    if not cfg.identity_output:
        s["by"] = (ny,)
    if r2dn:
        s.update(lbdn_shapes(nv, cfg.hidden, nv, cfg.compat, prefix="network."))
    return s


def direct_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """The canonical names and shapes of a model's free parameters, in initialisation order
    (declared by its family: :attr:`r2dn.families.Family.shapes`)."""
    return cfg.spec().shapes(cfg)


def _glorot(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    fan = shape[0] + shape[1] if len(shape) == 2 else shape[0] + 1
    return rng.normal(0.0, np.sqrt(2.0 / fan), size=shape)


def _long_memory_X(rng: np.random.Generator, cfg: ModelConfig) -> tuple[np.ndarray, np.ndarray]:
    """``X`` with ``X^T X`` = the H of E = I, P = abar^2 I, F = abar (I - spread diag U), B1 = C1 = 0.

    Returns ``(X, Y)`` with Y = I. For a REN the neuron block is 2 Lambda - D11 - D11^T with a
    random D11 and Lambda just large enough (docs/math/ren.md#ren), so the initial A is close to abar I.
    """
    nx, abar = cfg.nx, cfg.abar
    F = abar * np.diag(1.0 - LONG_MEMORY_SPREAD * rng.uniform(size=nx))
    top = np.eye(nx)                         # 2E - P / abar^2 with E = I, P = abar^2 I
    P = abar**2 * np.eye(nx)
    if cfg.family == "r2dn":
        H = np.block([[top, F.T], [F, P]])
    else:
        nv = cfg.nv
        D11 = np.tril(_glorot(rng, (nv, nv)), -1)     # strictly lower: diag(H22) = 2 Lambda
        lam = np.linalg.eigvalsh(D11 + D11.T).max() / 2 + LONG_MEMORY_LAMBDA_MARGIN
        H22 = 2 * lam * np.eye(nv) - D11 - D11.T
        Z = np.zeros((nx, nv))
        H = np.block([[top, Z, F.T], [Z.T, H22, Z.T], [F, Z, P]])
    return np.linalg.cholesky(H).T, np.eye(nx)


def init_direct(cfg: ModelConfig) -> dict[str, np.ndarray]:
    """Draw a model's free parameters from ``cfg.seed`` (float64 NumPy arrays, canonical names).

    ``init="random"``: Glorot-normal matrices, ``p`` and every ``a`` equal to the norm of their
    matrix (so the polar scaling starts at 1), ``bx = 0``, ``D22 = 0`` for contracting models, and
    ``X3 = I, Y3 = 0, Z3 = 0`` (so D22 starts near 0). ``init="long_memory"``: as docs/math/ren.md#long-memory-init and docs/math/r2dn.md#long-memory-init,
    with B1 = C1 = 0 and the initial A close to abar I.
    """
    rng = np.random.default_rng(cfg.seed)
    shapes = direct_shapes(cfg)
    out: dict[str, np.ndarray] = {}
    if cfg.init == "long_memory" and cfg.is_recurrent:
        out["X"], out["Y" if "Y" in shapes else "Y1"] = _long_memory_X(rng, cfg)
        for name in ("B1", "C1"):
            if name in shapes:
                out[name] = np.zeros(shapes[name])
    for name, shape in shapes.items():
        if name in out:
            continue
        leaf = name.rsplit(".", 1)[-1]
        if leaf in ("p", "a"):
            matrix = out[name[: -len(leaf)] + "XY"] if leaf == "a" else out["X"]
            out[name] = np.array([np.linalg.norm(matrix)])
        elif name == "log_gamma":
            out[name] = np.array([np.log(cfg.gamma)])
        elif name == "bx" or name in cfg.spec().zeros:
            out[name] = np.zeros(shape)
        elif name == "X3":
            out[name] = np.eye(shape[0])
        elif name in ("Y3", "Z3"):
            out[name] = np.zeros(shape)
        else:
            out[name] = _glorot(rng, shape)
    return {name: out[name] for name in shapes}
