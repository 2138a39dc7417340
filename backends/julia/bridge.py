"""Live bridge to RobustNeuralNetworks.jl through juliacall: build r2dn models in Julia, run both.

Nothing here runs at import: ``import r2dn.julia`` needs no Julia and no juliacall.

* :func:`available` / :func:`reason` probe, once per process and in a subprocess with
  ``PYTHON_JULIAPKG_OFFLINE=yes`` and a timeout (:data:`PROBE_TIMEOUT_S`, or the environment
  variable ``R2DN_JULIA_PROBE_TIMEOUT``), whether juliacall can load RobustNeuralNetworks.jl 0.3
  and r2dn's shim *without* downloading or installing anything. The probe first asks juliapkg, by
  a dry run, whether the Julia environment is already resolved; if not, it stops there.
* :func:`install` is the one function that downloads: it registers the packages of
  ``juliapkg.json`` (RobustNeuralNetworks.jl 0.3, Flux, BSON) with juliapkg and resolves them.
  The file ships as ``r2dn/juliapkg.json``, one folder below ``site-packages``, where juliapkg
  looks for it by itself (it does not look deeper, so it cannot live in ``r2dn/julia/``);
  :func:`install` registers the same packages explicitly.
* :func:`to_julia` builds the RobustNeuralNetworks.jl parameters of an r2dn REN or LBDN with the
  structs' own constructors (so every direct-to-explicit map afterwards is Julia's), and for an
  R2DN the ``R2DNShim.R2DN`` of ``r2dn_shim.jl``: r2dn's explicit LTI matrices around an RNN.jl
  ``LBDN`` built from the R2DN's network parameters (RobustNeuralNetworks.jl has no R2DN).
* :func:`simulate_in_julia` and :func:`evaluate_in_julia` run a model in Julia and return NumPy
  arrays in r2dn's layout; :func:`compare` runs both sides and reports the largest differences.
  These are what the conformance suite calls.

Conventions: parameters cross the bridge in Julia's index order (no transposes); signals are
transposed, because Julia's are ``(n, batch)`` and ``(n, batch, T)`` where r2dn's are
``(batch, n)`` and ``(T, batch, n)``. Julia's Unicode field names never cross: the shim takes ASCII
keywords (``eps`` for ``ϵ``, ``rho`` for ``ρ``, ``abar`` for ``αbar``, ``gamma`` for ``γ``, ...),
because Python's NFKC normalisation of identifiers turns ``ϵ`` (U+03F5) into ``ε`` (U+03B5), so
``obj.ϵ`` can never reach Julia's field. Import juliacall before torch where both are used (juliacall
warns that the other order can crash).
"""

from __future__ import annotations

import functools
import importlib.resources
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from r2dn import _spec
from r2dn._model import to_numpy
from r2dn.config import R2DN_FAMILIES, REN_FAMILIES

from .models import as_model_array
from .structs import check_julia_compatible, lbdn_params_struct, ren_params_struct

__all__ = [
    "JULIAPKG_JSON", "PROBE_TIMEOUT_S", "SHIM_PATH", "JuliaUnavailableError", "available",
    "compare", "evaluate_in_julia", "install", "julia_call", "reason", "simulate_in_julia",
    "to_julia",
]

#: The Julia file defining module ``R2DNShim`` (shipped as package data).
SHIM_PATH = Path(__file__).with_name("r2dn_shim.jl")
#: r2dn's Julia dependencies, in juliapkg's format (shipped as package data).
JULIAPKG_JSON = Path(str(importlib.resources.files("r2dn") / "juliapkg.json"))
#: Seconds the availability probe may take (the first load of Flux can compile for minutes).
PROBE_TIMEOUT_S = 600.0
#: The RobustNeuralNetworks.jl release the bridge is written against (major.minor).
RNN_VERSION = "0.3"
_OK = "R2DN-JULIA-OK"
_UNRESOLVED = "R2DN-JULIA-UNRESOLVED"
_PROBE = f"""
import sys
import juliapkg
if not juliapkg.resolve(dry_run=True):
    print("{_UNRESOLVED}")
    sys.exit(3)
import juliacall
jl = juliacall.Main
jl.seval("using RobustNeuralNetworks")
jl.include(sys.argv[1])
print("{_OK}", jl.seval("string(pkgversion(RobustNeuralNetworks))"))
"""
# ASCII keyword names of the shim for Julia's Unicode field names (outer struct / DirectRENParams).
_OUTER_ASCII = {"αbar": "abar", "γ": "gamma", "learn_γ": "learn_gamma", "ν": "nu_index",
                "ρ": "rho_index"}
_DIRECT_ASCII = {"ϵ": "eps", "ρ": "rho"}


class JuliaUnavailableError(ImportError):
    """The bridge needs juliacall with RobustNeuralNetworks.jl 0.3, and they are not available."""


def _timeout() -> float:
    text = os.environ.get("R2DN_JULIA_PROBE_TIMEOUT")
    if text is None:
        return PROBE_TIMEOUT_S
    try:
        value = float(text)
    except ValueError as err:
        raise ValueError(f"r2dn.julia: `R2DN_JULIA_PROBE_TIMEOUT` must be a number of seconds; "
                         f"got {text!r}.") from err
    if value <= 0:
        raise ValueError(f"r2dn.julia: `R2DN_JULIA_PROBE_TIMEOUT` must be > 0; got {text!r}.")
    return value


@functools.lru_cache(maxsize=1)
def _probe() -> tuple[bool, str]:
    if importlib.util.find_spec("juliacall") is None:
        return False, "juliacall is not installed (pip install 'r2dn[julia]')"
    env = dict(os.environ, PYTHON_JULIAPKG_OFFLINE="yes")
    timeout = _timeout()
    try:
        run = subprocess.run([sys.executable, "-c", _PROBE, str(SHIM_PATH)], env=env,
                             capture_output=True, text=True, timeout=timeout,
                             stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return False, (f"probing juliacall timed out after {timeout:g} s (set "
                       "R2DN_JULIA_PROBE_TIMEOUT for a slow first compilation)")
    except OSError as err:
        return False, f"could not start the probe subprocess ({err})"
    if _UNRESOLVED in run.stdout:
        return False, ("juliacall's Julia environment is not resolved for r2dn (Julia or "
                       "RobustNeuralNetworks.jl not installed); r2dn.julia.install() installs "
                       "them (downloads)")
    line = next((s for s in run.stdout.splitlines() if s.startswith(_OK)), None)
    if run.returncode != 0 or line is None:
        tail = " | ".join((run.stderr or run.stdout).strip().splitlines()[-3:])
        return False, f"juliacall could not load RobustNeuralNetworks.jl offline: {tail}"
    version = line.split()[-1]
    if version.split(".")[:2] != RNN_VERSION.split("."):
        return False, (f"RobustNeuralNetworks.jl {version} is installed; the bridge is written "
                       f"for {RNN_VERSION}.x")
    return True, f"RobustNeuralNetworks.jl {version} through juliacall"


def available(*, refresh: bool = False) -> bool:
    """Whether the bridge can run here: juliacall loads RobustNeuralNetworks.jl 0.3 offline.

    The first call probes in a subprocess (``PYTHON_JULIAPKG_OFFLINE=yes``, timeout
    :data:`PROBE_TIMEOUT_S`); it never downloads and never hangs. The answer is cached per process;
    ``refresh=True`` probes again. :func:`reason` says why.
    """
    if refresh:
        _probe.cache_clear()
        _shim.cache_clear()
    return _probe()[0]


def reason() -> str:
    """Why :func:`available` says what it says (one line)."""
    return _probe()[1]


def install(*, update: bool = False) -> None:
    """Install the bridge's Julia side: **downloads** Julia (if juliapkg finds none) and packages.

    Registers the packages of :data:`JULIAPKG_JSON` with juliapkg (``juliapkg.add``, recorded in
    the environment's juliapkg project) and resolves them. Run once per Python environment.

    Raises
    ------
    JuliaUnavailableError
        If juliacall (and so juliapkg) is not installed.
    """
    if importlib.util.find_spec("juliapkg") is None:
        raise JuliaUnavailableError("r2dn.julia.install: juliapkg is not installed "
                                    "(pip install 'r2dn[julia]').")
    import juliapkg
    spec = json.loads(JULIAPKG_JSON.read_text())
    for name, entry in spec["packages"].items():
        juliapkg.add(name, entry["uuid"], version=entry["version"])
    juliapkg.resolve(update=update)
    available(refresh=True)


@functools.lru_cache(maxsize=1)
def _shim() -> Any:
    """The Julia module ``R2DNShim`` (juliacall is imported here, only after a good probe)."""
    if not available():
        raise JuliaUnavailableError(f"r2dn.julia bridge: Julia is not available: {reason()}.")
    from juliacall import Main as jl
    jl.seval("using RobustNeuralNetworks")
    if not bool(jl.seval("isdefined(Main, :R2DNShim)")):
        jl.include(str(SHIM_PATH))
    return jl.R2DNShim


# -- arguments (pure Python: tested without Julia) -----------------------------------------------

def _plain(value: Any) -> Any:
    """NumPy scalars as Python scalars and arrays as C-contiguous copies (juliacall wraps both
    unambiguously: ``float``/``int``/``bool`` and ``PyArray``)."""
    if isinstance(value, np.ndarray):
        return np.ascontiguousarray(value)
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (np.floating, float)):
        return float(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    return value


def _lbdn_kwargs(ps: Any, prefix: str = "") -> dict[str, Any]:
    d = ps["direct"].as_dict()
    out: dict[str, Any] = {}
    for name, key in (("XY", "XY"), ("α", "alpha"), ("d", "d"), ("b", "b")):
        for k, arr in enumerate(d[name], start=1):
            out[f"{prefix}{key}_{k}"] = _plain(arr)
    out[prefix + "log_gamma"] = _plain(d["log_γ"])
    out[prefix + "learn_gamma"] = bool(d["learn_γ"])
    return out


def julia_call(model: Any) -> tuple[str, tuple, dict[str, Any]]:
    """The shim function, positional and keyword arguments that build ``model`` in Julia.

    Pure Python (no Julia needed): :func:`to_julia` passes exactly these to ``R2DNShim``.

    Parameters
    ----------
    model : r2dn model (any backend)
        A REN of any family, an LBDN, or an R2DN of any family.

    Returns
    -------
    (name, args, kwargs)
        ``"ren_params"`` with ``(family, dtype, activation, nu, nx, nv, ny)``, ``"lbdn_params"``
        with ``(dtype, activation, nu, nh, ny)`` or ``"r2dn"`` with ``(dtype, activation, nv, nh)``;
        keyword values are NumPy arrays of the model's dtype (Julia's index order) and Python
        scalars, under the shim's ASCII names.

    Raises
    ------
    ValueError
        If RobustNeuralNetworks.jl computes a different model (see
        :func:`r2dn.julia.structs.check_julia_compatible`).
    """
    c = model.config
    check_julia_compatible(c, "to_julia")
    direct = model.direct()
    if c.model in REN_FAMILIES:
        ps = ren_params_struct(c, direct)
        outer = ps.as_dict()
        kwargs = {_DIRECT_ASCII.get(k, k): _plain(v)
                  for k, v in outer.pop("direct").as_dict().items()}
        for k in ("nl", "nu", "nx", "nv", "ny"):
            outer.pop(k)
        kwargs.update({_OUTER_ASCII.get(k, k): _plain(v) for k, v in outer.items()})
        return "ren_params", (c.model, c.dtype, c.activation, c.nu, c.nx, c.nv, c.ny), kwargs
    hidden = np.asarray(c.hidden, dtype=np.int64)
    if c.model == "LBDN":
        ps = lbdn_params_struct(c, direct)
        return ("lbdn_params", (c.dtype, c.activation, c.in_features, hidden, c.out_features),
                _lbdn_kwargs(ps))
    if c.model in R2DN_FAMILIES:
        e = model.explicit()
        kwargs = {k: np.ascontiguousarray(to_numpy(getattr(e, k)), dtype=c.dtype)
                  for k in ("A", "B1", "B2", "C1", "C2", "D12", "D21", "D22", "bx", "bv", "by")}
        ps = lbdn_params_struct(c, direct, prefix="network.", n_in=c.nv, n_out=c.nv)
        kwargs.update(_lbdn_kwargs(ps, prefix="network_"))
        return "r2dn", (c.dtype, c.activation, c.nv, hidden), kwargs
    raise ValueError(f"to_julia: {c.model} has no Julia counterpart.")


# -- running Julia -------------------------------------------------------------------------------

def _julia_array(x: Any) -> np.ndarray:
    """A Julia array returned by juliacall as a float64 NumPy array (same indices)."""
    if hasattr(x, "to_numpy"):
        return np.array(x.to_numpy(), dtype=np.float64)
    return np.array(x, dtype=np.float64)


def to_julia(model: Any) -> Any:
    """The RobustNeuralNetworks.jl object of an r2dn model (needs Julia, see :func:`available`).

    Returns
    -------
    juliacall value
        ``ContractingRENParams``, ``LipschitzRENParams``, ``GeneralRENParams``,
        ``PassiveRENParams`` or ``DenseLBDNParams`` (use ``REN(ps)``/``DiffREN(ps)``/``LBDN(ps)`` in
        Julia), or an ``R2DNShim.R2DN``.

    Raises
    ------
    JuliaUnavailableError
        Without juliacall and RobustNeuralNetworks.jl 0.3.
    ValueError
        If Julia has no counterpart of the model.
    """
    name, args, kwargs = julia_call(model)
    shim = _shim()
    return getattr(shim, name)(*args, **kwargs)


def simulate_in_julia(model: Any, x0: Any, us: Any) -> tuple[np.ndarray, np.ndarray]:
    """Run a recurrent r2dn model in RobustNeuralNetworks.jl (needs Julia).

    Parameters
    ----------
    model : REN or R2DN (any backend)
    x0 : array
        (batch, nx) initial states (any backend; converted to NumPy).
    us : array
        (T, batch, nu) inputs.

    Returns
    -------
    x_T : numpy.ndarray
        (batch, nx) final states.
    ys : numpy.ndarray
        (T, batch, ny) outputs, float64 (computed in Julia in the model's dtype).
    """
    x0, us = np.asarray(to_numpy(x0)), np.asarray(to_numpy(us))
    c = model.config
    if not c.is_recurrent:
        raise ValueError(f"simulate_in_julia: `model` must be recurrent; got a {c.model}.")
    if x0.ndim != 2 or x0.shape[1] != c.nx:
        raise ValueError(f"simulate_in_julia: `x0` must have shape (batch, nx) with nx={c.nx}; "
                         f"got {x0.shape}.")
    if us.ndim != 3 or us.shape[1:] != (x0.shape[0], c.nu) or us.shape[0] < 1:
        raise ValueError(f"simulate_in_julia: `us` must have shape (T, batch, nu) with T >= 1, "
                         f"batch={x0.shape[0]}, nu={c.nu}; got {us.shape}.")
    jmodel = to_julia(model)
    xT, ys = _shim().simulate(jmodel, c.dtype, np.ascontiguousarray(x0.T),
                              np.ascontiguousarray(np.transpose(us, (2, 1, 0))))
    return _julia_array(xT).T, np.transpose(_julia_array(ys), (2, 1, 0))


def evaluate_in_julia(model: Any, u: Any) -> np.ndarray:
    """Evaluate an r2dn LBDN in RobustNeuralNetworks.jl: ``u (batch, in)`` -> ``y (batch, out)``."""
    u = np.asarray(to_numpy(u))
    c = model.config
    if c.model != "LBDN":
        raise ValueError(f"evaluate_in_julia: `model` must be an LBDN; got a {c.model}.")
    if u.ndim != 2 or u.shape[1] != c.in_features:
        raise ValueError(f"evaluate_in_julia: `u` must have shape (batch, in_features) with "
                         f"in_features={c.in_features}; got {u.shape}.")
    y = _shim().evaluate(to_julia(model), c.dtype, np.ascontiguousarray(u.T))
    return _julia_array(y).T


def compare(model: Any, *inputs: Any) -> dict[str, float]:
    """Run ``model`` in r2dn and in RobustNeuralNetworks.jl; the largest absolute differences.

    ``compare(model, x0, us)`` for a REN or R2DN (``x0 (batch, nx)``, ``us (T, batch, nu)``);
    ``compare(model, u)`` for an LBDN (``u (batch, in_features)``). Needs Julia.

    Returns
    -------
    dict of str to float
        ``"explicit.<name>"`` for every explicit parameter Julia builds (A, B1, ..., by for a
        REN; ``layers.<k>.{A,B,psi,b}``, ``output.{B,b}``, ``sqrt_gamma`` for an LBDN;
        ``network.*`` for an R2DN), ``"xT"`` and ``"ys"`` (recurrent) or ``"y"`` (LBDN), and
        ``"max"`` over all of them. Differences are measured in float64.
    """
    c = model.config
    want = 2 if c.is_recurrent else 1
    if len(inputs) != want:
        raise TypeError(f"compare: a {c.model} takes {want} input array(s) "
                        f"({'x0, us' if want == 2 else 'u'}); got {len(inputs)}.")
    out: dict[str, float] = {}
    ours = {k: np.asarray(to_numpy(v), dtype=np.float64)
            for k, v in _spec.flatten_explicit(model.explicit()).items()}
    theirs = _shim().explicit_dict(to_julia(model))
    for name in theirs.keys():
        key = str(name)
        if key not in ours:
            raise KeyError(f"compare: Julia's explicit parameter {key!r} has no r2dn counterpart.")
        out["explicit." + key] = _maxdiff(ours[key], _julia_array(theirs[name]))
    if c.is_recurrent:
        x0, us = inputs
        xT, ys = model.simulate(as_model_array(model, x0), as_model_array(model, us))
        jxT, jys = simulate_in_julia(model, x0, us)
        out["xT"], out["ys"] = _maxdiff(xT, jxT), _maxdiff(ys, jys)
    else:
        (u,) = inputs
        out["y"] = _maxdiff(model(as_model_array(model, u)), evaluate_in_julia(model, u))
    out["max"] = max(out.values())
    return out


def _maxdiff(a: Any, b: Any) -> float:
    a = np.asarray(to_numpy(a), dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"compare: shapes differ between r2dn {a.shape} and Julia {b.shape}.")
    return float(np.max(np.abs(a - b), initial=0.0))
