"""r2dn models as RobustNeuralNetworks.jl 0.3 objects, written as :class:`.bson.JuliaStruct`
trees (the inverse of :mod:`r2dn.julia.convert`).

One description of the Julia side serves three users: the BSON writer
(:func:`r2dn.julia.write_bson`), the live bridge (:mod:`r2dn.julia.bridge`, which passes the same
fields to Julia constructors), and the tests (``convert_value(julia_struct(model))`` must give
back the model's config and parameters exactly).

===========================  ===================================================================
r2dn model                   Julia object
===========================  ===================================================================
``ContractingREN``           ``DiffREN(ContractingRENParams{T}(nl, nu, nx, nv, ny, direct, αbar))``
``LipschitzREN``             ``DiffREN(LipschitzRENParams{T}(..., αbar, [γ], false))``
``GeneralREN``               ``DiffREN(GeneralRENParams{T}(..., αbar, Q, S, R, LQ, LR))``
``PassiveREN``               ``DiffREN(PassiveRENParams{T}(..., αbar, ν, ρ))``
``LBDN``                     ``DiffLBDN(DenseLBDNParams{T, L}(nl, nu, nh, ny, direct))``
===========================  ===================================================================

``direct`` is a ``DirectRENParams{T}`` (``X Y1 X3 Y3 Z3 B2 C2 D12 D21 D22 bx bv by ϵ ρ polar_param
D22_free D22_zero output_map``; absent parameters are filled as Julia's constructors fill them:
``X3 = Y3 = Z3 = zeros(0, 0)`` when D22 is free or zero, ``ρ = [‖X‖_F]`` without the polar
parameterisation, ``C2 = I, D21 = 0, D22 = 0, by = 0`` with an identity output) or a
``DirectLBDNParams{T, L+1, L}`` (tuples ``XY α d b``, ``log_γ``, ``learn_γ``). R2DNs have no
RobustNeuralNetworks.jl counterpart; the bridge assembles them in its Julia shim instead.
"""

from __future__ import annotations

import math
from typing import Any

import array_api_compat.numpy
import numpy as np

from r2dn._model import to_numpy
from r2dn._spec.supply import supply_factors
from r2dn.config import REN_FAMILIES, ModelConfig

from .bson import JuliaStruct, JuliaType

__all__ = ["JULIA_FUNCTION_TYPES", "check_julia_compatible", "julia_cholesky_factors",
           "julia_function", "julia_struct", "lbdn_params_struct", "ren_params_struct"]

RNN = "RobustNeuralNetworks."
#: The Julia type of each r2dn activation as BSON.jl names it (NNlib for relu and σ, Base else).
JULIA_FUNCTION_TYPES = {
    "relu": "NNlib.#relu", "tanh": "Main.Base.#tanh", "sigmoid": "NNlib.#σ",
    "identity": "Main.Base.#identity",
}
_FLOAT = {"float32": "Core.Float32", "float64": "Core.Float64"}


def julia_function(name: str) -> JuliaStruct:
    """The named Julia function ``name`` (an r2dn activation name) as BSON.jl stores it."""
    return JuliaStruct(JULIA_FUNCTION_TYPES[name], [], [])


def julia_cholesky_factors(Q: np.ndarray, S: np.ndarray,
                           R: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(LQ, LR)`` as ``GeneralRENParams`` stores them: upper Cholesky factors of ``-Q`` and of
    ``R - S Q^-1 S^T`` (both symmetrised, as Julia's ``Hermitian``), in float64."""
    Q, S, R = (np.asarray(m, dtype=np.float64) for m in (Q, S, R))
    L_Q, L_R, _ = supply_factors((Q + Q.T) / 2, S, (R + R.T) / 2, xp=array_api_compat.numpy)
    return L_Q, L_R


def check_julia_compatible(config: ModelConfig, owner: str) -> None:
    """Raise ``ValueError`` unless RobustNeuralNetworks.jl computes the same model as ``config``.

    Julia's conventions are those of ``compat="julia"``; ``compat=None`` differs only in the D22
    of Lipschitz and general RENs with ny < nu and in passive RENs with rho_index > 0, so those
    must say ``compat="julia"``. ``compat="robustnn"`` LBDN and R2DN layers, and custom activation
    callables, have no Julia counterpart.
    """
    c = config
    if callable(c.activation):
        raise ValueError(f"{owner}: a custom activation callable ({c.activation!r}) has no Julia "
                         "counterpart; use 'relu', 'tanh', 'sigmoid' or 'identity'.")
    if c.compat == "robustnn":
        raise ValueError(f"{owner}: `compat='robustnn'` models have no RobustNeuralNetworks.jl "
                         "counterpart (their norms, Psi and last layer differ); got "
                         f"compat={c.compat!r}.")
    if c.compat is None and (
            (c.model in ("LipschitzREN", "GeneralREN") and c.ny < c.nu)
            or (c.model == "PassiveREN" and c.rho_index > 0)):
        raise ValueError(f"{owner}: this {c.model} (nu={c.nu}, ny={c.ny}) computes D22 "
                         "differently from RobustNeuralNetworks.jl unless compat='julia'; got "
                         f"compat=None. Use model.config.replace(compat='julia').")
    if c.model == "SandwichLayer":
        raise ValueError(f"{owner}: a lone SandwichLayer has no RobustNeuralNetworks.jl wrapper "
                         "(SandwichFC holds no r2dn config); use an LBDN.")


def _float(dtype: str, value: float) -> Any:
    return np.float32(value) if dtype == "float32" else float(value)


def _cast(direct: dict[str, Any], dtype: str) -> dict[str, np.ndarray]:
    return {k: np.array(to_numpy(v), dtype=dtype) for k, v in direct.items()}


def ren_params_struct(config: ModelConfig, direct: dict[str, Any]) -> JuliaStruct:
    """The ``*RENParams{T}`` struct of a REN (config and direct parameters)."""
    c, T = config, config.dtype
    d = _cast(direct, T)
    nu, nx, nv, ny = c.nu, c.nx, c.nv, c.ny
    empty = np.zeros((0, 0), dtype=T)
    D22_free = c.model == "ContractingREN" or c.d22_zero
    D22_zero = c.d22_zero or c.identity_output
    if c.identity_output:
        C2, D21, by = np.eye(nx, dtype=T), np.zeros((ny, nv), dtype=T), np.zeros(ny, dtype=T)
    else:
        C2, D21, by = d["C2"], d["D21"], d["by"]
    D22 = d["D22"] if "D22" in d else np.zeros((ny, nu), dtype=T)
    rho = d["p"] if c.polar else np.array([np.linalg.norm(d["X"].astype(np.float64))], dtype=T)
    fields = [d["X"], d["Y1"], d.get("X3", empty), d.get("Y3", empty), d.get("Z3", empty),
              d["B2"], C2, d["D12"], D21, D22, d["bx"], d["bv"], by, _float(T, c.eps), rho,
              c.polar, D22_free, D22_zero, not c.identity_output]
    tparams = [JuliaType(_FLOAT[T])]
    direct_struct = JuliaStruct(RNN + "DirectRENParams", tparams, fields)
    head = [julia_function(c.activation), nu, nx, nv, ny, direct_struct, _float(T, c.abar)]
    if c.model == "LipschitzREN":
        head += [np.array([c.gamma], dtype=T), False]
    elif c.model == "GeneralREN":
        Q, S, R = (np.array(m, dtype=np.float64) for m in (c.Q, c.S, c.R))
        LQ, LR = julia_cholesky_factors(Q, S, R)
        head += [m.astype(T) for m in (Q, S, R, LQ, LR)]
    elif c.model == "PassiveREN":
        head += [_float(T, c.nu_index), _float(T, c.rho_index)]
    return JuliaStruct(RNN + c.model + "Params", tparams, head)


def lbdn_params_struct(config: ModelConfig, direct: dict[str, Any], prefix: str = "",
                       n_in: int | None = None, n_out: int | None = None) -> JuliaStruct:
    """The ``DenseLBDNParams{T, L}`` struct of an LBDN (or of an R2DN's network, ``prefix``
    ``"network."``, sizes ``n_in``/``n_out`` and gamma = 1)."""
    T = config.dtype
    d = _cast({k[len(prefix):]: v for k, v in direct.items() if k.startswith(prefix)}, T)
    hidden = tuple(config.hidden)
    L = len(hidden)
    XY = tuple(d[f"layers.{k}.XY"] for k in range(L + 1))
    alpha = tuple(d[f"layers.{k}.a"] for k in range(L + 1))
    ds = tuple(d[f"layers.{k}.d"] for k in range(L))
    bs = tuple(d[f"layers.{k}.b"] for k in range(L + 1))
    learn = config.learn_gamma and not prefix
    log_gamma = d["log_gamma"] if learn else np.array(
        [0.0 if prefix else math.log(config.gamma)], dtype=T)
    Tj = JuliaType(_FLOAT[T])
    direct_struct = JuliaStruct(RNN + "DirectLBDNParams", [Tj, L + 1, L],
                                [XY, alpha, ds, bs, log_gamma, learn])
    nu = config.in_features if n_in is None else n_in
    ny = config.out_features if n_out is None else n_out
    return JuliaStruct(RNN + "DenseLBDNParams", [Tj, L],
                       [julia_function(config.activation), nu, hidden, ny, direct_struct])


def julia_struct(model: Any) -> JuliaStruct:
    """The RobustNeuralNetworks.jl object of an r2dn REN or LBDN, as Julia's examples save them:
    ``DiffREN(params)`` or ``DiffLBDN(params)``.

    Parameters
    ----------
    model : r2dn model (any backend)
        A ``ContractingREN``, ``LipschitzREN``, ``GeneralREN``, ``PassiveREN`` or ``LBDN``.

    Returns
    -------
    JuliaStruct
        Arrays in Julia's index order and the model's dtype (Julia's ``T``).

    Raises
    ------
    ValueError
        If Julia has no counterpart (see :func:`check_julia_compatible`) or the model is an R2DN.
    """
    c = model.config
    check_julia_compatible(c, "julia_struct")
    direct = model.direct()
    Tj = JuliaType(_FLOAT[c.dtype])
    if c.model in REN_FAMILIES:
        ps = ren_params_struct(c, direct)
        return JuliaStruct(RNN + "DiffREN", [Tj], [julia_function(c.activation), c.nu, c.nx, c.nv,
                                                   c.ny, ps])
    if c.model == "LBDN":
        ps = lbdn_params_struct(c, direct)
        return JuliaStruct(RNN + "DiffLBDN", [Tj, len(c.hidden)],
                           [julia_function(c.activation), c.in_features, tuple(c.hidden),
                            c.out_features, ps])
    raise ValueError(f"julia_struct: {c.model} has no RobustNeuralNetworks.jl 0.3 counterpart "
                     "(R2DNs are built by the bridge's Julia shim instead).")
