"""The family registry: one :class:`Family` record per model class, one module per family.

A family (``LipschitzR2DN``, ``PassiveREN``, ...) is everything that makes a model class what it
is, declared in one place (``r2dn/families/<family>.py``), in the spirit of
RobustNeuralNetworks.jl's one file per parameter type: the constructor (its signature, docstring
and the arguments it passes to :class:`~r2dn.config.ModelConfig`), the optional config fields it
accepts and its extra rules, the shapes of its free parameters, its explicit map (a function of
:mod:`r2dn._spec`), its supply (Q, S, R) and its certificate multiplier. The config validation,
:func:`r2dn.init.direct_shapes`, :func:`r2dn._spec.direct_to_explicit`, :func:`r2dn.certify` and
every backend's model classes read these records; adding a family is one module plus one
:data:`BUILTIN` entry (or a :func:`register` call). docs/architecture.md#how-to-add-a-family.

The registry imports a family's module on first :func:`get`, so ``import r2dn`` stays light.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:                                    # pragma: no cover - annotations only
    import numpy as np

    from ..config import ModelConfig

    Supply = tuple[np.ndarray, np.ndarray, np.ndarray]

#: the kinds of structure a family can have: what its sizes are and how it runs.
KINDS = ("sandwich", "lbdn", "ren", "r2dn")
#: the optional config fields, with the value a family that does not take them must leave.
OPTIONS: Mapping[str, Any] = {
    "gamma": None, "learn_gamma": False, "identity_output": False, "d22_zero": False,
    "Q": None, "S": None, "R": None, "nu_index": None, "rho_index": None,
}


@dataclass(frozen=True)
class Family:
    """One model family, as every part of r2dn sees it.

    Attributes
    ----------
    name : str
        The public class name, the same in every backend (``"LipschitzR2DN"``) and the config's
        ``model``.
    kind : {"sandwich", "lbdn", "ren", "r2dn"}
        The structure: a feed-forward layer or network, or a recurrent model with the REN's
        equilibrium or the R2DN's LBDN. It fixes the sizes (``in_features``/``out_features`` or
        ``nu, nx, nv, ny``) and the time loop.
    constructor : callable
        ``constructor(*args, default_dtype=..., **kwargs) -> ModelConfig``: the signature and
        docstring of the class's constructor in every backend (built with
        :func:`r2dn.config.documented` and :func:`r2dn.config.build`).
    shapes : callable
        ``shapes(cfg) -> {name: shape}``: the free parameters, in initialisation order (builders
        in :mod:`r2dn.init`).
    explicit : callable
        ``explicit(direct, cfg, *, xp)``: the explicit map, a function of :mod:`r2dn._spec`.
    options : frozenset of str
        The optional config fields (keys of :data:`OPTIONS`) the family takes; the others must
        keep their defaults.
    rules : tuple of callables
        ``rule(cfg)`` raising a ``ValueError`` that names the argument: the family's own checks
        beyond the common ones.
    supply : callable or None
        ``supply(cfg) -> (Q, S, R)`` float64 arrays; ``None`` for a contracting (or feed-forward)
        family, whose certificate has no input-output part.
    gain : callable or None
        ``gain(cfg) -> gamma`` for a family whose supply is that of a gamma-Lipschitz map:
        :func:`r2dn.certify` relaxes it as a gain and bisects the gain from it.
    multiplier : callable or None
        ``multiplier(e, cfg) -> M``: the nonlinearity's term of the dissipation matrix
        (:mod:`r2dn.certify`; rows [dx; dw; du]); ``None`` for feed-forward families.
    zeros : tuple of str
        Free parameters that start at zero (beyond ``bx``), e.g. a contracting model's ``D22``.
    """

    name: str
    kind: str
    constructor: Callable[..., ModelConfig]
    shapes: Callable[[ModelConfig], dict[str, tuple[int, ...]]]
    explicit: Callable[..., Any]
    options: frozenset[str] = field(default_factory=frozenset)
    rules: tuple[Callable[[ModelConfig], None], ...] = ()
    supply: Callable[[ModelConfig], Supply] | None = None
    gain: Callable[[ModelConfig], float] | None = None
    multiplier: Callable[[Any, ModelConfig], Any] | None = None
    zeros: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"Family: `name` must be a Python identifier; got {self.name!r}.")
        if self.kind not in KINDS:
            raise ValueError(f"Family {self.name}: `kind` must be one of {KINDS}; got {self.kind!r}.")
        unknown = sorted(set(self.options) - set(OPTIONS))
        if unknown:
            raise ValueError(f"Family {self.name}: unknown options {unknown}; the optional config "
                             f"fields are {sorted(OPTIONS)}.")
        if self.kind in ("ren", "r2dn") and self.multiplier is None:
            raise ValueError(f"Family {self.name}: a recurrent family needs its certificate "
                             "`multiplier`.")

    @property
    def recurrent(self) -> bool:
        return self.kind in ("ren", "r2dn")

    @property
    def contracting(self) -> bool:
        """A recurrent family certified for contraction only (no supply)."""
        return self.recurrent and self.supply is None


#: the shipped families, in catalogue order: name -> the module defining its ``FAMILY``.
BUILTIN: dict[str, str] = {
    "SandwichLayer": "r2dn.families.sandwich",
    "LBDN": "r2dn.families.lbdn",
    "ContractingREN": "r2dn.families.contracting_ren",
    "LipschitzREN": "r2dn.families.lipschitz_ren",
    "GeneralREN": "r2dn.families.general_ren",
    "PassiveREN": "r2dn.families.passive_ren",
    "ContractingR2DN": "r2dn.families.contracting_r2dn",
    "LipschitzR2DN": "r2dn.families.lipschitz_r2dn",
    "GeneralR2DN": "r2dn.families.general_r2dn",
}

_registry: dict[str, Family | str] = dict(BUILTIN)


def names(kind: str | None = None) -> tuple[str, ...]:
    """The registered family names (of one ``kind``, if given), in registration order."""
    if kind is None:
        return tuple(_registry)
    return tuple(n for n in _registry if get(n).kind == kind)


def get(name: str) -> Family:
    """The record of family ``name`` (importing its module on first use).

    Raises
    ------
    ValueError
        ``name`` is not registered (the message lists the registered ones).
    """
    entry = _registry.get(name) if isinstance(name, str) else None
    if entry is None:
        raise ValueError(f"ModelConfig: `model` must be one of {', '.join(_registry)}; "
                         f"got {name!r}.")
    if isinstance(entry, str):
        entry = importlib.import_module(entry).FAMILY
        _registry[name] = entry
    return entry


def register(family: Family) -> Family:
    """Add ``family`` to the registry (a name already there raises a ``ValueError``).

    Its class then exists in every backend (``r2dn.<backend>.<name>``), configs of it validate,
    and ``certify``, checkpoints and porting accept it.
    """
    if not isinstance(family, Family):
        raise TypeError(f"register: expected an r2dn.families.Family; got {type(family).__name__}.")
    if family.name in _registry:
        raise ValueError(f"register: a family named {family.name!r} is already registered.")
    _registry[family.name] = family
    return family


def unregister(name: str) -> None:
    """Remove a family added by :func:`register` (the shipped ones stay)."""
    if name in BUILTIN:
        raise ValueError(f"unregister: {name!r} is a shipped family and cannot be removed.")
    if name not in _registry:
        raise ValueError(f"unregister: no family named {name!r} is registered.")
    del _registry[name]


def with_option(option: str) -> tuple[str, ...]:
    """The registered families that take the optional config field ``option``."""
    return tuple(n for n in _registry if option in get(n).options)
