"""What every backend's models share: input checks, the calls into the spec, class generation.

A backend supplies a base class that owns the parameters (it must define ``_direct_arrays()``,
``_backend`` (its :class:`r2dn.backends.Backend` record), ``config`` and
``__init__(self, config, direct=None)``), dtype and device. The base comes first in each class's
MRO; these mixins add the public API of docs/getting-started.md#model-api behind it. Every model
call (``model(u)``, ``model(x, u)``, ``model(x0, us)``, ``simulate``) crosses from the mixins into
the backend once, through the record's ``call`` hook; the hook reads the config and parameters,
adds the framework's own guards and runs :func:`execute`, which checks the inputs and calls
:mod:`r2dn._spec` for every formula, so no backend holds any maths
(docs/architecture.md#how-a-call-flows). ``forward`` does the work and ``__call__`` calls it (a
``torch.nn.Module`` base supplies its own ``__call__``, which calls the same ``forward``).
"""

from __future__ import annotations

import contextvars
import inspect
import sys
from collections.abc import Mapping
from typing import Any

import numpy as np

from . import _spec, families
from .backends import Backend
from .config import ModelConfig

FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")
#: the method a recurrent module call ``model(x, u)`` reports in its error messages:
#: ``"forward"``, or ``"simulate"`` while a backend's ``simulate`` runs through the module's own
#: call (torch), so the inputs are checked once, as a sequence, and the errors name ``simulate``.
SEQUENCE_CALL: contextvars.ContextVar[str] = contextvars.ContextVar("r2dn_sequence_call",
                                                                    default="forward")


def dtype_name(x: Any) -> str:
    """``"float64"`` for a NumPy, torch, JAX or array-api-strict float64 array, and so on."""
    return str(x.dtype).rsplit(".", 1)[-1]


def to_numpy(x: Any) -> np.ndarray:
    """Any backend's array as a NumPy array.

    Torch tensors are detached and moved to the CPU; JAX and array-api arrays are copied to the
    host. Use it to compare or plot outputs of any backend.

    Parameters
    ----------
    x : array
        A NumPy array, ``torch.Tensor``, JAX array or any object ``numpy.asarray`` accepts.

    Returns
    -------
    numpy.ndarray
        The same values, same shape and dtype.

    Examples
    --------
    >>> import r2dn, r2dn.numpy as rn
    >>> model = rn.LBDN(2, (4,), 1, gamma=1.0)
    >>> r2dn.to_numpy(model(r2dn.to_numpy([[0.5, -0.5]]))).shape
    (1, 1)
    """
    if hasattr(x, "detach"):
        x = x.detach().cpu()
    return np.asarray(x)


class check_finite_inputs:
    """Check every model input for NaN and infinity (off by default).

    By default a non-finite input propagates to the outputs as IEEE arithmetic dictates: checking
    would cost a reduction and, on a GPU, a device synchronisation per call. When the check is on,
    ``model(x, u)``, ``model(u)`` and ``model.simulate(x0, us)`` raise a ``ValueError`` naming the
    argument that holds a NaN or an infinity. When it is off, it costs one boolean test per call.
    Inside ``jax.jit`` the inputs are abstract and cannot be checked; use
    ``jax.config.update("jax_debug_nans", True)`` there.

    Calling it sets the check for the whole process; used as a context manager it restores the
    previous setting on exit.

    Parameters
    ----------
    enabled : bool, default True
        Turn the check on (``True``) or off (``False``).

    Examples
    --------
    >>> import numpy as np, r2dn, r2dn.numpy as rn
    >>> model = rn.ContractingREN(1, 2, 3, 1)
    >>> with r2dn.check_finite_inputs():
    ...     model(model.init_state(1), np.array([[np.nan]]))
    Traceback (most recent call last):
    ...
    ValueError: ContractingREN.forward: `u` holds NaN or infinite values (r2dn.check_finite_inputs is on).
    """

    enabled = False

    def __init__(self, enabled: bool = True) -> None:
        if not isinstance(enabled, bool):
            raise TypeError(f"check_finite_inputs: `enabled` must be a bool; got {enabled!r}.")
        self._previous = check_finite_inputs.enabled
        check_finite_inputs.enabled = enabled

    def __enter__(self) -> "check_finite_inputs":
        return self

    def __exit__(self, *exc: Any) -> None:
        check_finite_inputs.enabled = self._previous


def _is_tracer(x: Any) -> bool:
    jax = sys.modules.get("jax")
    return jax is not None and isinstance(x, jax.core.Tracer)


def _framework(x: Any) -> str:
    """``"torch"``, ``"jax"``, ``"numpy"`` or the top-level module of ``x``'s type."""
    return type(x).__module__.split(".", 1)[0].replace("jaxlib", "jax")


def check_array(owner: str, name: str, x: Any, shape: tuple[Any, ...], dtype: str,
                shape_text: str) -> None:
    """Raise a clear error unless ``x`` is a floating array of the model's dtype and ``shape``.

    ``shape`` holds ints and ``None`` for free dimensions; ``shape_text`` is its description, e.g.
    ``"(batch, nx) with nx=3"``.
    """
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        raise TypeError(f"{owner}: `{name}` must be an array; got {type(x).__name__}.")
    got = dtype_name(x)
    if got not in FLOAT_DTYPES:
        raise TypeError(f"{owner}: `{name}` must be a floating array of dtype {dtype}; got dtype {got}.")
    if got != dtype:
        raise TypeError(f"{owner}: `{name}` has dtype {got} but the model is {dtype}; cast the input "
                        f"or build the model with dtype={got!r}.")
    s = tuple(x.shape)
    if len(s) != len(shape) or any(w is not None and w != g for w, g in zip(shape, s)):
        raise ValueError(f"{owner}: `{name}` must have shape {shape_text}; got {s}.")


def _leading(x: Any) -> Any:
    """The first dimension of ``x`` (None when ``x`` is not an array: its own check then fails)."""
    shape = getattr(x, "shape", None)
    return shape[0] if shape else None


Inputs = tuple[tuple[str, Any, tuple[Any, ...], str], ...]


def _inputs(c: ModelConfig, method: str, args: tuple[Any, ...]) -> tuple[bool, Inputs]:
    """Whether a call runs a sequence, and its inputs as ``(name, x, shape, shape_text)``.

    A recurrent call is a sequence for ``simulate`` or a 3-D ``u`` (``x0, us``), else one step
    (``x, u``); a feed-forward call has one input ``u``."""
    if not c.is_recurrent:
        n = c.in_features
        return False, (("u", args[0], (None, n), f"(batch, in_features) with in_features={n}"),)
    x, u = args
    batch = _leading(x)
    state = (None, c.nx), f"(batch, nx) with nx={c.nx}"
    if method == "simulate" or getattr(u, "ndim", None) == 3:
        return True, (("x0", x, *state), ("us", u, (None, batch, c.nu),
                                          f"(T, batch, nu) with batch={batch}, nu={c.nu}"))
    return False, (("x", x, *state), ("u", u, (batch, c.nu), f"(batch, nu) = ({batch}, {c.nu})"))


def check_concrete(b: Backend, c: ModelConfig, method: str, args: tuple[Any, ...],
                   chunk: int | None = None) -> tuple[bool, Inputs]:
    """The checks of a model call that need concrete values: ``chunk``, and each input's
    framework and (when :class:`check_finite_inputs` is on) finiteness.

    :func:`execute` runs them; a backend that compiles its call (JAX) runs them first, outside
    the trace. On an abstract (traced) input only the framework is checked. Returns
    :func:`_inputs`'s ``(sequence, inputs)``.
    """
    sequence, inputs = _inputs(c, method, args)
    owner = f"{c.model}.{method}"
    if chunk is not None and not sequence:
        raise ValueError(f"{owner}: `chunk` applies to a sequence `u (T, batch, nu)`; got a 2-D "
                         f"`u` (one step) with chunk={chunk!r}.")
    if chunk is not None and (isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1):
        raise ValueError(f"{owner}: `chunk` must be a positive integer (time steps per "
                         f"checkpointed chunk) or None; got chunk={chunk!r}.")
    for name, x, _, _ in inputs:
        _check_framework(b.name, owner, name, x)
        if check_finite_inputs.enabled and not _is_tracer(x) and hasattr(x, "shape") \
                and not bool(b.all_finite(x)):
            raise ValueError(f"{owner}: `{name}` holds NaN or infinite values "
                             "(r2dn.check_finite_inputs is on).")
    return sequence, inputs


def _check_framework(backend: str, owner: str, name: str, x: Any) -> None:
    """Refuse another framework's arrays (the JAX backend also takes NumPy arrays)."""
    got = _framework(x)
    accepted = {"numpy": ("numpy",), "torch": ("torch",), "jax": ("jax", "numpy")}.get(backend)
    if accepted is None or got in accepted or got not in ("numpy", "torch", "jax"):
        return
    kinds = {"numpy": "NumPy arrays", "torch": "torch tensors", "jax": "JAX or NumPy arrays"}
    fix = {"numpy": f"r2dn.to_numpy({name})", "torch": f"torch.as_tensor({name})",
           "jax": f"jax.numpy.asarray(r2dn.to_numpy({name}))"}
    raise TypeError(
        f"{owner}: `{name}` is a {type(x).__module__}.{type(x).__name__}, but this is an "
        f"r2dn.{backend} model, which takes {kinds[backend]}. Convert the input "
        f"({fix[backend]}) or the model (r2dn.{got}.convert(model)).")


def execute(b: Backend, c: ModelConfig, explicit: Any, like: Any, method: str,
            args: tuple[Any, ...], chunk: int | None = None, **options: Any) -> Any:
    """One model call, given what the backend's ``call`` hook read from the model.

    Checks the inputs (:func:`check_concrete`, then dtype, shape, the record's ``check_device``
    and T >= 1), builds the explicit matrices and the nonlinearity once, and runs the feed-forward
    map, or hands the whole sequence (one step: a sequence of one) to the record's ``rollout``.

    Parameters
    ----------
    b : Backend
        The model's backend record.
    c : ModelConfig
        The model's config.
    explicit : callable
        The model's ``explicit`` method (so a subclass's override is what the call runs).
    like : Array or None
        A parameter of the model, for the record's ``check_device`` (None without one).
    method : {"forward", "simulate"}
        The public method called, for error messages (and ``simulate`` is always a sequence).
    args : tuple
        ``(u,)`` of a feed-forward model; ``(x, u)``, ``(x0, us)`` of a recurrent one.
    chunk : int, optional
        Steps per checkpointed chunk of a sequence (see ``simulate``).
    **options
        For the record's ``rollout`` (torch: ``step``; JAX: ``unroll``).

    Returns
    -------
    ``y`` (feed-forward), ``(x_next, y)`` (one step) or ``(x_T, ys)`` (a sequence).
    """
    sequence, inputs = check_concrete(b, c, method, args, chunk)
    owner = f"{c.model}.{method}"
    for name, x, shape, text in inputs:
        check_array(owner, name, x, shape, c.dtype, text)
    if b.check_device is not None:
        for name, x, _, _ in inputs:
            b.check_device(owner, name, x, like)
    if sequence and args[1].shape[0] < 1:
        raise ValueError(f"{owner}: `us` must hold at least one time step; got T=0.")
    e = explicit()
    if not c.is_recurrent:
        return _spec.feedforward(e, b.activation(c.activation), b.affine)(args[0])
    x, u = args
    if chunk is not None:
        options["chunk"] = chunk
    x_T, ys = b.rollout(e, nonlinearity(b, c, e), x, u if sequence else u[None, ...], **options)
    return (x_T, ys) if sequence else (x_T, ys[0, ...])


def nonlinearity(b: Backend, c: ModelConfig, e: Any) -> Any:
    """``v -> w`` of a recurrent model with explicit parameters ``e``
    (:func:`r2dn._spec.nonlinearity` with the backend's activation, REN equilibrium solver,
    block size and affine kernel). A backend whose rollout recomputes pieces of the sequence
    (torch's ``chunk=``) calls it again on the recomputed parameters."""
    act = b.activation(c.activation)
    solver = b.equilibrium(c.activation, act) if c.family == "ren" else None
    return _spec.nonlinearity(e, act, xp=b.xp, solver=solver, block=b.equilibrium_block,
                              mad=b.affine)


def call(model: Any, method: str, args: tuple[Any, ...], chunk: int | None = None) -> Any:
    """The ``call`` hook of a backend with nothing to add (NumPy): :func:`execute` with the
    model's config and ``explicit`` (and a parameter for the device check, if the record has
    one)."""
    b = model._backend
    like = None if b.check_device is None else next(iter(model._direct_arrays().values()))
    return execute(b, model.config, model.explicit, like, method, args, chunk)


class ModelMixin:
    """API shared by every model of every backend (docs/getting-started.md#model-api)."""

    config: ModelConfig
    _backend: Backend

    def __call__(self, *args: Any) -> Any:
        return self.forward(*args)

    def direct(self) -> dict[str, Any]:
        """The free parameters as a flat dict of canonical dotted names (checkpoint keys)."""
        return dict(self._direct_arrays())

    def explicit(self) -> Any:
        """The explicit parameters (a NamedTuple of arrays) built from the current direct ones."""
        return _spec.direct_to_explicit(self._direct_arrays(), self.config, xp=self._backend.xp)

    def __repr__(self) -> str:
        c = self.config
        sizes = (f"{c.in_features}, {c.hidden}, {c.out_features}" if c.family in ("lbdn", "sandwich")
                 else f"nu={c.nu}, nx={c.nx}, nv={c.nv}, ny={c.ny}")
        return f"{type(self).__module__}.{c.model}({sizes}, dtype={c.dtype})"


class RecurrentMixin(ModelMixin):
    """``model(x, u)``, ``simulate(x0, us)`` and ``init_state`` of REN and R2DN models."""

    def forward(self, x: Any, u: Any, *, chunk: int | None = None) -> tuple[Any, Any]:
        """One time step ``model(x, u)``, or a whole sequence ``model(x0, us)`` when ``u`` is 3-D.

        The sequence call is the same as :meth:`simulate`; wrappers that act on a module's call
        (torch's DDP and FSDP2, hooks) then see the whole sequence.

        Parameters
        ----------
        x : array (batch, nx)
            State (or initial state), of the model's framework, dtype (and device).
        u : array (batch, nu) or (T, batch, nu)
            One input, or a time-major sequence of inputs (T >= 1).
        chunk : int, optional
            For a sequence only: see :meth:`simulate`.

        Returns
        -------
        x_next : array (batch, nx)
            The next state (after the last step, for a sequence).
        y : array (batch, ny) or (T, batch, ny)
            The output (of every step, for a sequence).

        Raises
        ------
        TypeError
            Arrays of another framework or dtype.
        ValueError
            Wrong shapes, T = 0, ``chunk`` with one step or not a positive integer; non-finite
            inputs when :class:`r2dn.check_finite_inputs` is on.
        """
        return self._backend.call(self, SEQUENCE_CALL.get(), (x, u), chunk)

    def simulate(self, x0: Any, us: Any, *, chunk: int | None = None) -> tuple[Any, Any]:
        """Run the model over a sequence; the explicit matrices are built once per call.

        Parameters
        ----------
        x0 : array (batch, nx)
            Initial state (``model.init_state(batch)`` for zeros).
        us : array (T, batch, nu)
            Inputs, time-major, T >= 1.
        chunk : int, optional
            Run the rollout in chunks of ``chunk`` steps. Where the backend records gradients
            (torch, JAX) each chunk is checkpointed: a gradient keeps only each chunk's first
            state and recomputes the chunk in the backward pass, so its memory grows with
            T/chunk + chunk instead of T (the same outputs and gradients). Without autograd
            (NumPy) it changes nothing.

        Returns
        -------
        x_T : array (batch, nx)
            The state after the last step.
        ys : array (T, batch, ny)
            The outputs of every step.

        Raises
        ------
        TypeError
            Arrays of another framework or dtype.
        ValueError
            Wrong shapes, T = 0, a bad ``chunk``; non-finite inputs when
            :class:`r2dn.check_finite_inputs` is on.

        Examples
        --------
        >>> import numpy as np, r2dn.numpy as rn
        >>> model = rn.ContractingREN(2, 3, 4, 1)
        >>> xT, ys = model.simulate(model.init_state(5), np.zeros((10, 5, 2)))
        >>> xT.shape, ys.shape
        ((5, 3), (10, 5, 1))
        """
        return self._backend.call(self, "simulate", (x0, us), chunk)

    def init_state(self, batch: int) -> Any:
        """Zero state ``(batch, nx)`` with the model's dtype and device."""
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise ValueError(f"{self.config.model}.init_state: `batch` must be a positive integer; "
                             f"got {batch!r}.")
        ref = next(iter(self._direct_arrays().values()))
        return _spec._xp.zeros_like_shape((batch, self.config.nx), ref, xp=self._backend.xp)


class FeedforwardMixin(ModelMixin):
    """``model(u)`` of LBDN and Sandwich layers."""

    def forward(self, u: Any) -> Any:
        """``u (batch, in_features)`` -> ``y (batch, out_features)``."""
        return self._backend.call(self, "forward", (u,))


def _plain(sig: inspect.Signature) -> str:
    """A signature's parameters without annotations: ``nu, nx, *, abar=1.0``."""
    empty = inspect.Parameter.empty
    return str(sig.replace(parameters=[p.replace(annotation=empty) for p in sig.parameters.values()],
                           return_annotation=empty))[1:-1]


class Catalogue(Mapping[str, type]):
    """The model classes of one backend, one per registered family, generated on first use.

    ``catalogue[name]`` is the final class ``(base, [*recurrent_bases,] mixin, *extra_bases)``
    for family ``name`` of :mod:`r2dn.families` (a feed-forward family gets
    :class:`FeedforwardMixin`, a recurrent one :class:`RecurrentMixin`). A backend module exposes
    it with a module ``__getattr__`` (:meth:`attribute`), so a family registered at run time has
    its class in every backend too. Its constructor has the signature and docstring of the
    family's constructor, plus ``keywords`` (keyword-only parameters the backend adds, passed to
    ``base.__init__``); ``dtype`` goes through ``dtype_argument(class_name, dtype)`` first.

    Parameters
    ----------
    base : type
        The backend's parameter holder (``__init__(self, config, direct=None, **keywords)``).
    module : str
        The classes' ``__module__``.
    default_dtype : str
        What ``dtype=None`` means.
    extra_bases : tuple of type
        Bases after the mixin (torch: ``torch.nn.Module``, so the mixin's ``forward`` wins).
    recurrent_bases : tuple of type
        Bases before :class:`RecurrentMixin` for recurrent families (JAX's ``simulate(...,
        unroll=)``).
    keywords : tuple of inspect.Parameter
        Keyword-only constructor parameters of the backend (torch: ``device``).
    dtype_argument : callable, optional
        Maps the ``dtype`` argument to a config dtype name (torch accepts ``torch.float32``).
    note : str
        A paragraph appended to each class's docstring.
    """

    def __init__(self, base: type, module: str, default_dtype: str, *,
                 extra_bases: tuple[type, ...] = (), recurrent_bases: tuple[type, ...] = (),
                 keywords: tuple[inspect.Parameter, ...] = (),
                 dtype_argument: Any = None, note: str = "") -> None:
        self._base, self._module, self._default_dtype = base, module, default_dtype
        self._extra_bases, self._recurrent_bases = extra_bases, recurrent_bases
        self._keywords, self._dtype_argument, self._note = keywords, dtype_argument, note
        self._classes: dict[str, tuple[families.Family, type]] = {}

    def __getitem__(self, name: str) -> type:
        family = families.get(name)
        cached = self._classes.get(name)
        if cached is None or cached[0] is not family:      # new, or re-registered under the name
            cached = (family, self._generate(family))
            self._classes[name] = cached
        return cached[1]

    def __iter__(self):
        return iter(families.names())

    def __len__(self) -> int:
        return len(families.names())

    def attribute(self, name: str, module: str) -> type:
        """A module ``__getattr__``: the class of family ``name``, else ``AttributeError``."""
        if name in families.names():
            return self[name]
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    def _generate(self, family: families.Family) -> type:
        name, ctor, base = family.name, family.constructor, self._base
        mixins = ((*self._recurrent_bases, RecurrentMixin) if family.recurrent
                  else (FeedforwardMixin,))
        sig = inspect.signature(ctor)
        public = sig.replace(parameters=[*(p for p in sig.parameters.values()
                                           if p.name != "default_dtype"), *self._keywords],
                             return_annotation=None)
        keywords = tuple(p.name for p in self._keywords)
        default_dtype, dtype_argument = self._default_dtype, self._dtype_argument

        def __init__(self, *args, **kwargs):
            try:
                public.bind(*args, **kwargs)
            except TypeError as err:
                raise TypeError(f"{name}: {err}. The signature is {name}({_plain(public)}); "
                                f"see help(r2dn.numpy.{name}).") from None
            extra = {k: kwargs.pop(k) for k in keywords if k in kwargs}
            if dtype_argument is not None and "dtype" in kwargs:
                kwargs["dtype"] = dtype_argument(name, kwargs["dtype"])
            base.__init__(self, ctor(*args, default_dtype=default_dtype, **kwargs), **extra)

        __init__.__qualname__, __init__.__module__ = f"{name}.__init__", self._module
        params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)]
        params += list(public.parameters.values())
        __init__.__signature__ = public.replace(parameters=params)
        doc = getattr(ctor, "__doc_template__", ctor.__doc__ or "").replace(
            "{default_dtype}", repr(default_dtype)) + self._note
        return type(name, (base, *mixins, *self._extra_bases),
                    {"__init__": __init__, "__doc__": doc, "__module__": self._module})


def from_direct(classes: Catalogue, base: type, config: ModelConfig,
                direct: Mapping[str, Any], **keywords: Any) -> Any:
    """A model of ``classes`` with the given config and free parameters (any backend's arrays);
    ``keywords`` go to ``base.__init__`` (torch: ``device``)."""
    if not isinstance(config, ModelConfig):
        raise TypeError(f"from_direct: `config` must be a ModelConfig; got {type(config).__name__}.")
    model = object.__new__(classes[config.model])
    base.__init__(model, config, direct, **keywords)
    return model
