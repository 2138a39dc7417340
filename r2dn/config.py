"""Model configurations: one frozen, validated, JSON-serialisable record per model.

A :class:`ModelConfig` holds everything about a model that is not a trained parameter: the class,
the sizes, the options, the dtype and the fixed data of the certificate (gamma unless learned,
abar, Q, S, R, the passivity indices). It is hashable, so a JAX model can keep it as static data,
and it round-trips through JSON, so a checkpoint can carry it.

The constructor of every model class in every backend is one of the ``*_config`` functions below
(the backends copy their signatures), so the arguments and their validation live in one place.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import numbers
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from .compat import COMPAT_CHOICES, Compat, default_eps

ACTIVATIONS = ("relu", "tanh", "sigmoid", "identity")
INITS = ("random", "long_memory")
DTYPES = ("float32", "float64")

REN_FAMILIES = ("ContractingREN", "LipschitzREN", "GeneralREN", "PassiveREN")
R2DN_FAMILIES = ("ContractingR2DN", "LipschitzR2DN", "GeneralR2DN")
RECURRENT_FAMILIES = REN_FAMILIES + R2DN_FAMILIES
FEEDFORWARD_FAMILIES = ("SandwichLayer", "LBDN")
FAMILIES = FEEDFORWARD_FAMILIES + RECURRENT_FAMILIES
CONTRACTING_FAMILIES = ("ContractingREN", "ContractingR2DN")
LIPSCHITZ_FAMILIES = ("LipschitzREN", "LipschitzR2DN")
#: families with the option ``d22_zero`` (D22 fixed at 0: RobustNeuralNetworks.jl's ``D22_zero``).
D22_ZERO_FAMILIES = ("ContractingREN", "LipschitzREN")

Matrix = tuple[tuple[float, ...], ...]
Activation = str | Callable[[Any], Any]


@dataclass(frozen=True)
class ModelConfig:
    """Everything about a model except its free parameters.

    Fields that do not apply to a family keep their defaults (``None`` or empty) and are checked
    to do so. ``eps`` is stored resolved (the value the maps use), so a model converted to another
    backend or dtype computes the same maps.
    """

    model: str
    nu: int | None = None
    nx: int | None = None
    nv: int | None = None
    ny: int | None = None
    in_features: int | None = None
    out_features: int | None = None
    hidden: tuple[int, ...] = ()
    activation: Activation = "relu"
    gamma: float | None = None
    learn_gamma: bool = False
    abar: float = 1.0
    Q: Matrix | None = None
    S: Matrix | None = None
    R: Matrix | None = None
    nu_index: float | None = None
    rho_index: float | None = None
    polar: bool = True
    eps: float = field(default=0.0)
    init: str = "random"
    identity_output: bool = False
    d22_zero: bool = False
    seed: int = 0
    dtype: str = "float64"
    compat: Compat = None

    def __post_init__(self) -> None:
        _validate(self)

    # -- derived quantities ------------------------------------------------------------------
    @property
    def family(self) -> str:
        """``"lbdn"``, ``"sandwich"``, ``"ren"`` or ``"r2dn"``."""
        if self.model in REN_FAMILIES:
            return "ren"
        if self.model in R2DN_FAMILIES:
            return "r2dn"
        return "sandwich" if self.model == "SandwichLayer" else "lbdn"

    @property
    def is_recurrent(self) -> bool:
        return self.model in RECURRENT_FAMILIES

    def supply(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """The incremental supply rate (Q, S, R) as float64 arrays; ``None`` for contracting models.

        Lipschitz models use Q = -I/gamma, S = 0, R = gamma I; passive RENs Q = -2 rho I, S = I,
        R = -2 nu I (docs/math/index.md#incremental).
        """
        if self.model in LIPSCHITZ_FAMILIES:
            return lipschitz_supply(self.gamma, self.nu, self.ny)
        if self.model == "PassiveREN":
            return (-2.0 * self.rho_index * np.eye(self.ny), np.eye(self.nu, self.ny),
                    -2.0 * self.nu_index * np.eye(self.nu))
        if self.model in ("GeneralREN", "GeneralR2DN"):
            return np.array(self.Q), np.array(self.S), np.array(self.R)
        return None

    # -- serialisation -----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        if callable(self.activation):
            raise TypeError(
                f"{self.model}: a model with a custom activation callable ({self.activation!r}) "
                "cannot be serialised; use one of " + ", ".join(map(repr, ACTIVATIONS)) + ".")
        out = dataclasses.asdict(self)
        for k in ("hidden", "Q", "S", "R"):
            if out[k] is not None:
                out[k] = json.loads(json.dumps(out[k]))
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        if not isinstance(data, dict):
            raise TypeError(f"ModelConfig.from_dict: expected a dict; got {type(data).__name__}.")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"ModelConfig: unknown config keys {unknown}.")
        if "model" not in data:
            raise ValueError("ModelConfig: config has no `model` entry.")
        kw = dict(data)
        if kw.get("hidden") is not None:
            kw["hidden"] = _tuple_of_ints("hidden", kw["hidden"], kw["model"])
        for k in ("Q", "S", "R"):
            if kw.get(k) is not None:
                kw[k] = _as_matrix(kw[k], k, kw["model"])
        return cls(**kw)

    @classmethod
    def from_json(cls, text: str) -> "ModelConfig":
        try:
            data = json.loads(text)
        except (TypeError, json.JSONDecodeError) as err:
            raise ValueError(f"ModelConfig.from_json: not valid JSON ({err}).") from err
        return cls.from_dict(data)

    def replace(self, **changes: Any) -> "ModelConfig":
        return dataclasses.replace(self, **changes)


def random_supply(rng: np.random.Generator, nu: int, ny: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A random valid supply rate (Q, S, R): Q negative definite, R - S Q^-1 S^T positive definite.

    For tests, benchmarks and the conformance suite; the draws are part of their reproducibility.
    """
    A = rng.normal(size=(ny, ny))
    Q = -(A @ A.T / ny + 0.5 * np.eye(ny))
    S = 0.3 * rng.normal(size=(nu, ny))
    B = rng.normal(size=(nu, nu))
    R = S @ np.linalg.solve(Q, S.T) + B @ B.T / nu + 0.5 * np.eye(nu)
    return Q, S, (R + R.T) / 2


def lipschitz_supply(gamma: float, nu: int, ny: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(Q, S, R) = (-I/gamma, 0, gamma I): the supply rate of a gamma-Lipschitz map."""
    return -np.eye(ny) / gamma, np.zeros((nu, ny)), gamma * np.eye(nu)


# -- validation --------------------------------------------------------------------------------

def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _check_size(owner: str, name: str, value: Any) -> None:
    if not _is_int(value) or value < 1:
        raise ValueError(f"{owner}: `{name}` must be a positive integer; got {name}={value!r}.")


def _tuple_of_ints(name: str, value: Any, owner: str) -> tuple[int, ...]:
    if _is_int(value):
        value = (value,)
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise ValueError(f"{owner}: `{name}` must be a sequence of positive integers; got {value!r}.")
    for v in value:
        if not _is_int(v) or v < 1:
            raise ValueError(f"{owner}: `{name}` must hold positive integers; got {name}={tuple(value)!r}.")
    return tuple(int(v) for v in value)


def _as_matrix(value: Any, name: str, owner: str) -> Matrix:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{owner}: `{name}` must be a real matrix; got {value!r}.") from err
    if arr.ndim != 2:
        raise ValueError(f"{owner}: `{name}` must be a 2-D matrix; got shape {arr.shape}.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{owner}: `{name}` must be finite; got {arr.tolist()}.")
    return tuple(tuple(float(x) for x in row) for row in arr)


def _check_positive(owner: str, name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) \
            or value <= 0:
        raise ValueError(f"{owner}: `{name}` must be a finite number > 0; got {name}={value!r}.")


def _check_qsr(c: ModelConfig) -> None:
    owner = c.model
    Q, S, R = (np.array(m) if m is not None else None for m in (c.Q, c.S, c.R))
    for name, m, shape in (("Q", Q, (c.ny, c.ny)), ("S", S, (c.nu, c.ny)), ("R", R, (c.nu, c.nu))):
        if m is None:
            raise ValueError(f"{owner}: `{name}` is required, with shape {shape}.")
        if m.shape != shape:
            raise ValueError(
                f"{owner}: `{name}` must have shape {shape} (nu={c.nu}, ny={c.ny}); got {m.shape}.")
    for name, m in (("Q", Q), ("R", R)):
        if not np.allclose(m, m.T, rtol=1e-10, atol=1e-12):
            raise ValueError(f"{owner}: `{name}` must be symmetric; got {name}={m.tolist()}.")
    q_eigs = np.linalg.eigvalsh(Q)
    if q_eigs.max() >= 0:
        raise ValueError(f"{owner}: `Q` must be negative definite; its largest eigenvalue is "
                         f"{q_eigs.max():.6g}.")
    schur = R - S @ np.linalg.solve(Q, S.T)
    s_eigs = np.linalg.eigvalsh((schur + schur.T) / 2)
    if s_eigs.min() <= 0:
        raise ValueError(f"{owner}: `R - S Q^-1 S^T` must be positive definite; its smallest "
                         f"eigenvalue is {s_eigs.min():.6g}.")


def _validate(c: ModelConfig) -> None:  # noqa: C901 - a flat list of rules reads best
    owner = c.model
    if owner not in FAMILIES:
        raise ValueError(f"ModelConfig: `model` must be one of {', '.join(FAMILIES)}; got {owner!r}.")
    if c.family in ("lbdn", "sandwich"):
        _check_size(owner, "in_features", c.in_features)
        _check_size(owner, "out_features", c.out_features)
    else:
        for name in ("nu", "nx", "nv", "ny"):
            _check_size(owner, name, getattr(c, name))
    if not isinstance(c.hidden, tuple) or any(not _is_int(h) or h < 1 for h in c.hidden):
        raise ValueError(f"{owner}: `hidden` must be a tuple of positive integers; got {c.hidden!r}.")
    if c.family == "sandwich" and c.hidden:
        raise ValueError(f"{owner}: `hidden` does not apply to a SandwichLayer; got {c.hidden!r}.")
    if not (callable(c.activation) or c.activation in ACTIVATIONS):
        raise ValueError(f"{owner}: `activation` must be one of "
                         + ", ".join(map(repr, ACTIVATIONS)) + f" or a callable; got {c.activation!r}.")
    if c.init not in INITS:
        raise ValueError(f"{owner}: `init` must be one of {INITS}; got init={c.init!r}.")
    if c.compat not in COMPAT_CHOICES:
        raise ValueError(f"{owner}: `compat` must be None, 'julia' or 'robustnn'; got compat={c.compat!r}.")
    if c.dtype not in DTYPES:
        raise ValueError(f"{owner}: `dtype` must be 'float32' or 'float64'; got dtype={c.dtype!r}.")
    if isinstance(c.abar, bool) or not isinstance(c.abar, numbers.Real) or not 0 < c.abar <= 1:
        raise ValueError(f"{owner}: `abar` must satisfy 0 < abar <= 1; got abar={c.abar!r}.")
    _check_positive(owner, "eps", c.eps)
    if not _is_int(c.seed) or c.seed < 0:
        raise ValueError(f"{owner}: `seed` must be a non-negative integer; got seed={c.seed!r}.")
    for name in ("polar", "identity_output", "learn_gamma", "d22_zero"):
        if not isinstance(getattr(c, name), bool):
            raise TypeError(f"{owner}: `{name}` must be a bool; got {getattr(c, name)!r}.")
    uses_gamma = c.model in LIPSCHITZ_FAMILIES or c.model == "LBDN"
    if uses_gamma:
        _check_positive(owner, "gamma", c.gamma)
    elif c.gamma is not None:
        raise ValueError(f"{owner}: `gamma` does not apply to this model; got gamma={c.gamma!r}.")
    if c.learn_gamma and c.model != "LBDN":
        raise ValueError(f"{owner}: `learn_gamma` applies to LBDN only.")
    if c.identity_output:
        if c.model not in CONTRACTING_FAMILIES:
            raise ValueError(f"{owner}: `identity_output=True` applies to contracting models only "
                             "(an identity output has no input-output bound).")
        if c.ny != c.nx:
            raise ValueError(f"{owner}: `identity_output=True` needs ny == nx; got ny={c.ny}, nx={c.nx}.")
    if c.d22_zero and c.model not in D22_ZERO_FAMILIES:
        raise ValueError(f"{owner}: `d22_zero=True` applies to {' and '.join(D22_ZERO_FAMILIES)} "
                         "only (RobustNeuralNetworks.jl's `D22_zero`).")
    if c.model in ("GeneralREN", "GeneralR2DN"):
        _check_qsr(c)
    elif any(m is not None for m in (c.Q, c.S, c.R)):
        raise ValueError(f"{owner}: `Q`, `S`, `R` apply to GeneralREN and GeneralR2DN only.")
    if c.model == "PassiveREN":
        if c.nu != c.ny:
            raise ValueError(f"PassiveREN: needs nu == ny; got nu={c.nu}, ny={c.ny}.")
        for name in ("nu_index", "rho_index"):
            v = getattr(c, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
                raise ValueError(f"PassiveREN: `{name}` must be a finite number; got {name}={v!r}.")
        if c.rho_index < 0:
            raise ValueError(f"PassiveREN: `rho_index` must be >= 0; got rho_index={c.rho_index!r}.")
        if c.rho_index > 0 and c.nu_index * c.rho_index >= 0.25:
            raise ValueError("PassiveREN: with rho_index > 0 the indices must satisfy "
                             f"nu_index * rho_index < 1/4; got {c.nu_index!r} * {c.rho_index!r}.")
    elif c.nu_index is not None or c.rho_index is not None:
        raise ValueError(f"{owner}: `nu_index`, `rho_index` apply to PassiveREN only.")


# -- constructors: the signatures every backend's model classes share ---------------------------

#: numpydoc entries of the constructor arguments, shared by the nine model classes.
_PARAM_DOCS = {
    "in_features": "in_features : int\n    Input width; inputs ``u`` have shape ``(batch, in_features)``.",
    "out_features": "out_features : int\n    Output width; outputs have shape ``(batch, out_features)``.",
    "hidden": "hidden : sequence of int\n    Widths of the hidden Sandwich layers{hidden_note}.",
    "nu": "nu : int\n    Number of inputs; ``u`` is ``(batch, nu)``, a sequence ``us`` is ``(T, batch, nu)``.",
    "nx": "nx : int\n    Number of states; ``x`` is ``(batch, nx)``.",
    "nv": "nv : int\n    Number of neurons of the nonlinear channel (v, w of the explicit model).",
    "ny": "ny : int\n    Number of outputs; ``y`` is ``(batch, ny)``.",
    "gamma": "gamma : float\n    Incremental gain bound: ``||y(u1) - y(u2)|| <= gamma ||u1 - u2||``{gamma_note}.",
    "learn_gamma": "learn_gamma : bool, default False\n    Train ``log_gamma`` as a free parameter "
                   "(the bound is then the current ``exp(log_gamma)``).",
    "Q": "Q : array_like, shape (ny, ny)\n    Output weight of the supply rate "
         "``s = dy^T Q dy + 2 du^T S dy + du^T R du``; symmetric negative definite.",
    "S": "S : array_like, shape (nu, ny)\n    Cross weight of the supply rate (note the shape: "
         "it multiplies ``du`` on the left and ``dy`` on the right).",
    "R": "R : array_like, shape (nu, nu)\n    Input weight of the supply rate; symmetric, with "
         "``R - S Q^-1 S^T`` positive definite.",
    "nu_index": "nu_index : float, default 0.0\n    Input passivity index nu of the supply "
                "``2 du^T dy - 2 nu |du|^2 - 2 rho |dy|^2`` (negative allows a shortage).",
    "rho_index": "rho_index : float, default 0.0\n    Output passivity index rho >= 0; with "
                 "``rho_index > 0`` the indices must satisfy ``nu_index * rho_index < 1/4``.",
    "abar": "abar : float, default 1.0\n    Contraction rate, ``0 < abar <= 1``: state differences "
            "shrink at least like ``abar**t`` in the certificate's metric (1: contraction in the limit).",
    "activation": "activation : {'relu', 'tanh', 'sigmoid', 'identity'} or callable, default 'relu'\n"
                  "    Elementwise nonlinearity with slopes in [0, 1]; a callable must be written with "
                  "the backend's array functions (and cannot be saved in a checkpoint).",
    "polar": "polar : bool, default True\n    Polar parameterization of the Gram matrix: "
             "``p**2 X^T X / ||X||_F**2`` with a free scalar ``p`` instead of ``X^T X``; better "
             "conditioned training, same guarantees.",
    "eps": "eps : float, optional\n    Regulariser added to the Gram matrix (``eps I``) so it is "
           "positive definite; ``None`` picks 1e-12 in float64 and the float32 machine epsilon in "
           "float32 (or the ``compat`` preset's). The certificate's margin is of this order.",
    "init": "init : {'random', 'long_memory'}, default 'random'\n    ``'long_memory'`` starts "
            "with the explicit A close to ``abar * I`` (slow dynamics, long memory).",
    "identity_output": "identity_output : bool, default False\n    Output the state, ``y = x`` "
                       "(needs ``ny == nx``; contracting models only).",
    "d22_zero": "d22_zero : bool, default False\n    Fix D22 = 0 (no direct feed-through; "
                "RobustNeuralNetworks.jl's ``D22_zero``).",
    "seed": "seed : int, default 0\n    Seed of the NumPy generator that draws the initial "
            "parameters (in float64, then cast): one seed gives the same model in every backend.",
    "dtype": "dtype : {'float32', 'float64'}, optional\n    Parameter dtype; ``None`` means "
             "{default_dtype} in this backend.",
    "compat": "compat : {None, 'julia', 'robustnn'}, default None\n    Reproduce "
              "RobustNeuralNetworks.jl 0.3 (``'julia'``) or the R2DN authors' JAX code "
              "(``'robustnn'``) number for number (docs/math/compat.md#presets).",
}

_RAISES = """Raises
------
ValueError
    A size, a bound or a supply matrix that is out of range (the message names it and the value
    given), e.g. ``gamma <= 0`` or a ``Q`` that is not negative definite.
TypeError
    A missing or unknown argument, or a flag that is not a bool."""


def _documented(summary: str, example: str, notes: str = "", **fill: str) -> Callable:
    """Give a constructor a numpydoc docstring built from :data:`_PARAM_DOCS`.

    The model classes of every backend take this docstring, with ``{default_dtype}`` filled in by
    the backend; the constructor's own copy says ``default_dtype``.
    """
    def decorate(fn: Callable) -> Callable:
        names = [n for n in inspect.signature(fn).parameters if n != "default_dtype"]
        entries = (_PARAM_DOCS[n].replace("{hidden_note}", fill.get("hidden_note", ""))
                   .replace("{gamma_note}", fill.get("gamma_note", "")) for n in names)
        params = "\n".join(head + "\n" + textwrap.fill(text.strip(), 96, initial_indent="    ",
                                                        subsequent_indent="    ")
                            for head, text in (e.split("\n", 1) for e in entries))
        parts = [summary, "Parameters\n----------\n" + params, _RAISES]
        if notes:
            parts.append("Notes\n-----\n" + notes)
        parts.append("Examples\n--------\n" + example)
        fn.__doc_template__ = "\n\n".join(parts)
        fn.__doc__ = fn.__doc_template__.replace("{default_dtype}", "``default_dtype``")
        return fn
    return decorate


def _common(model: str, dtype: str | None, default_dtype: str, eps: float | None,
            compat: Compat, **kw: Any) -> ModelConfig:
    dtype = default_dtype if dtype is None else dtype
    if dtype not in DTYPES:
        raise ValueError(f"{model}: `dtype` must be 'float32' or 'float64'; got dtype={dtype!r}.")
    if compat not in COMPAT_CHOICES:
        raise ValueError(f"{model}: `compat` must be None, 'julia' or 'robustnn'; got compat={compat!r}.")
    eps = default_eps(compat, dtype) if eps is None else eps
    if kw.get("hidden") is not None:
        kw["hidden"] = _tuple_of_ints("hidden", kw["hidden"], model)
    for k in ("Q", "S", "R"):
        if kw.get(k) is not None:
            kw[k] = _as_matrix(kw[k], k, model)
    return ModelConfig(model=model, dtype=dtype, eps=eps, compat=compat, **kw)


@_documented('A 1-Lipschitz dense layer ``in_features -> out_features`` (docs/math/lbdn.md#sandwich).\n\nCalled as ``layer(u)`` with ``u`` of shape ``(batch, in_features)``; returns\n``(batch, out_features)``.',
             '>>> import numpy as np, r2dn.numpy as rn\n>>> layer = rn.SandwichLayer(3, 2, activation="tanh")\n>>> layer(np.ones((4, 3))).shape\n(4, 2)')
def sandwich_config(in_features: int, out_features: int, *, activation: Activation = "relu",
                    seed: int = 0, dtype: str | None = None, compat: Compat = None,
                    default_dtype: str = "float64") -> ModelConfig:
    return _common("SandwichLayer", dtype, default_dtype, None, compat, in_features=in_features,
                   out_features=out_features, activation=activation, seed=seed)


@_documented('A gamma-Lipschitz MLP of Sandwich layers with a linear last layer (docs/math/lbdn.md#lbdn-network).\n\nCalled as ``model(u)`` with ``u`` of shape ``(batch, in_features)``; returns\n``(batch, out_features)``, and ``||model(u1) - model(u2)|| <= gamma ||u1 - u2||`` for every pair.',
             '>>> import numpy as np, r2dn, r2dn.numpy as rn\n>>> model = rn.LBDN(4, (16, 16), 2, gamma=3.0)\n>>> model(np.ones((5, 4))).shape\n(5, 2)\n>>> bool(r2dn.certify(model).certified)\nTrue',
             hidden_note=' (``in_features -> hidden[0] -> ... -> out_features``)')
def lbdn_config(in_features: int, hidden: Sequence[int], out_features: int, gamma: float = 1.0, *,
                learn_gamma: bool = False, activation: Activation = "relu", seed: int = 0,
                dtype: str | None = None, compat: Compat = None,
                default_dtype: str = "float64") -> ModelConfig:
    return _common("LBDN", dtype, default_dtype, None, compat, in_features=in_features,
                   hidden=hidden, out_features=out_features, gamma=gamma, learn_gamma=learn_gamma,
                   activation=activation, seed=seed)


def _recurrent(model: str, nu, nx, nv, ny, *, dtype, default_dtype, eps, compat, **kw) -> ModelConfig:
    return _common(model, dtype, default_dtype, eps, compat, nu=nu, nx=nx, nv=nv, ny=ny, **kw)


@_documented('A REN contracting at rate ``abar`` (docs/math/ren.md#ren).\n\nThe state forgets its initial value: two trajectories with the same inputs approach each other\nat least like ``abar**t``. Its input-output map is not bounded (``D22`` and the output layer are\nfree).',
             '>>> import numpy as np, r2dn.numpy as rn\n>>> model = rn.ContractingREN(nu=2, nx=3, nv=4, ny=1, abar=0.9)\n>>> xT, ys = model.simulate(model.init_state(5), np.zeros((10, 5, 2)))\n>>> ys.shape\n(10, 5, 1)')
def contracting_ren_config(nu: int, nx: int, nv: int, ny: int, *, abar: float = 1.0,
                           activation: Activation = "relu", polar: bool = True,
                           eps: float | None = None, init: Literal["random", "long_memory"] = "random",
                           identity_output: bool = False, d22_zero: bool = False, seed: int = 0,
                           dtype: str | None = None, compat: Compat = None,
                           default_dtype: str = "float64") -> ModelConfig:
    return _recurrent("ContractingREN", nu, nx, nv, ny, dtype=dtype, default_dtype=default_dtype,
                      eps=eps, compat=compat, abar=abar, activation=activation, polar=polar,
                      init=init, identity_output=identity_output, d22_zero=d22_zero, seed=seed)


@_documented('A REN with incremental gain at most ``gamma`` (docs/math/ren.md#d22).\n\nFrom equal initial states, ``||y1 - y2|| <= gamma ||u1 - u2||`` over any horizon (l2 norms of the\nwhole sequences); the model is also contracting at rate ``abar``.',
             '>>> import r2dn, r2dn.numpy as rn\n>>> model = rn.LipschitzREN(nu=2, nx=3, nv=4, ny=2, gamma=1.5)\n>>> r2dn.certify(model).gamma <= 1.5\nTrue')
def lipschitz_ren_config(nu: int, nx: int, nv: int, ny: int, gamma: float, *, abar: float = 1.0,
                         activation: Activation = "relu", polar: bool = True,
                         eps: float | None = None, init: Literal["random", "long_memory"] = "random",
                         d22_zero: bool = False, seed: int = 0, dtype: str | None = None,
                         compat: Compat = None, default_dtype: str = "float64") -> ModelConfig:
    return _recurrent("LipschitzREN", nu, nx, nv, ny, dtype=dtype, default_dtype=default_dtype,
                      eps=eps, compat=compat, gamma=gamma, abar=abar, activation=activation,
                      polar=polar, init=init, d22_zero=d22_zero, seed=seed)


@_documented('A REN that is incrementally (Q, S, R)-dissipative (docs/math/ren.md#supply).\n\nFrom equal initial states, the supply ``sum_t dy^T Q dy + 2 du^T S dy + du^T R du >= 0`` over any\nhorizon, for any two input sequences; the model is also contracting at rate ``abar``.',
             '>>> import numpy as np, r2dn, r2dn.numpy as rn\n>>> Q, S, R = -np.eye(1), np.zeros((2, 1)), 4.0 * np.eye(2)    # gain <= 2\n>>> model = rn.GeneralREN(nu=2, nx=3, nv=4, ny=1, Q=Q, S=S, R=R)\n>>> bool(r2dn.certify(model).certified)\nTrue',
             'Conventions: ``S`` is ``(nu, ny)``. Q = -I/gamma, S = 0, R = gamma I is a gamma-Lipschitz model\n(docs/math/index.md#qsr-conventions).')
def general_ren_config(nu: int, nx: int, nv: int, ny: int, Q: Any, S: Any, R: Any, *,
                       abar: float = 1.0, activation: Activation = "relu", polar: bool = True,
                       eps: float | None = None, init: Literal["random", "long_memory"] = "random",
                       seed: int = 0, dtype: str | None = None, compat: Compat = None,
                       default_dtype: str = "float64") -> ModelConfig:
    return _recurrent("GeneralREN", nu, nx, nv, ny, dtype=dtype, default_dtype=default_dtype,
                      eps=eps, compat=compat, Q=Q, S=S, R=R, abar=abar, activation=activation,
                      polar=polar, init=init, seed=seed)


@_documented('A REN that is incrementally passive with indices (``nu_index``, ``rho_index``); needs ``nu == ny``\n(docs/math/ren.md#passive).\n\nThe supply is ``2 du^T dy - 2 nu_index |du|^2 - 2 rho_index |dy|^2``, i.e. (Q, S, R) =\n(-2 rho_index I, I, -2 nu_index I).',
             '>>> import r2dn, r2dn.numpy as rn\n>>> model = rn.PassiveREN(nu=2, nx=3, nv=4, ny=2, nu_index=0.0, rho_index=0.5)\n>>> bool(r2dn.certify(model).certified)\nTrue')
def passive_ren_config(nu: int, nx: int, nv: int, ny: int, *, nu_index: float = 0.0,
                       rho_index: float = 0.0, abar: float = 1.0, activation: Activation = "relu",
                       polar: bool = True, eps: float | None = None,
                       init: Literal["random", "long_memory"] = "random", seed: int = 0,
                       dtype: str | None = None, compat: Compat = None,
                       default_dtype: str = "float64") -> ModelConfig:
    return _recurrent("PassiveREN", nu, nx, nv, ny, dtype=dtype, default_dtype=default_dtype,
                      eps=eps, compat=compat, nu_index=nu_index, rho_index=rho_index, abar=abar,
                      activation=activation, polar=polar, init=init, seed=seed)


@_documented('An R2DN contracting at rate ``abar`` (docs/math/r2dn.md#contracting).\n\nAn LTI system in feedback with a 1-Lipschitz LBDN of widths ``nv -> hidden -> nv``: no\nequilibrium to solve, so each step is a few dense products.',
             '>>> import numpy as np, r2dn.numpy as rn\n>>> model = rn.ContractingR2DN(nu=2, nx=3, nv=4, ny=1, hidden=(8,))\n>>> xT, ys = model.simulate(model.init_state(5), np.zeros((10, 5, 2)))\n>>> ys.shape\n(10, 5, 1)',
             hidden_note=' of the network phi (``nv -> hidden -> nv``)')
def contracting_r2dn_config(nu: int, nx: int, nv: int, ny: int, hidden: Sequence[int], *,
                            abar: float = 1.0, activation: Activation = "relu", polar: bool = True,
                            eps: float | None = None,
                            init: Literal["random", "long_memory"] = "random",
                            identity_output: bool = False, seed: int = 0, dtype: str | None = None,
                            compat: Compat = None, default_dtype: str = "float64") -> ModelConfig:
    return _recurrent("ContractingR2DN", nu, nx, nv, ny, dtype=dtype, default_dtype=default_dtype,
                      eps=eps, compat=compat, hidden=hidden, abar=abar, activation=activation,
                      polar=polar, init=init, identity_output=identity_output, seed=seed)


@_documented('An R2DN with incremental gain at most ``gamma`` (docs/math/r2dn.md#qsr).\n\nFrom equal initial states, ``||y1 - y2|| <= gamma ||u1 - u2||`` over any horizon; the model is\nalso contracting at rate ``abar``.',
             '>>> import numpy as np, r2dn, r2dn.numpy as rn\n>>> model = rn.LipschitzR2DN(nu=2, nx=8, nv=16, ny=1, hidden=(32,), gamma=2.0)\n>>> xT, ys = model.simulate(model.init_state(4), np.zeros((50, 4, 2)))\n>>> r2dn.certify(model).gamma <= 2.0\nTrue',
             hidden_note=' of the network phi (``nv -> hidden -> nv``)')
def lipschitz_r2dn_config(nu: int, nx: int, nv: int, ny: int, hidden: Sequence[int], gamma: float,
                          *, abar: float = 1.0, activation: Activation = "relu", polar: bool = True,
                          eps: float | None = None, init: Literal["random", "long_memory"] = "random",
                          seed: int = 0, dtype: str | None = None, compat: Compat = None,
                          default_dtype: str = "float64") -> ModelConfig:
    return _recurrent("LipschitzR2DN", nu, nx, nv, ny, dtype=dtype, default_dtype=default_dtype,
                      eps=eps, compat=compat, hidden=hidden, gamma=gamma, abar=abar,
                      activation=activation, polar=polar, init=init, seed=seed)


@_documented('An R2DN that is incrementally (Q, S, R)-dissipative (docs/math/r2dn.md#qsr).\n\nFrom equal initial states, ``sum_t dy^T Q dy + 2 du^T S dy + du^T R du >= 0`` over any horizon;\nthe model is also contracting at rate ``abar``.',
             '>>> import numpy as np, r2dn, r2dn.numpy as rn\n>>> Q, S, R = -np.eye(1), np.zeros((2, 1)), 4.0 * np.eye(2)\n>>> model = rn.GeneralR2DN(nu=2, nx=3, nv=4, ny=1, hidden=(8,), Q=Q, S=S, R=R)\n>>> bool(r2dn.certify(model).certified)\nTrue',
             'Conventions: ``S`` is ``(nu, ny)`` (docs/math/index.md#qsr-conventions).',
             hidden_note=' of the network phi (``nv -> hidden -> nv``)')
def general_r2dn_config(nu: int, nx: int, nv: int, ny: int, hidden: Sequence[int], Q: Any, S: Any,
                        R: Any, *, abar: float = 1.0, activation: Activation = "relu",
                        polar: bool = True, eps: float | None = None,
                        init: Literal["random", "long_memory"] = "random", seed: int = 0,
                        dtype: str | None = None, compat: Compat = None,
                        default_dtype: str = "float64") -> ModelConfig:
    return _recurrent("GeneralR2DN", nu, nx, nv, ny, dtype=dtype, default_dtype=default_dtype,
                      eps=eps, compat=compat, hidden=hidden, Q=Q, S=S, R=R, abar=abar,
                      activation=activation, polar=polar, init=init, seed=seed)


#: class name -> the function whose signature that class's constructor has, in every backend.
CONSTRUCTORS: dict[str, Callable[..., ModelConfig]] = {
    "SandwichLayer": sandwich_config,
    "LBDN": lbdn_config,
    "ContractingREN": contracting_ren_config,
    "LipschitzREN": lipschitz_ren_config,
    "GeneralREN": general_ren_config,
    "PassiveREN": passive_ren_config,
    "ContractingR2DN": contracting_r2dn_config,
    "LipschitzR2DN": lipschitz_r2dn_config,
    "GeneralR2DN": general_r2dn_config,
}
