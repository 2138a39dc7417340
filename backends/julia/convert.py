"""Map RobustNeuralNetworks.jl 0.3 and Flux objects, as :func:`.bson.read_bson` decodes them,
to r2dn's configs and canonical direct parameters (and, for the bridge and the writer, back).

Field correspondence (Julia -> r2dn; Julia's parameter index order is kept, nothing transposed):

=============================================  ================================================
RobustNeuralNetworks.jl                        r2dn (``compat="julia"``)
=============================================  ================================================
``ContractingRENParams`` / ``Lipschitz..`` /   ``ContractingREN`` / ``LipschitzREN`` /
``GeneralRENParams`` / ``PassiveRENParams``    ``GeneralREN`` / ``PassiveREN``
``nl`` (``relu``, ``tanh``, ``σ``, identity)   ``activation`` (``tanh_fast`` -> ``tanh`` etc.)
``direct.X Y1 X3 Y3 Z3 B2 C2 D12 D21 D22``     ``X Y1 X3 Y3 Z3 B2 C2 D12 D21 D22``
``direct.bx bv by``                            ``bx bv by``
``direct.ρ`` (only when ``polar_param``)       ``p``; ``polar_param`` -> ``polar``
``direct.ϵ``, ``αbar``                          ``eps``, ``abar``
``output_map=false`` (C2 = I, D21 = D22 = 0)   ``identity_output=True`` (ContractingREN)
``D22_zero=true`` (D22 fixed at 0)             ``d22_zero=True`` (ContractingREN, LipschitzREN)
``γ`` (1-vector), ``learn_γ``                  ``gamma`` (fixed; r2dn's RENs do not learn it)
``Q S R`` (``LQ LR`` are checked, then         ``Q S R``
recomputed by r2dn)
``ν``, ``ρ`` of ``PassiveRENParams``           ``nu_index``, ``rho_index``
``DenseLBDNParams``: ``nu nh ny``              ``LBDN``: ``in_features hidden out_features``
``direct.XY[k] α[k] d[k] b[k]``                ``layers.<k-1>.XY a d b`` (output layer: no ``d``)
``direct.log_γ``, ``learn_γ``                  ``gamma = exp(log_γ)``, ``learn_gamma``
                                               (+ ``log_gamma`` when learned)
=============================================  ================================================

Wrappers: ``DiffREN``/``WrapREN`` (their ``nl`` is what Julia evaluates) and ``DiffLBDN`` hold the
parameters; ``LBDN`` holds only explicit layers, mapped back exactly by the inverse Cayley
transform (:func:`inverse_cayley`); ``REN`` holds only explicit matrices and becomes an
:class:`~r2dn.julia.models.ExplicitREN`. A Flux ``Chain`` is unwrapped when its first layer is one
of these models (the rest is reported in :class:`~r2dn.julia.models.JuliaModelInfo`), and a
``Chain`` of ``Dense`` layers becomes an :class:`~r2dn.julia.models.MLP`.

Every structural surprise (a wrong type, a missing field, a wrong shape or dtype, an option r2dn
cannot express) raises :class:`r2dn.errors.BSONError` naming the path inside the file.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import array_api_compat.numpy
import numpy as np

from r2dn import backends, config as cfgs, families
from r2dn._spec.lbdn import inverse_cayley as _inverse_cayley
from .bson import FIELD_NAMES, JuliaStruct, read_bson
from r2dn.config import ModelConfig
from r2dn.errors import BSONError
from r2dn.init import direct_shapes

from .models import EXPLICIT_REN_SHAPES, MLP, ExplicitREN, JuliaModelInfo
from .structs import julia_cholesky_factors

__all__ = [
    "JULIA_ACTIVATIONS", "Converted", "convert_value", "inverse_cayley", "load_direct",
    "load_model",
]

RNN = "RobustNeuralNetworks."
#: Julia activation functions (by function name) and the r2dn activation each one is read as.
JULIA_ACTIVATIONS = {
    "relu": "relu", "tanh": "tanh", "tanh_fast": "tanh", "σ": "sigmoid", "sigmoid": "sigmoid",
    "sigmoid_fast": "sigmoid", "identity": "identity",
}
#: NNlib's fast approximations, read as the exact function (they differ by a few float32 ulps).
_APPROXIMATE = {"tanh_fast": "tanh", "sigmoid_fast": "sigmoid"}
_REN_FAMILIES = {
    RNN + "ContractingRENParams": "ContractingREN", RNN + "LipschitzRENParams": "LipschitzREN",
    RNN + "GeneralRENParams": "GeneralREN", RNN + "PassiveRENParams": "PassiveREN",
}
_MODEL_TYPES = tuple(RNN + t for t in (
    "DiffLBDN", "LBDN", "DenseLBDNParams", "DiffREN", "REN", "WrapREN", "ContractingRENParams",
    "LipschitzRENParams", "GeneralRENParams", "PassiveRENParams"))
#: relative tolerance of the check that a GeneralRENParams' LQ, LR match its Q, S, R.
CHOLESKY_CHECK_RTOL = {"float32": 1e-4, "float64": 1e-8}


@dataclass(frozen=True)
class Converted:
    """A Julia model mapped to r2dn: ``config`` and ``direct`` for an r2dn model, or ``build``
    for an :class:`MLP` / :class:`ExplicitREN`; ``info`` describes what surrounded it."""

    config: ModelConfig | None
    direct: dict[str, np.ndarray] | None
    build: Callable[[str], Any] | None
    info: JuliaModelInfo

    def model(self, backend: str = "numpy") -> Any:
        """The model in the registered ``backend`` (:mod:`r2dn.backends`)."""
        if self.build is not None:
            return self.build(backend)
        return backends.module(backend).from_direct(self.config, self.direct)


# -- small readers that turn surprises into BSONError -----------------------------------------


def _constructor(name: str):
    """The config constructor of family ``name`` (:attr:`r2dn.families.Family.constructor`)."""
    return families.get(name).constructor

def type_name(value: Any) -> str:
    """The Julia type name of a decoded value (``Main.`` dropped), else the Python type name."""
    if isinstance(value, JuliaStruct):
        name = value.type_name
        return name[5:] if name.startswith("Main.") and name.count(".") > 1 else name
    return type(value).__name__


def _describe(value: Any) -> str:
    if isinstance(value, JuliaStruct):
        fn = value.function_name
        return f"the function `{fn}`" if fn else f"a `{type_name(value)}`"
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape} and dtype {value.dtype}"
    return f"{type(value).__name__} {value!r}"[:120]


def _fields(value: Any, names: str | tuple[str, ...], where: str) -> dict[str, Any]:
    """The fields by name of a struct whose type is one of ``names`` (RNN-prefixed or full)."""
    wanted = (names,) if isinstance(names, str) else names
    if not isinstance(value, JuliaStruct) or type_name(value) not in wanted:
        raise BSONError(f"load_model: {where} must be a `{'` or `'.join(wanted)}`; "
                        f"got {_describe(value)}.")
    expected = FIELD_NAMES[type_name(value)]
    if len(value.fields) != len(expected):
        raise BSONError(f"load_model: {where}: `{type_name(value)}` has {len(value.fields)} "
                        f"fields; RobustNeuralNetworks.jl 0.3 / Flux define {len(expected)}: "
                        f"{' '.join(expected)}.")
    return dict(zip(expected, value.fields))


def _int(fields: Mapping[str, Any], name: str, where: str) -> int:
    v = fields[name]
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral) or v < 0:
        raise BSONError(f"load_model: {where}.{name} must be a non-negative integer; "
                        f"got {_describe(v)}.")
    return int(v)


def _bool(fields: Mapping[str, Any], name: str, where: str) -> bool:
    v = fields[name]
    if not isinstance(v, (bool, np.bool_)):
        raise BSONError(f"load_model: {where}.{name} must be a Bool; got {_describe(v)}.")
    return bool(v)


def _real(fields: Mapping[str, Any], name: str, where: str) -> float:
    v = fields[name]
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real) or not math.isfinite(v):
        raise BSONError(f"load_model: {where}.{name} must be a finite real number; "
                        f"got {_describe(v)}.")
    return float(v)


def _array(fields: Mapping[str, Any], name: str, where: str,
           shape: tuple[int | None, ...]) -> np.ndarray:
    v = fields[name] if isinstance(fields, Mapping) else fields
    label = f"{where}.{name}" if name else where
    if not isinstance(v, np.ndarray) or v.dtype.kind != "f":
        raise BSONError(f"load_model: {label} must be a floating-point array of shape "
                        f"{_shape_text(shape)}; got {_describe(v)}.")
    if v.ndim != len(shape) or any(w is not None and w != g for w, g in zip(shape, v.shape)):
        raise BSONError(f"load_model: {label} must have shape {_shape_text(shape)}; "
                        f"got {v.shape}.")
    if not np.all(np.isfinite(v)):
        raise BSONError(f"load_model: {label} holds non-finite values.")
    return v


def _shape_text(shape: tuple[int | None, ...]) -> str:
    inner = ", ".join("?" if s is None else str(s) for s in shape)
    return f"({inner},)" if len(shape) == 1 else f"({inner})"


def _tuple(fields: Mapping[str, Any], name: str, where: str, length: int) -> tuple:
    v = fields[name]
    if not isinstance(v, (tuple, list)) or len(v) != length:
        got = f"a tuple of {len(v)}" if isinstance(v, (tuple, list)) else _describe(v)
        raise BSONError(f"load_model: {where}.{name} must be a tuple of {length} entries; "
                        f"got {got}.")
    return tuple(v)


def _activation(value: Any, where: str, notes: list[str]) -> str:
    fn = value.function_name if isinstance(value, JuliaStruct) else None
    if fn not in JULIA_ACTIVATIONS:
        raise BSONError(f"load_model: {where} must be one of the Julia functions "
                        f"{', '.join(JULIA_ACTIVATIONS)}; got {_describe(value)}.")
    if fn in _APPROXIMATE:
        notes.append(f"{where}: NNlib's `{fn}` is read as the exact `{_APPROXIMATE[fn]}` "
                     "(they differ by a few float32 ulps)")
    return JULIA_ACTIVATIONS[fn]


def _check_inner_nl(inner: Any, wrapper_nl: Any, act: str, where: str, notes: list[str]) -> None:
    """A wrapper (DiffREN, DiffLBDN) evaluates its own ``nl``; note a different ``params.nl``."""
    if wrapper_nl is None:
        return
    fn = inner.function_name if isinstance(inner, JuliaStruct) else None
    if JULIA_ACTIVATIONS.get(fn) != act:
        notes.append(f"{where}.nl is {_describe(inner)} but the wrapper's nl, which Julia "
                     f"evaluates, is `{act}`; the model uses `{act}`")


def _dtype(arrays: list[np.ndarray], dtype: str | None, where: str) -> str:
    if dtype is not None:
        if dtype not in cfgs.DTYPES:
            raise ValueError(f"load_model: `dtype` must be None, 'float32' or 'float64'; "
                             f"got {dtype!r}.")
        return dtype
    kinds = sorted({str(a.dtype) for a in arrays if a.size})
    if len(kinds) != 1 or kinds[0] not in cfgs.DTYPES:
        raise BSONError(f"load_model: {where}: parameters have dtypes {kinds}; r2dn reads one of "
                        f"float32, float64 (pass `dtype=` to cast).")
    return kinds[0]


def _config(ctor: Callable[..., ModelConfig], where: str, *args: Any, **kwargs: Any) -> ModelConfig:
    try:
        return ctor(*args, compat="julia", **kwargs)
    except (ValueError, TypeError) as err:
        raise BSONError(f"load_model: {where}: the Julia model is outside what r2dn can "
                        f"represent: {err}") from err


def _finish(cfg: ModelConfig, direct: dict[str, np.ndarray], where: str) -> dict[str, np.ndarray]:
    shapes = direct_shapes(cfg)
    if set(shapes) != set(direct):  # an internal inconsistency, never a property of the file
        raise AssertionError(f"{where}: mapped names {sorted(direct)} != {sorted(shapes)}")
    for k, shape in shapes.items():
        if direct[k].shape != shape:
            raise BSONError(f"load_model: {where}: `{k}` has shape {direct[k].shape}; the "
                            f"model's sizes need {shape}.")
    return {k: np.array(direct[k], dtype=np.float64) for k in shapes}


# -- RENs ---------------------------------------------------------------------------------------

def _ren(params: Any, nl: Any, where: str, dtype: str | None, notes: list[str],
         nl_where: str = "") -> tuple[ModelConfig, dict[str, np.ndarray]]:
    f = _fields(params, tuple(_REN_FAMILIES), where)
    family = _REN_FAMILIES[type_name(params)]
    act = _activation(f["nl"] if nl is None else nl, nl_where or f"{where}.nl", notes)
    _check_inner_nl(f["nl"], nl, act, where, notes)
    nu, nx, nv, ny = (_int(f, k, where) for k in ("nu", "nx", "nv", "ny"))
    dw = f"{where}.direct"
    d = _fields(f["direct"], RNN + "DirectRENParams", dw)
    flags = {k: _bool(d, k, dw) for k in ("polar_param", "D22_free", "D22_zero", "output_map")}
    n = 2 * nx + nv
    direct = {"X": _array(d, "X", dw, (n, n)), "Y1": _array(d, "Y1", dw, (nx, nx)),
              "B2": _array(d, "B2", dw, (nx, nu)), "D12": _array(d, "D12", dw, (nv, nu)),
              "bx": _array(d, "bx", dw, (nx,)), "bv": _array(d, "bv", dw, (nv,))}
    if flags["polar_param"]:
        direct["p"] = _array(d, "ρ", dw, (1,))
    C2 = _array(d, "C2", dw, (None, nx))
    if C2.shape[0] != ny:
        if flags["output_map"] or C2.shape[0] != nx:
            raise BSONError(f"load_model: {dw}.C2 must have shape ({ny}, {nx}) (ny={ny}, "
                            f"nx={nx}); got {C2.shape}.")
        notes.append(f"{where}: output_map=false makes ny = nx = {nx} (the struct says ny={ny})")
        ny = nx
    C2, D21, D22, by = (C2, _array(d, "D21", dw, (ny, nv)), _array(d, "D22", dw, (ny, nu)),
                        _array(d, "by", dw, (ny,)))
    eps, abar = _real(d, "ϵ", dw), _real(f, "αbar", where)
    common = dict(abar=abar, activation=act, polar=flags["polar_param"], eps=eps)
    arrays = list(direct.values()) + [C2, D21, D22, by]
    kw: dict[str, Any] = {}
    d22_zero = flags["D22_zero"] and not np.any(D22)
    if family == "ContractingREN":
        identity = (not flags["output_map"] and ny == nx and np.array_equal(C2, np.eye(nx))
                    and not np.any(D21) and not np.any(D22) and not np.any(by))
        if not flags["output_map"] and not identity:
            notes.append(f"{where}: output_map=false but C2, D21, D22, by are not (I, 0, 0, 0); "
                         "they are kept as free parameters (Julia evaluates them as they are)")
        if flags["D22_zero"] and np.any(D22):
            notes.append(f"{where}: D22_zero=true but D22 is not zero; D22 is kept as a free "
                         "parameter (Julia evaluates it as it is)")
        kw = dict(identity_output=identity, d22_zero=d22_zero and not identity)
        if not identity:
            direct.update(C2=C2, D21=D21, by=by)
            if not kw["d22_zero"]:
                direct["D22"] = D22
    else:
        direct.update(C2=C2, D21=D21, by=by)
        if family == "LipschitzREN" and flags["D22_zero"]:
            if np.any(D22):
                raise BSONError(f"load_model: {dw}: D22_zero=true with a non-zero D22; r2dn's "
                                "LipschitzREN cannot hold a fixed non-zero D22.")
            kw["d22_zero"] = True
        else:
            dd = min(nu, ny)
            for k, shape in (("X3", (dd, dd)), ("Y3", (dd, dd)), ("Z3", (abs(ny - nu), dd))):
                direct[k] = _array(d, k, dw, shape)
                arrays.append(direct[k])
    dtype = _dtype(arrays, dtype, where)
    if family == "ContractingREN":
        cfg = _config(_constructor("ContractingREN"), where, nu, nx, nv, ny, dtype=dtype, **common,
                      **kw)
    elif family == "LipschitzREN":
        gamma = _array(f, "γ", where, (1,))
        if _bool(f, "learn_γ", where):
            notes.append(f"{where}: learn_γ=true; r2dn's LipschitzREN keeps "
                         f"gamma={float(gamma[0])!r} fixed")
        cfg = _config(_constructor("LipschitzREN"), where, nu, nx, nv, ny, float(gamma[0]),
                      dtype=dtype, **common, **kw)
    elif family == "GeneralREN":
        Q, S, R = (_array(f, k, where, s) for k, s in (("Q", (ny, ny)), ("S", (nu, ny)),
                                                       ("R", (nu, nu))))
        _check_cholesky(f, Q, S, R, where, dtype)
        cfg = _config(_constructor("GeneralREN"), where, nu, nx, nv, ny, Q, S, R, dtype=dtype,
                      **common)
    else:
        cfg = _config(_constructor("PassiveREN"), where, nu, nx, nv, ny,
                      nu_index=_real(f, "ν", where), rho_index=_real(f, "ρ", where), dtype=dtype,
                      **common)
    return cfg, _finish(cfg, direct, where)


def _check_cholesky(f: Mapping[str, Any], Q: np.ndarray, S: np.ndarray, R: np.ndarray, where: str,
                    dtype: str) -> None:
    """Julia stores LQ, LR (upper Cholesky factors of -Q and R - S Q^-1 S^T); r2dn recomputes
    them from Q, S, R, so they must agree."""
    LQ = _array(f, "LQ", where, Q.shape)
    LR = _array(f, "LR", where, R.shape)
    try:
        want_q, want_r = julia_cholesky_factors(Q, S, R)
    except np.linalg.LinAlgError as err:
        raise BSONError(f"load_model: {where}: -Q or R - S Q^-1 S^T is not positive definite "
                        f"({err}).") from err
    tol = CHOLESKY_CHECK_RTOL[dtype]
    for name, got, want in (("LQ", LQ, want_q), ("LR", LR, want_r)):
        err = np.max(np.abs(got - want), initial=0.0) / max(1.0, np.max(np.abs(want), initial=0.0))
        if err > tol:
            raise BSONError(f"load_model: {where}.{name} is not the upper Cholesky factor that "
                            f"Q, S, R give (relative error {err:.3g} > {tol:g}).")


def _explicit_ren(value: Any, where: str, dtype: str | None, notes: list[str]) -> Callable:
    f = _fields(value, RNN + "REN", where)
    act = _activation(f["nl"], f"{where}.nl", notes)
    sizes = {k: _int(f, k, where) for k in ("nu", "nx", "nv", "ny")}
    ew = f"{where}.explicit"
    e = _fields(f["explicit"], RNN + "ExplicitRENParams", ew)
    arrays = {k: _array(e, k, ew, tuple(sizes[n] for n in names))
              for k, names in EXPLICIT_REN_SHAPES.items()}
    dtype = _dtype(list(arrays.values()), dtype, where)
    if np.any(np.triu(arrays["D11"])):
        notes.append(f"{ew}.D11: entries on or above the diagonal are ignored (Julia's solver "
                     "reads only the strict lower triangle)")
    notes.append(f"{where}: a `REN` stores explicit matrices only; the model is an uncertified "
                 "ExplicitREN (save `DiffREN(ps)` in Julia for a full r2dn model)")
    return lambda backend: ExplicitREN(arrays, act, backend=backend, dtype=dtype)


# -- LBDNs --------------------------------------------------------------------------------------

def _lbdn(params: Any, nl: Any, where: str, dtype: str | None, notes: list[str],
          nl_where: str = "") -> tuple[ModelConfig, dict[str, np.ndarray]]:
    f = _fields(params, RNN + "DenseLBDNParams", where)
    act = _activation(f["nl"] if nl is None else nl, nl_where or f"{where}.nl", notes)
    _check_inner_nl(f["nl"], nl, act, where, notes)
    nu, ny = _int(f, "nu", where), _int(f, "ny", where)
    nh = f["nh"]
    if not isinstance(nh, tuple) or not all(isinstance(h, int) and not isinstance(h, bool)
                                            for h in nh):
        raise BSONError(f"load_model: {where}.nh must be a tuple of integers; got {_describe(nh)}.")
    L = len(nh)
    dw = f"{where}.direct"
    d = _fields(f["direct"], RNN + "DirectLBDNParams", dw)
    XY, alpha, b = (_tuple(d, k, dw, L + 1) for k in ("XY", "α", "b"))
    ds = _tuple(d, "d", dw, L)
    widths = (nu, *nh, ny)
    direct: dict[str, np.ndarray] = {}
    for k in range(L + 1):
        n_in, n_out = widths[k], widths[k + 1]
        pre = f"layers.{k}."
        direct[pre + "XY"] = _array(XY[k], "", f"{dw}.XY[{k + 1}]", (n_out + n_in, n_out))
        direct[pre + "a"] = _array(alpha[k], "", f"{dw}.α[{k + 1}]", (1,))
        if k < L:
            direct[pre + "d"] = _array(ds[k], "", f"{dw}.d[{k + 1}]", (n_out,))
        direct[pre + "b"] = _array(b[k], "", f"{dw}.b[{k + 1}]", (n_out,))
    log_gamma = _array(d, "log_γ", dw, (1,))
    learn = _bool(d, "learn_γ", dw)
    if learn:
        direct["log_gamma"] = log_gamma
    dtype = _dtype(list(direct.values()) + [log_gamma], dtype, where)
    cfg = _config(_constructor("LBDN"), where, nu, nh, ny, math.exp(float(log_gamma[0])),
                  learn_gamma=learn, activation=act, dtype=dtype)
    return cfg, _finish(cfg, direct, where)


def inverse_cayley(A_T: np.ndarray, B: np.ndarray) -> np.ndarray:
    """The ``XY`` of one Sandwich layer from RobustNeuralNetworks.jl's ``(A_T, B)``, in float64:
    :func:`r2dn._spec.lbdn.inverse_cayley`; with ``a = ||XY||_F`` it reproduces ``A_T`` and ``B``.
    """
    return _inverse_cayley(A_T.astype(np.float64), B.astype(np.float64), xp=array_api_compat.numpy)


def _explicit_lbdn(value: Any, where: str, dtype: str | None,
                   notes: list[str]) -> tuple[ModelConfig, dict[str, np.ndarray]]:
    f = _fields(value, RNN + "LBDN", where)
    act = _activation(f["nl"], f"{where}.nl", notes)
    nu, ny = _int(f, "nu", where), _int(f, "ny", where)
    nh = f["nh"]
    if not isinstance(nh, tuple) or not all(isinstance(h, int) and not isinstance(h, bool)
                                            for h in nh):
        raise BSONError(f"load_model: {where}.nh must be a tuple of integers; got {_describe(nh)}.")
    L = len(nh)
    ew = f"{where}.explicit"
    e = _fields(f["explicit"], RNN + "ExplicitLBDNParams", ew)
    A_T, B, b = (_tuple(e, k, ew, L + 1) for k in ("A_T", "B", "b"))
    psi = _tuple(e, "Ψd", ew, L)
    widths = (nu, *nh, ny)
    direct: dict[str, np.ndarray] = {}
    raw = []
    for k in range(L + 1):
        n_in, n_out = widths[k], widths[k + 1]
        pre = f"layers.{k}."
        a_t = _array(A_T[k], "", f"{ew}.A_T[{k + 1}]", (n_out, n_out))
        bk = _array(B[k], "", f"{ew}.B[{k + 1}]", (n_out, n_in))
        raw += [a_t, bk]
        XY = inverse_cayley(a_t, bk)
        direct[pre + "XY"] = XY
        direct[pre + "a"] = np.array([np.linalg.norm(XY)])
        if k < L:
            p = _array(psi[k], "", f"{ew}.Ψd[{k + 1}]", (n_out,))
            if np.any(p <= 0):
                raise BSONError(f"load_model: {ew}.Ψd[{k + 1}] must be positive (it is exp(d)).")
            direct[pre + "d"] = np.log(p.astype(np.float64))
            raw.append(p)
        direct[pre + "b"] = _array(b[k], "", f"{ew}.b[{k + 1}]", (n_out,))
    sqrt_gamma = _array(e, "sqrtγ", ew, (1,))
    if sqrt_gamma[0] <= 0:
        raise BSONError(f"load_model: {ew}.sqrtγ must be positive; got {float(sqrt_gamma[0])!r}.")
    dtype = _dtype(raw + [sqrt_gamma], dtype, where)
    notes.append(f"{where}: an `LBDN` stores explicit layers; its direct parameters were "
                 "recovered by the inverse Cayley transform (exact up to rounding)")
    cfg = _config(_constructor("LBDN"), where, nu, nh, ny, float(sqrt_gamma[0]) ** 2, activation=act,
                  dtype=dtype)
    return cfg, _finish(cfg, direct, where)


# -- Flux ---------------------------------------------------------------------------------------

def _dense_layers(layers: list[Any], where: str, dtype: str | None,
                  notes: list[str]) -> Callable:
    weights, biases, acts = [], [], []
    n_prev = None
    for k, layer in enumerate(layers):
        lw = f"{where}[{k + 1}]"
        f = _fields(layer, "Flux.Dense", lw)
        W = _array(f, "weight", lw, (None, n_prev))
        bias = f["bias"]
        if bias is False or (isinstance(bias, np.bool_) and not bias):
            bias = np.zeros(W.shape[0], dtype=W.dtype)
        b = _array(bias, "", f"{lw}.bias", (W.shape[0],))
        weights.append(W)
        biases.append(b)
        acts.append(_activation(f["σ"], f"{lw}.σ", notes))
        n_prev = W.shape[0]
    dtype = _dtype(weights + biases, dtype, where)
    return lambda backend: MLP(weights, biases, acts, backend=backend, dtype=dtype)


def _layer_text(value: Any) -> str:
    if isinstance(value, JuliaStruct):
        fn = value.function_name
        if fn:
            return fn
        if type_name(value) == "Flux.Dense" and len(value.fields) == 3 and \
                isinstance(value.fields[0], np.ndarray) and value.fields[0].ndim == 2:
            n_out, n_in = value.fields[0].shape
            return f"Flux.Dense({n_in} => {n_out})"
        return type_name(value)
    return _describe(value)


def convert_value(value: Any, *, where: str = "value", dtype: str | None = None) -> Converted:
    """Map one decoded Julia value (a model, its parameters, or a Flux ``Chain``) to r2dn.

    Parameters
    ----------
    value : JuliaStruct
        As :func:`.bson.read_bson` returns it.
    where : str
        Where the value came from, for error messages.
    dtype : {"float32", "float64"}, optional
        Cast the parameters; default: the dtype they have in the file.

    Returns
    -------
    Converted

    Raises
    ------
    BSONError
        On any structural surprise, naming the path inside the value.
    """
    notes: list[str] = []
    chain: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    julia_type = type_name(value)
    if julia_type == "Flux.Chain":
        f = _fields(value, "Flux.Chain", where)
        layers = f["layers"]
        if not isinstance(layers, (tuple, list)) or not layers:
            raise BSONError(f"load_model: {where}.layers must be a non-empty tuple of layers; "
                            f"got {_describe(layers)}.")
        chain = tuple(_layer_text(x) for x in layers)
        if type_name(layers[0]) == "Flux.Dense":
            n = 1
            while n < len(layers) and type_name(layers[n]) == "Flux.Dense":
                n += 1
            build = _dense_layers(list(layers[:n]), f"{where}.layers", dtype, notes)
            return Converted(None, None, build, JuliaModelInfo(
                julia_type, "Flux.Dense", chain, chain[n:], tuple(notes)))
        if type_name(layers[0]) not in _MODEL_TYPES:
            raise BSONError(f"load_model: {where}.layers[1] must be a RobustNeuralNetworks.jl "
                            f"model or a Flux.Dense; got {_describe(layers[0])}.")
        inner = convert_value(layers[0], where=f"{where}.layers[1]", dtype=dtype)
        return Converted(inner.config, inner.direct, inner.build, JuliaModelInfo(
            julia_type, inner.info.model_type, chain, chain[1:], inner.info.notes))
    if julia_type == "Flux.Dense":
        build = _dense_layers([value], where, dtype, notes)
        return Converted(None, None, build, JuliaModelInfo(julia_type, julia_type))
    wrappers = {RNN + "DiffREN": "params", RNN + "WrapREN": "params", RNN + "DiffLBDN": "params"}
    if julia_type in wrappers:
        f = _fields(value, julia_type, where)
        inner_where = f"{where}.params"
        nl = f["nl"]
        if julia_type == RNN + "WrapREN":
            notes.append(f"{where}: a `WrapREN` is read from its `params` (its stored explicit "
                         "matrices are not used)")
        if julia_type == RNN + "DiffLBDN":
            cfg, direct = _lbdn(f["params"], nl, inner_where, dtype, notes, f"{where}.nl")
        else:
            cfg, direct = _ren(f["params"], nl, inner_where, dtype, notes, f"{where}.nl")
        return Converted(cfg, direct, None, JuliaModelInfo(julia_type, julia_type,
                                                           notes=tuple(notes)))
    if julia_type == RNN + "DenseLBDNParams":
        cfg, direct = _lbdn(value, None, where, dtype, notes)
    elif julia_type in _REN_FAMILIES:
        cfg, direct = _ren(value, None, where, dtype, notes)
    elif julia_type == RNN + "LBDN":
        cfg, direct = _explicit_lbdn(value, where, dtype, notes)
    elif julia_type == RNN + "REN":
        build = _explicit_ren(value, where, dtype, notes)
        return Converted(None, None, build, JuliaModelInfo(julia_type, julia_type,
                                                           notes=tuple(notes)))
    else:
        raise BSONError(f"load_model: {where} must be a RobustNeuralNetworks.jl model or "
                        f"parameters ({', '.join(t[len(RNN):] for t in _MODEL_TYPES)}), a Flux "
                        f"Chain or a Flux Dense; got {_describe(value)}.")
    return Converted(cfg, direct, None, JuliaModelInfo(julia_type, julia_type, notes=tuple(notes)))


def _read(path: str | os.PathLike, key: str, dtype: str | None, max_size: int | None) -> Converted:
    if not isinstance(key, str):
        raise TypeError(f"load_model: `key` must be a str; got {type(key).__name__}.")
    kwargs = {} if max_size is None else {"max_size": max_size}
    data = read_bson(path, **kwargs)
    where = f"file {os.fsdecode(os.fspath(path))!r}, key {key!r}"
    if key not in data:
        raise BSONError(f"load_model: file {os.fsdecode(os.fspath(path))!r} has no key {key!r}; "
                        f"its keys are {sorted(data)}.")
    conv = convert_value(data[key], where=where, dtype=dtype)
    others = tuple(sorted(k for k in data if k != key))
    info = conv.info
    info = JuliaModelInfo(info.julia_type, info.model_type, info.chain, info.after, info.notes,
                          others)
    return Converted(conv.config, conv.direct, conv.build, info)


def load_direct(path: str | os.PathLike, key: str = "model", *, dtype: str | None = None,
                max_size: int | None = None) -> Converted:
    """Read a Julia model as r2dn's ``(config, direct)`` without building it (as :func:`load_model`).

    Returns
    -------
    Converted
        ``config`` (``compat="julia"``) and ``direct`` (float64 NumPy arrays by canonical name) for
        an r2dn model, or ``build(backend)`` for an :class:`MLP`/:class:`ExplicitREN`; and
        ``info``.
    """
    return _read(path, key, dtype, max_size)


def load_model(path: str | os.PathLike, key: str = "model", *, backend: str = "numpy",
               dtype: str | None = None, return_info: bool = False,
               max_size: int | None = None) -> Any:
    """Load a model that RobustNeuralNetworks.jl (or Flux) saved with BSON.jl. No Julia needed.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.bson`` file. It is read by :func:`.bson.read_bson`, which never evaluates code.
    key : str
        The top-level key holding the model (``bson(path, Dict("model" => model))``).
    backend : str
        A registered backend (:func:`r2dn.backends.names`), where the model lives:
        ``r2dn.backend(backend).from_direct(config, direct)``.
    dtype : {"float32", "float64"}, optional
        The model's dtype; default: the parameters' dtype in the file (Julia's ``T``).
    return_info : bool
        Also return a :class:`JuliaModelInfo` (what the ``Chain`` held after the model, e.g.
        ``softmax``; conversion notes; the file's other keys).
    max_size : int, optional
        Largest file accepted, in bytes (default: :data:`.bson.DEFAULT_MAX_SIZE`).

    Returns
    -------
    model or (model, JuliaModelInfo)
        An r2dn model with ``compat="julia"`` (``LBDN``, ``ContractingREN``, ``LipschitzREN``,
        ``GeneralREN``, ``PassiveREN``) whose ``direct()`` holds Julia's parameters under r2dn's
        canonical names, in Julia's index order; or an :class:`MLP` for a ``Chain`` of ``Dense``
        layers; or an :class:`ExplicitREN` for Julia's explicit-only ``REN``. Signals are r2dn's
        batch-first ``(batch, n)``, where Julia's are ``(n, batch)``.

    Raises
    ------
    BSONError
        If the file is malformed, lacks ``key``, or holds something r2dn cannot map (a wrong
        type, a missing field, a wrong shape, an unsupported activation or option); the message
        names the path inside the file.
    ValueError
        For a wrong ``backend`` or ``dtype``.

    Examples
    --------
    >>> import r2dn.julia                                                   # doctest: +SKIP
    >>> model, info = r2dn.julia.load_model("lbdn_mnist.bson", return_info=True)  # doctest: +SKIP
    >>> info.after                                                           # doctest: +SKIP
    ('softmax',)
    """
    backends.check_name("load_model", backend)
    conv = _read(path, key, dtype, max_size)
    model = conv.model(backend)
    return (model, conv.info) if return_info else model
