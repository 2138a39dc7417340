"""Model configurations: one frozen, validated, JSON-serialisable record per model.

A :class:`ModelConfig` holds everything about a model that is not a trained parameter: the class,
the sizes, the options, the dtype and the fixed data of the certificate (gamma unless learned,
abar, Q, S, R, the passivity indices). It is hashable, so a JAX model can keep it as static data,
and it round-trips through JSON, so a checkpoint can carry it.

Every config follows the common rules here (:func:`_validate`), then its family's options and
rules (:mod:`r2dn.families`). Each family's constructor, in its own module, is built from
:func:`documented` and :func:`build`/:func:`build_recurrent`; every backend's class for the
family takes its signature, so the arguments and their validation live in one place.
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

from . import families
from .compat import COMPAT_CHOICES, Compat, default_eps
from .families import OPTIONS, Family

ACTIVATIONS = ("relu", "tanh", "sigmoid", "identity")
INITS = ("random", "long_memory")
DTYPES = ("float32", "float64")

#: names read from the family registry on access (:mod:`r2dn.families`): see :func:`__getattr__`.
_VIEWS = ("FAMILIES", "REN_FAMILIES", "R2DN_FAMILIES", "RECURRENT_FAMILIES", "FEEDFORWARD_FAMILIES",
          "CONTRACTING_FAMILIES", "LIPSCHITZ_FAMILIES", "D22_ZERO_FAMILIES", "CONSTRUCTORS")

Matrix = tuple[tuple[float, ...], ...]
Activation = str | Callable[[Any], Any]


@dataclass(frozen=True)
class ModelConfig:
    """Everything about a model except its free parameters.

    Fields that do not apply to a family keep their defaults (``None`` or empty) and are checked
    to do so. ``eps`` is stored resolved (the value the maps use), so a model converted to another
    backend or dtype computes the same maps.

    Examples
    --------
    >>> import r2dn.numpy as rn
    >>> from r2dn.config import ModelConfig
    >>> cfg = rn.LipschitzR2DN(2, 3, 4, 1, (8,), 2.0).config
    >>> ModelConfig.from_json(cfg.to_json()) == cfg
    True
    >>> cfg.family, cfg.spec().gain(cfg)
    ('r2dn', 2.0)
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
        """The structure of the model: ``"lbdn"``, ``"sandwich"``, ``"ren"`` or ``"r2dn"``
        (its family record's ``kind``)."""
        return self.spec().kind

    @property
    def is_recurrent(self) -> bool:
        return self.spec().recurrent

    def spec(self) -> Family:
        """The model's :class:`r2dn.families.Family` record (constructor, rules, shapes, maps)."""
        return families.get(self.model)

    def supply(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """The incremental supply rate (Q, S, R) as float64 arrays; ``None`` for contracting models.

        Lipschitz models use Q = -I/gamma, S = 0, R = gamma I; passive RENs Q = -2 rho I, S = I,
        R = -2 nu I (docs/math/index.md#incremental). Declared by each family's record.
        """
        supply = self.spec().supply
        return None if supply is None else supply(self)

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


def check_qsr(c: ModelConfig) -> None:
    """The rule of (Q, S, R) families: shapes, Q and R symmetric, Q < 0, R - S Q^-1 S^T > 0."""
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


def check_identity_output(c: ModelConfig) -> None:
    """The rule of ``identity_output=True``: the output is the state, so ``ny == nx``."""
    if c.identity_output and c.ny != c.nx:
        raise ValueError(f"{c.model}: `identity_output=True` needs ny == nx; got ny={c.ny}, nx={c.nx}.")


def check_gamma(c: ModelConfig) -> None:
    """The rule of families with a gain bound: ``gamma`` finite and > 0."""
    _check_positive(c.model, "gamma", c.gamma)


def _check_options(c: ModelConfig, family: Family) -> None:
    """Optional fields the family does not take must keep their defaults."""
    for name, default in OPTIONS.items():
        value = getattr(c, name)
        if name in family.options or value is default or value == default:
            continue
        takers = families.with_option(name)
        where = " and ".join(takers) if takers else "no registered family"
        raise ValueError(f"{c.model}: `{name}` does not apply to this model (it applies to "
                         f"{where} only); got {name}={value!r}.")


def _validate(c: ModelConfig) -> None:
    """The rules every config follows, then its family's (:attr:`r2dn.families.Family.rules`)."""
    owner = c.model
    family = families.get(owner)
    if family.kind in ("lbdn", "sandwich"):
        _check_size(owner, "in_features", c.in_features)
        _check_size(owner, "out_features", c.out_features)
    else:
        for name in ("nu", "nx", "nv", "ny"):
            _check_size(owner, name, getattr(c, name))
    if not isinstance(c.hidden, tuple) or any(not _is_int(h) or h < 1 for h in c.hidden):
        raise ValueError(f"{owner}: `hidden` must be a tuple of positive integers; got {c.hidden!r}.")
    if family.kind == "sandwich" and c.hidden:
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
    _check_options(c, family)
    for rule in family.rules:
        rule(c)


# -- constructors: the signatures every backend's model classes share ---------------------------

#: numpydoc entries of the constructor arguments, shared by every family's constructor.
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


def documented(summary: str, example: str, notes: str = "", **fill: str) -> Callable:
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


def build(model: str, dtype: str | None, default_dtype: str, eps: float | None,
          compat: Compat, **kw: Any) -> ModelConfig:
    """The config of family ``model`` from a constructor's arguments: ``dtype=None`` is the
    backend's ``default_dtype``, ``eps=None`` the preset's default, ``hidden`` and Q, S, R
    normalised; the config then validates itself."""
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


def build_recurrent(model: str, nu, nx, nv, ny, *, dtype, default_dtype, eps, compat, **kw
                    ) -> ModelConfig:
    """:func:`build` for a recurrent family: the sizes ``nu, nx, nv, ny`` first."""
    return build(model, dtype, default_dtype, eps, compat, nu=nu, nx=nx, nv=nv, ny=ny, **kw)


def __getattr__(name: str) -> Any:
    """Views of the family registry (:mod:`r2dn.families`), read when asked so they include
    families registered at run time: ``FAMILIES`` (every name, catalogue order), ``REN_FAMILIES``,
    ``R2DN_FAMILIES``, ``RECURRENT_FAMILIES``, ``FEEDFORWARD_FAMILIES``, ``CONTRACTING_FAMILIES``
    (no supply), ``LIPSCHITZ_FAMILIES`` (a gain bound), ``D22_ZERO_FAMILIES`` (the option
    ``d22_zero``) and ``CONSTRUCTORS`` (name -> constructor)."""
    if name not in _VIEWS:
        raise AttributeError(f"module 'r2dn.config' has no attribute {name!r}")
    records = [families.get(n) for n in families.names()]
    if name == "CONSTRUCTORS":
        return {f.name: f.constructor for f in records}
    if name == "D22_ZERO_FAMILIES":
        return families.with_option("d22_zero")
    pick = {
        "FAMILIES": lambda f: True,
        "REN_FAMILIES": lambda f: f.kind == "ren",
        "R2DN_FAMILIES": lambda f: f.kind == "r2dn",
        "FEEDFORWARD_FAMILIES": lambda f: not f.recurrent,
        "CONTRACTING_FAMILIES": lambda f: f.contracting,
        "LIPSCHITZ_FAMILIES": lambda f: f.recurrent and f.gain is not None,
    }
    if name == "RECURRENT_FAMILIES":
        return tuple(f.name for f in records if f.kind == "ren") + \
            tuple(f.name for f in records if f.kind == "r2dn")
    return tuple(f.name for f in records if pick[name](f))
