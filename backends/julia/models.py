"""Julia models with no r2dn counterpart, evaluated with r2dn's array-API spec.

* :class:`MLP` is a Flux ``Chain`` of ``Dense`` layers (e.g. the unconstrained MNIST baseline of
  RobustNeuralNetworks.jl's ``lbdn_mnist.jl``). It carries no guarantee; it exists so that such
  baselines can be compared with the Lipschitz models read from the same experiments.
* :class:`ExplicitREN` is RobustNeuralNetworks.jl's ``REN`` wrapper, which stores only the explicit
  matrices (A, B1, ..., by). r2dn's models are built from direct (free) parameters, and the
  explicit form does not determine them, so such a file can be simulated but not trained,
  converted or certified: save ``DiffREN(ps)`` (or ``ps``) in Julia to get a full r2dn model.

:class:`JuliaModelInfo` describes what a Julia file held around the model (``softmax`` after it in
a ``Chain``, conversion notes). Both classes are inference-only and hold arrays of one backend
(NumPy by default); their formulas come from :mod:`r2dn._spec`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from array_api_compat import array_namespace

from r2dn import _spec, backends
from r2dn._model import check_array, to_numpy
from r2dn.config import ACTIVATIONS, DTYPES

__all__ = ["POST_FUNCTIONS", "ExplicitREN", "JuliaModelInfo", "MLP", "as_backend", "as_model_array"]

#: Functions a Flux ``Chain`` may hold after the model that :meth:`JuliaModelInfo.apply_after`
#: applies (over the feature axis, the last one in r2dn's batch-first layout).
POST_FUNCTIONS = ("softmax", "logsoftmax", "relu", "tanh", "sigmoid", "identity")


def as_backend(value: Any, backend: str, dtype: str) -> Any:
    """A NumPy array as an array of the registered ``backend`` (:mod:`r2dn.backends`) and ``dtype``.

    Imports the framework only when it is asked for.
    """
    record = backends.get(backend)
    return record.from_numpy(np.asarray(to_numpy(value), dtype=dtype))


def as_model_array(model: Any, value: Any) -> Any:
    """``value`` as an array of ``model``'s backend, dtype and device (an r2dn model of any
    backend, an :class:`MLP` or an :class:`ExplicitREN`)."""
    if isinstance(model, (MLP, ExplicitREN)):
        return as_backend(value, model.backend, model.dtype)
    ref = next(iter(model.direct().values()))
    return model._backend.asarray(np.asarray(to_numpy(value)), ref)


def _check_backend_dtype(owner: str, backend: str, dtype: str) -> None:
    backends.check_name(owner, backend)
    if dtype not in DTYPES:
        raise ValueError(f"{owner}: `dtype` must be 'float32' or 'float64'; got {dtype!r}.")


@dataclass(frozen=True)
class JuliaModelInfo:
    """What a Julia file held around the model that :func:`r2dn.julia.load_model` returned.

    Attributes
    ----------
    julia_type : str
        The Julia type of the loaded value, e.g. ``"Flux.Chain"`` or
        ``"RobustNeuralNetworks.DiffREN"``.
    model_type : str
        The Julia type that became the model, e.g. ``"RobustNeuralNetworks.DiffLBDN"``.
    chain : tuple of str
        One description per layer when the value was a Flux ``Chain`` (else empty).
    after : tuple of str
        The layers of the ``Chain`` after the model, e.g. ``("softmax",)``. The returned model does
        not apply them; :meth:`apply_after` does, for the names in :data:`POST_FUNCTIONS`.
    notes : tuple of str
        Conversion notes: options r2dn drops or maps (``learn_γ`` of a Lipschitz REN, ``tanh_fast``
        read as ``tanh``, ...).
    other_keys : tuple of str
        The file's other top-level keys (``"training_loss"``, ...), readable with
        :func:`r2dn.julia.read_bson`.
    """

    julia_type: str
    model_type: str
    chain: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())
    other_keys: tuple[str, ...] = ()

    def apply_after(self, y: Any) -> Any:
        """Apply the functions that followed the model in the Julia ``Chain``.

        Parameters
        ----------
        y : array
            (batch, n) outputs of the model, any backend (softmax runs over the last axis, the
            feature axis; Julia's ``softmax`` runs over its first, the same one).

        Raises
        ------
        ValueError
            If one of :attr:`after` is not a function of :data:`POST_FUNCTIONS`.
        """
        xp = array_namespace(y)
        for name in self.after:
            if name in ("softmax", "logsoftmax"):
                z = y - xp.max(y, axis=-1, keepdims=True)
                log_norm = xp.log(xp.sum(xp.exp(z), axis=-1, keepdims=True))
                y = xp.exp(z - log_norm) if name == "softmax" else z - log_norm
            elif name in ACTIVATIONS:
                y = _spec.activation(name, xp=xp).fn(y)
            else:
                raise ValueError(f"JuliaModelInfo.apply_after: cannot apply the Chain layer "
                                 f"{name!r}; r2dn applies {', '.join(POST_FUNCTIONS)}.")
        return y


class MLP:
    """A Flux ``Chain`` of ``Dense`` layers: ``h_k = sigma_k(W_k h_{k-1} + b_k)``, no guarantee.

    Parameters
    ----------
    weights : sequence of array
        ``W_k`` of shape (n_k, n_{k-1}), Flux's ``weight`` orientation (out, in), unchanged.
    biases : sequence of array
        ``b_k`` of shape (n_k,).
    activations : sequence of str
        One of ``'relu'``, ``'tanh'``, ``'sigmoid'``, ``'identity'`` per layer.
    backend : str
        A registered backend (:func:`r2dn.backends.names`): the arrays' framework (inference
        only: no gradients are set up).
    dtype : {"float32", "float64"}
        The arrays' dtype.

    Examples
    --------
    >>> import numpy as np
    >>> mlp = MLP([np.ones((2, 3)), np.eye(2)], [np.zeros(2), np.ones(2)], ["relu", "identity"])
    >>> mlp(np.array([[1.0, -2.0, 0.5]])).tolist()
    [[1.0, 1.0]]
    """

    def __init__(self, weights: Sequence[Any], biases: Sequence[Any], activations: Sequence[str],
                 *, backend: str = "numpy", dtype: str = "float64") -> None:
        _check_backend_dtype("MLP", backend, dtype)
        if not (len(weights) == len(biases) == len(activations)) or not weights:
            raise ValueError(f"MLP: `weights`, `biases`, `activations` must be non-empty and of "
                             f"one length; got {len(weights)}, {len(biases)}, {len(activations)}.")
        ws = [np.asarray(to_numpy(w)) for w in weights]
        bs = [np.asarray(to_numpy(b)) for b in biases]
        n_prev = None
        for k, (w, b, act) in enumerate(zip(ws, bs, activations)):
            if w.ndim != 2 or b.shape != (w.shape[0],) or (
                    n_prev is not None and w.shape[1] != n_prev):
                raise ValueError(f"MLP: layer {k} must have weight (n_out, n_in={n_prev}) and bias "
                                 f"(n_out,); got {w.shape} and {b.shape}.")
            if act not in ACTIVATIONS:
                raise ValueError(f"MLP: `activations[{k}]` must be one of "
                                 f"{', '.join(map(repr, ACTIVATIONS))}; got {act!r}.")
            n_prev = w.shape[0]
        self.backend, self.dtype = backend, dtype
        self.activations = tuple(activations)
        self.weights = tuple(as_backend(w, backend, dtype) for w in ws)
        self.biases = tuple(as_backend(b, backend, dtype) for b in bs)
        self.in_features, self.out_features = ws[0].shape[1], ws[-1].shape[0]

    def __call__(self, u: Any) -> Any:
        """``u (batch, in_features)`` -> ``y (batch, out_features)``."""
        check_array("MLP.__call__", "u", u, (None, self.in_features), self.dtype,
                    f"(batch, in_features) with in_features={self.in_features}")
        xp = array_namespace(u)
        h = u
        for W, b, name in zip(self.weights, self.biases, self.activations):
            h = _spec.activation(name, xp=xp).fn(h @ W.T + b)
        return h

    def to(self, backend: str, dtype: str | None = None) -> "MLP":
        """The same network with arrays of another backend (and dtype)."""
        return MLP(self.weights, self.biases, self.activations, backend=backend,
                   dtype=self.dtype if dtype is None else dtype)

    def __repr__(self) -> str:
        sizes = [self.in_features] + [w.shape[0] for w in self.weights]
        return f"r2dn.julia.MLP({' => '.join(map(str, sizes))}, {self.activations}, " \
               f"backend={self.backend!r}, dtype={self.dtype})"


EXPLICIT_REN_SHAPES = {
    "A": ("nx", "nx"), "B1": ("nx", "nv"), "B2": ("nx", "nu"), "C1": ("nv", "nx"),
    "C2": ("ny", "nx"), "D11": ("nv", "nv"), "D12": ("nv", "nu"), "D21": ("ny", "nv"),
    "D22": ("ny", "nu"), "bx": ("nx",), "bv": ("nv",), "by": ("ny",),
}
"""Shapes of RobustNeuralNetworks.jl's ``ExplicitRENParams`` fields, by size name."""


class ExplicitREN:
    """A REN given by its explicit matrices only (RobustNeuralNetworks.jl's ``REN`` wrapper).

    ``x+ = A x + B1 w + B2 u + bx``, ``w = sigma(C1 x + D11 w + D12 u + bv)`` (D11 strictly lower
    triangular, solved neuron by neuron), ``y = C2 x + D21 w + D22 u + by``. No certificate: the
    matrices are taken as they are. Same ``simulate``/``__call__`` API as r2dn's recurrent models.

    Parameters
    ----------
    explicit : mapping of str to array
        ``A`` (nx, nx), ``B1`` (nx, nv), ``B2`` (nx, nu), ``C1`` (nv, nx), ``C2`` (ny, nx),
        ``D11`` (nv, nv), ``D12`` (nv, nu), ``D21`` (ny, nv), ``D22`` (ny, nu), ``bx``, ``bv``,
        ``by``; Julia's index order (no transposes). Only the strict lower triangle of D11 is used,
        as in Julia's solver.
    activation : str
        ``'relu'``, ``'tanh'``, ``'sigmoid'`` or ``'identity'``.
    backend, dtype : str
        As for :class:`MLP`.
    """

    def __init__(self, explicit: dict[str, Any], activation: str, *, backend: str = "numpy",
                 dtype: str = "float64") -> None:
        _check_backend_dtype("ExplicitREN", backend, dtype)
        if activation not in ACTIVATIONS:
            raise ValueError(f"ExplicitREN: `activation` must be one of "
                             f"{', '.join(map(repr, ACTIVATIONS))}; got {activation!r}.")
        arrays = {k: np.asarray(to_numpy(explicit[k])) if k in explicit else None
                  for k in EXPLICIT_REN_SHAPES}
        missing = [k for k, v in arrays.items() if v is None]
        if missing:
            raise ValueError(f"ExplicitREN: `explicit` lacks {missing}.")
        sizes = {"nx": arrays["A"].shape[0], "nv": arrays["D11"].shape[0],
                 "nu": arrays["B2"].shape[-1], "ny": arrays["C2"].shape[0]}
        for k, names in EXPLICIT_REN_SHAPES.items():
            want = tuple(sizes[n] for n in names)
            if arrays[k].shape != want:
                raise ValueError(f"ExplicitREN: `{k}` must have shape {want} "
                                 f"({', '.join(names)}); got {arrays[k].shape}.")
        arrays["D11"] = np.tril(arrays["D11"], -1)
        self.nu, self.nx, self.nv, self.ny = (sizes[n] for n in ("nu", "nx", "nv", "ny"))
        self.activation, self.backend, self.dtype = activation, backend, dtype
        self._arrays = {k: as_backend(v, backend, dtype) for k, v in arrays.items()}

    def explicit(self) -> _spec.RENExplicit:
        """The explicit matrices as r2dn's ``RENExplicit`` (``E``, ``P``, ``Lambda`` are None)."""
        return _spec.RENExplicit(**self._arrays, E=None, P=None, Lambda=None)

    def init_state(self, batch: int) -> Any:
        """Zero state ``(batch, nx)``."""
        return as_backend(np.zeros((batch, self.nx)), self.backend, self.dtype)

    def simulate(self, x0: Any, us: Any) -> tuple[Any, Any]:
        """``x0 (batch, nx)``, ``us (T, batch, nu)`` -> ``(x_T (batch, nx), ys (T, batch, ny))``."""
        check_array("ExplicitREN.simulate", "x0", x0, (None, self.nx), self.dtype,
                    f"(batch, nx) with nx={self.nx}")
        check_array("ExplicitREN.simulate", "us", us, (None, x0.shape[0], self.nu), self.dtype,
                    f"(T, batch, nu) with batch={x0.shape[0]}, nu={self.nu}")
        xp = array_namespace(x0, us)
        e = self.explicit()
        act = _spec.activation(self.activation, xp=xp)
        return _spec.simulate_loop(e, _spec.nonlinearity(e, act, xp=xp), x0, us, xp=xp)

    def __call__(self, x: Any, u: Any) -> tuple[Any, Any]:
        """One step: ``x (batch, nx)``, ``u (batch, nu)`` -> ``(x_next, y (batch, ny))``."""
        x_next, ys = self.simulate(x, u[None, ...])
        return x_next, ys[0, ...]

    def __repr__(self) -> str:
        return (f"r2dn.julia.ExplicitREN(nu={self.nu}, nx={self.nx}, nv={self.nv}, ny={self.ny}, "
                f"{self.activation!r}, backend={self.backend!r}, dtype={self.dtype})")
