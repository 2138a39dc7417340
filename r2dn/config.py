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
import json
import math
import numbers
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
        R = -2 nu I (DESIGN §3.2).
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


def sandwich_config(in_features: int, out_features: int, *, activation: Activation = "relu",
                    seed: int = 0, dtype: str | None = None, compat: Compat = None,
                    default_dtype: str = "float64") -> ModelConfig:
    """SandwichLayer: a 1-Lipschitz dense layer ``in_features -> out_features``."""
    return _common("SandwichLayer", dtype, default_dtype, None, compat, in_features=in_features,
                   out_features=out_features, activation=activation, seed=seed)


def lbdn_config(in_features: int, hidden: Sequence[int], out_features: int, gamma: float = 1.0, *,
                learn_gamma: bool = False, activation: Activation = "relu", seed: int = 0,
                dtype: str | None = None, compat: Compat = None,
                default_dtype: str = "float64") -> ModelConfig:
    """LBDN: a gamma-Lipschitz MLP of Sandwich layers with a linear last layer."""
    return _common("LBDN", dtype, default_dtype, None, compat, in_features=in_features,
                   hidden=hidden, out_features=out_features, gamma=gamma, learn_gamma=learn_gamma,
                   activation=activation, seed=seed)


def _recurrent(model: str, nu, nx, nv, ny, *, dtype, default_dtype, eps, compat, **kw) -> ModelConfig:
    return _common(model, dtype, default_dtype, eps, compat, nu=nu, nx=nx, nv=nv, ny=ny, **kw)


def contracting_ren_config(nu: int, nx: int, nv: int, ny: int, *, abar: float = 1.0,
                           activation: Activation = "relu", polar: bool = True,
                           eps: float | None = None, init: Literal["random", "long_memory"] = "random",
                           identity_output: bool = False, d22_zero: bool = False, seed: int = 0,
                           dtype: str | None = None, compat: Compat = None,
                           default_dtype: str = "float64") -> ModelConfig:
    """ContractingREN: a REN contracting at rate ``abar``; ``d22_zero`` fixes D22 = 0."""
    return _recurrent("ContractingREN", nu, nx, nv, ny, dtype=dtype, default_dtype=default_dtype,
                      eps=eps, compat=compat, abar=abar, activation=activation, polar=polar,
                      init=init, identity_output=identity_output, d22_zero=d22_zero, seed=seed)


def lipschitz_ren_config(nu: int, nx: int, nv: int, ny: int, gamma: float, *, abar: float = 1.0,
                         activation: Activation = "relu", polar: bool = True,
                         eps: float | None = None, init: Literal["random", "long_memory"] = "random",
                         d22_zero: bool = False, seed: int = 0, dtype: str | None = None,
                         compat: Compat = None, default_dtype: str = "float64") -> ModelConfig:
    """LipschitzREN: a REN with incremental gain at most ``gamma``; ``d22_zero`` fixes D22 = 0."""
    return _recurrent("LipschitzREN", nu, nx, nv, ny, dtype=dtype, default_dtype=default_dtype,
                      eps=eps, compat=compat, gamma=gamma, abar=abar, activation=activation,
                      polar=polar, init=init, d22_zero=d22_zero, seed=seed)


def general_ren_config(nu: int, nx: int, nv: int, ny: int, Q: Any, S: Any, R: Any, *,
                       abar: float = 1.0, activation: Activation = "relu", polar: bool = True,
                       eps: float | None = None, init: Literal["random", "long_memory"] = "random",
                       seed: int = 0, dtype: str | None = None, compat: Compat = None,
                       default_dtype: str = "float64") -> ModelConfig:
    """GeneralREN: a REN that is incrementally (Q, S, R)-dissipative."""
    return _recurrent("GeneralREN", nu, nx, nv, ny, dtype=dtype, default_dtype=default_dtype,
                      eps=eps, compat=compat, Q=Q, S=S, R=R, abar=abar, activation=activation,
                      polar=polar, init=init, seed=seed)


def passive_ren_config(nu: int, nx: int, nv: int, ny: int, *, nu_index: float = 0.0,
                       rho_index: float = 0.0, abar: float = 1.0, activation: Activation = "relu",
                       polar: bool = True, eps: float | None = None,
                       init: Literal["random", "long_memory"] = "random", seed: int = 0,
                       dtype: str | None = None, compat: Compat = None,
                       default_dtype: str = "float64") -> ModelConfig:
    """PassiveREN: a REN that is incrementally passive with indices (nu_index, rho_index); nu == ny."""
    return _recurrent("PassiveREN", nu, nx, nv, ny, dtype=dtype, default_dtype=default_dtype,
                      eps=eps, compat=compat, nu_index=nu_index, rho_index=rho_index, abar=abar,
                      activation=activation, polar=polar, init=init, seed=seed)


def contracting_r2dn_config(nu: int, nx: int, nv: int, ny: int, hidden: Sequence[int], *,
                            abar: float = 1.0, activation: Activation = "relu", polar: bool = True,
                            eps: float | None = None,
                            init: Literal["random", "long_memory"] = "random",
                            identity_output: bool = False, seed: int = 0, dtype: str | None = None,
                            compat: Compat = None, default_dtype: str = "float64") -> ModelConfig:
    """ContractingR2DN: an R2DN contracting at rate ``abar``; ``hidden`` are its LBDN's widths."""
    return _recurrent("ContractingR2DN", nu, nx, nv, ny, dtype=dtype, default_dtype=default_dtype,
                      eps=eps, compat=compat, hidden=hidden, abar=abar, activation=activation,
                      polar=polar, init=init, identity_output=identity_output, seed=seed)


def lipschitz_r2dn_config(nu: int, nx: int, nv: int, ny: int, hidden: Sequence[int], gamma: float,
                          *, abar: float = 1.0, activation: Activation = "relu", polar: bool = True,
                          eps: float | None = None, init: Literal["random", "long_memory"] = "random",
                          seed: int = 0, dtype: str | None = None, compat: Compat = None,
                          default_dtype: str = "float64") -> ModelConfig:
    """LipschitzR2DN: an R2DN with incremental gain at most ``gamma``."""
    return _recurrent("LipschitzR2DN", nu, nx, nv, ny, dtype=dtype, default_dtype=default_dtype,
                      eps=eps, compat=compat, hidden=hidden, gamma=gamma, abar=abar,
                      activation=activation, polar=polar, init=init, seed=seed)


def general_r2dn_config(nu: int, nx: int, nv: int, ny: int, hidden: Sequence[int], Q: Any, S: Any,
                        R: Any, *, abar: float = 1.0, activation: Activation = "relu",
                        polar: bool = True, eps: float | None = None,
                        init: Literal["random", "long_memory"] = "random", seed: int = 0,
                        dtype: str | None = None, compat: Compat = None,
                        default_dtype: str = "float64") -> ModelConfig:
    """GeneralR2DN: an R2DN that is incrementally (Q, S, R)-dissipative."""
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
