"""The conformance case matrix: a declarative table of frozen :class:`Case` records.

A case fixes everything about one model and its test signals: the family, the sizes, the options
(polar, abar, init, identity output, d22_zero, compat preset, activation, gamma, passivity
indices), the dtype, the horizon and the seed. From a case the suite derives, deterministically
and in NumPy float64, once:

* the :class:`~r2dn.config.ModelConfig` (:func:`make_config`; (Q, S, R) are drawn from the seed);
* the free parameters (:func:`case_direct`): :func:`r2dn.init.init_direct`, then every entry moved
  by Gaussian noise so that no term sits at its initial value (B1 = C1 = 0 of a long-memory init,
  D22 = 0, X3 = I, Y3 = Z3 = 0 are all perturbed);
* the signals (:func:`case_inputs`): initial states, inputs and the fixed weights of the loss whose
  gradient is checked.

Every backend receives the same parameters through ``from_direct(config, direct)``.

Two tiers: :data:`QUICK` (CI, a few minutes on a laptop CPU) and :data:`FULL` (a superset: every
family over more sizes, every compat preset, both dtypes and longer horizons). The tiers are a
covering design rather than a full Cartesian product: every family meets both dtypes, every
compat preset, polar on and off, ``abar < 1``, long-memory init, ``nu > ny``, ``nu < ny``,
``nx = 1``, ``nv = 1`` and several activations; R2DNs and LBDNs meet several hidden stacks.

>>> from r2dn.conformance.cases import QUICK, FULL, case_direct, make_config
>>> len(QUICK) >= 50 and set(QUICK) <= set(FULL)
True
>>> case = QUICK[0]
>>> sorted(case_direct(case)) == sorted(r2dn.init.direct_shapes(make_config(case)))
True
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field, fields, replace
from typing import NamedTuple

import numpy as np

import r2dn.init  # noqa: F401  (doctest above)
from r2dn.config import (CONSTRUCTORS, CONTRACTING_FAMILIES, FEEDFORWARD_FAMILIES, FAMILIES,
                         LIPSCHITZ_FAMILIES, ModelConfig, random_supply)
from r2dn.init import init_direct

#: relative size of the perturbation that moves the parameters away from their initial values.
PERTURBATION = 0.5
#: floor added to a parameter's RMS before scaling the perturbation (so zeros move too).
PERTURBATION_FLOOR = 0.1
#: time steps and input pairs of the quick tier's rollouts (batch = 3 * pairs, see CaseInputs).
QUICK_T, QUICK_PAIRS = 4, 2
#: the same for the cases only in the full tier.
FULL_T, FULL_PAIRS = 10, 4


@dataclass(frozen=True)
class Case:
    """One model of the conformance matrix and its test signals.

    Sizes are ``nu, nx, nv, ny`` for recurrent families and ``nu = in_features``,
    ``ny = out_features`` (``nx = nv = 0``) for ``LBDN`` and ``SandwichLayer``. Options that do
    not apply to a family keep their defaults (``make_config`` rejects the rest). ``seed`` is
    derived from :attr:`id` unless given, so reordering the table changes no case.
    """

    family: str
    nu: int
    nx: int
    nv: int
    ny: int
    hidden: tuple[int, ...] = ()
    activation: str = "relu"
    polar: bool = True
    abar: float = 1.0
    init: str = "random"
    identity_output: bool = False
    d22_zero: bool = False
    compat: str | None = None
    dtype: str = "float64"
    gamma: float | None = None
    learn_gamma: bool = False
    nu_index: float | None = None
    rho_index: float | None = None
    T: int = QUICK_T
    pairs: int = QUICK_PAIRS
    adversarial: bool = False       # also run the backends' adversarial gain ascent
    fd_entries: int = 6             # gradient entries checked by finite differences (0: one per parameter)
    seed: int = field(default=-1, compare=False)

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"Case: `family` must be one of {FAMILIES}; got {self.family!r}.")
        if self.seed < 0:
            object.__setattr__(self, "seed", zlib.crc32(self.id.encode()) % 2**31)

    @property
    def recurrent(self) -> bool:
        return self.family not in FEEDFORWARD_FAMILIES

    @property
    def id(self) -> str:
        """A readable unique name, e.g. ``LipschitzR2DN-u2x3v3y1-h3.2-tanh-a0.9-julia-f32``."""
        if self.recurrent:
            parts = [self.family, f"u{self.nu}x{self.nx}v{self.nv}y{self.ny}"]
        else:
            parts = [self.family, f"i{self.nu}o{self.ny}"]
        if self.hidden:
            parts.append("h" + ".".join(map(str, self.hidden)))
        elif self.family in ("LBDN", "ContractingR2DN", "LipschitzR2DN", "GeneralR2DN"):
            parts.append("h0")
        if self.activation != "relu":
            parts.append(self.activation)
        if not self.polar:
            parts.append("nopolar")
        if self.abar != 1.0:
            parts.append(f"a{self.abar:g}")
        if self.init != "random":
            parts.append("lm")
        if self.identity_output:
            parts.append("idout")
        if self.d22_zero:
            parts.append("d22zero")
        if self.gamma is not None:
            parts.append(f"g{self.gamma:g}")
        if self.learn_gamma:
            parts.append("learng")
        if self.nu_index is not None:
            parts.append(f"nu{self.nu_index:g}rho{self.rho_index:g}")
        if self.compat is not None:
            parts.append(self.compat)
        parts.append("f64" if self.dtype == "float64" else "f32")
        if (self.T, self.pairs) != (QUICK_T, QUICK_PAIRS):
            parts.append(f"T{self.T}b{3 * self.pairs}")
        return "-".join(parts)

    def __str__(self) -> str:
        return self.id

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)} | {"id": self.id}




def make_config(case: Case, dtype: str | None = None) -> ModelConfig:
    """The model configuration of ``case`` (``dtype`` overrides the case's, keeping its eps).

    The reference of a float32 case is ``make_config(case, "float64")``: the same maps and the
    same resolved ``eps``, evaluated in float64.
    """
    c = case
    ctor = CONSTRUCTORS[c.family]
    common = dict(seed=c.seed, dtype=c.dtype, compat=c.compat, activation=c.activation)
    if c.family == "SandwichLayer":
        cfg = ctor(c.nu, c.ny, **common)
    elif c.family == "LBDN":
        cfg = ctor(c.nu, c.hidden, c.ny, c.gamma, learn_gamma=c.learn_gamma, **common)
    else:
        args: list = [c.nu, c.nx, c.nv, c.ny]
        kw = dict(common, abar=c.abar, polar=c.polar, init=c.init)
        if "R2DN" in c.family:
            args.append(c.hidden)
        if c.family in LIPSCHITZ_FAMILIES:
            args.append(c.gamma)
        if c.family.startswith("General"):
            args += list(random_supply(np.random.default_rng([c.seed, 7]), c.nu, c.ny))
        if c.family == "PassiveREN":
            kw.update(nu_index=c.nu_index, rho_index=c.rho_index)
        if c.family in CONTRACTING_FAMILIES:
            kw["identity_output"] = c.identity_output
        if c.d22_zero:
            kw["d22_zero"] = True
        cfg = ctor(*args, **kw)
    return cfg if dtype is None else cfg.replace(dtype=dtype)


def case_direct(case: Case) -> dict[str, np.ndarray]:
    """The case's free parameters: the seed's initial draw, perturbed (float64 NumPy).

    Every entry moves by ``N(0, (PERTURBATION * (rms + PERTURBATION_FLOOR))^2)``, with ``rms``
    the parameter's root-mean-square at init, so terms that start at zero are exercised too.
    """
    direct = init_direct(make_config(case, "float64"))
    rng = np.random.default_rng([case.seed, 1])
    out = {}
    for name, v in direct.items():
        rms = float(np.sqrt(np.mean(v**2))) if v.size else 0.0
        size = PERTURBATION * (rms + PERTURBATION_FLOOR)
        out[name] = v + size * rng.normal(size=v.shape)
    return out


class CaseInputs(NamedTuple):
    """The signals of a case (float64; round to the case's dtype before use).

    Recurrent: ``x0 (B, nx)``, ``us (T, B, nu)`` with ``B = 3 * pairs`` rows in three blocks
    ``a, b, c``: rows ``b`` share ``x0`` with ``a`` and have other inputs (an input-output pair);
    rows ``c`` share the inputs of ``a`` and start elsewhere (a contraction pair). ``x (B, nx)`` and
    ``u (B, nu)`` are the one-step check's arguments; ``wy (T, B, ny)`` and ``wx (B, nx)`` weigh the
    loss ``sum(wy * ys) + sum(wx * x_T)`` whose gradient is checked.
    Feed-forward: ``u (B, in)`` (the same a/b pairs in its rows) and ``wy (B, out)``; the rest None.
    """

    x0: np.ndarray | None
    us: np.ndarray | None
    x: np.ndarray | None
    u: np.ndarray
    wy: np.ndarray
    wx: np.ndarray | None


def case_inputs(case: Case) -> CaseInputs:
    """Draw the signals of ``case`` from its seed (float64)."""
    rng = np.random.default_rng([case.seed, 2])
    k = case.pairs
    B = 3 * k
    if not case.recurrent:
        ua = rng.normal(size=(k, case.nu))
        u = np.concatenate([ua, ua + rng.normal(size=ua.shape), rng.normal(size=(k, case.nu))])
        return CaseInputs(None, None, None, u, rng.normal(size=(B, case.ny)), None)
    xa = rng.normal(size=(k, case.nx))
    x0 = np.concatenate([xa, xa, rng.normal(size=(k, case.nx))])
    ua = rng.normal(size=(case.T, k, case.nu))
    us = np.concatenate([ua, ua + rng.normal(size=ua.shape), ua], axis=1)
    x = rng.normal(size=(B, case.nx))
    u = rng.normal(size=(B, case.nu))
    wy = rng.normal(size=(case.T, B, case.ny))
    wx = rng.normal(size=(B, case.nx))
    return CaseInputs(x0, us, x, u, wy, wx)


# -- the table ---------------------------------------------------------------------------------

def _cycle(seq, i):
    return seq[i % len(seq)]


_ACTS = ("relu", "tanh", "sigmoid", "identity")
_COMPATS = (None, "julia", "robustnn")
_DTYPES = ("float64", "float32")


#: full-tier cases the quick tier runs too: the float32 PassiveREN whose E has cond 2e5 (its
#: float32 arithmetic cannot follow the float64 reference; certify must say so, see
#: known_differences.toml) and the float32 ContractingREN once 1.7e-5 off in its gradient.
REGRESSION_CASES = ("PassiveREN-u1x3v4y1-sigmoid-a0.7-nu0rho0-robustnn-f32-T10b12",
                    "ContractingREN-u1x3v4y3-idout-julia-f32-T10b12")


def _quick() -> list[Case]:
    """Hand-picked covering design: ~7 cases per recurrent family, 4 per feed-forward family."""
    R, Cs = [], Case
    # sizes (nu, nx, nv, ny): square, nu > ny, nu < ny, nx = 1, nv = 1
    S = [(2, 3, 3, 2), (3, 2, 3, 1), (1, 2, 3, 3), (2, 1, 2, 2), (2, 3, 1, 1)]
    H = [(3,), (), (4, 2)]
    for fam in ("ContractingREN", "LipschitzREN", "GeneralREN", "ContractingR2DN",
                "LipschitzR2DN", "GeneralR2DN"):
        r2 = "R2DN" in fam
        lip = fam.startswith("Lipschitz")
        for i, (nu, nx, nv, ny) in enumerate(S):
            R.append(Cs(fam, nu, nx, nv, ny, hidden=_cycle(H, i) if r2 else (),
                        activation=_cycle(_ACTS, i + len(fam)), polar=i != 2,
                        abar=0.9 if i in (1, 3) else 1.0, init="long_memory" if i == 4 else "random",
                        compat=_cycle(_COMPATS, i), dtype=_cycle(_DTYPES, i),
                        gamma=_cycle((2.0, 0.5, 5.0), i) if lip else None,
                        adversarial=i == 0 and lip))
        R.append(Cs(fam, 2, 2, 2, 2, hidden=(2,) if r2 else (), activation="tanh", abar=0.8,
                    compat="julia" if not r2 else "robustnn", dtype="float32",
                    gamma=1.5 if lip else None,
                    identity_output=fam.startswith("Contracting")))
    # d22_zero (RobustNeuralNetworks.jl's D22_zero) and a float32 long-memory REN
    R.append(Cs("ContractingREN", 2, 2, 3, 2, d22_zero=True, compat="julia", dtype="float32"))
    R.append(Cs("LipschitzREN", 3, 2, 2, 1, gamma=3.0, d22_zero=True, activation="tanh"))
    R.append(Cs("LipschitzREN", 2, 3, 2, 2, gamma=1.0, init="long_memory", dtype="float32",
                activation="sigmoid", abar=0.95))
    # passive RENs (nu == ny), rho = 0 and rho > 0, every compat
    R.append(Cs("PassiveREN", 2, 3, 3, 2, nu_index=0.0, rho_index=0.0))
    R.append(Cs("PassiveREN", 1, 1, 2, 1, nu_index=0.2, rho_index=0.0, activation="tanh",
                dtype="float32", polar=False))
    R.append(Cs("PassiveREN", 2, 2, 1, 2, nu_index=0.1, rho_index=0.5, compat="julia",
                abar=0.9))
    R.append(Cs("PassiveREN", 3, 2, 2, 3, nu_index=-0.1, rho_index=0.5, compat="robustnn",
                dtype="float32", init="long_memory", activation="sigmoid"))
    R.append(Cs("PassiveREN", 2, 2, 3, 2, nu_index=0.0, rho_index=0.0, compat="julia",
                dtype="float32", activation="identity"))
    # feed-forward
    R.append(Cs("LBDN", 3, 0, 0, 2, hidden=(4, 3), gamma=2.0, adversarial=True))
    R.append(Cs("LBDN", 1, 0, 0, 3, hidden=(), gamma=0.5, activation="tanh", dtype="float32"))
    R.append(Cs("LBDN", 2, 0, 0, 2, hidden=(3,), gamma=1.5, learn_gamma=True, compat="robustnn",
                activation="sigmoid"))
    R.append(Cs("LBDN", 2, 0, 0, 1, hidden=(2, 2, 2), gamma=4.0, compat="julia", dtype="float32"))
    R.append(Cs("SandwichLayer", 3, 0, 0, 2, activation="relu"))
    R.append(Cs("SandwichLayer", 2, 0, 0, 4, activation="tanh", dtype="float32",
                compat="robustnn"))
    R.append(Cs("SandwichLayer", 1, 0, 0, 1, activation="identity", compat="julia"))
    # full-tier cases that once failed (issue 17), so CI catches a regression
    R += [c for c in _full_extra() if c.id in REGRESSION_CASES]
    return R


def _full_extra() -> list[Case]:
    """Every family x more sizes x every compat x both dtypes, options rotating, longer T."""
    out = []
    S = [(1, 1, 1, 1), (2, 4, 5, 1), (1, 3, 4, 3), (4, 3, 2, 2), (3, 5, 6, 4), (2, 2, 8, 2)]
    H = [(4,), (5, 3), (), (2, 2, 2)]
    recurrent = ("ContractingREN", "LipschitzREN", "GeneralREN", "PassiveREN", "ContractingR2DN",
                 "LipschitzR2DN", "GeneralR2DN")
    i = 0
    for fam in recurrent:
        for (nu, nx, nv, ny) in S:
            for compat in _COMPATS:
                for dtype in _DTYPES:
                    i += 1
                    if fam == "PassiveREN":
                        ny = nu
                    rho = _cycle((0.0, 0.0, 0.5), i) if fam == "PassiveREN" else None
                    out.append(Case(
                        fam, nu, nx, nv, ny, hidden=_cycle(H, i) if "R2DN" in fam else (),
                        activation=_cycle(_ACTS, i), polar=i % 5 != 0,
                        abar=_cycle((1.0, 0.9, 0.7, 1.0), i),
                        init=_cycle(("random", "random", "long_memory"), i),
                        identity_output=fam.startswith("Contracting") and nx == ny and i % 2 == 0,
                        d22_zero=fam in ("ContractingREN", "LipschitzREN") and i % 7 == 3,
                        compat=compat, dtype=dtype,
                        gamma=_cycle((0.3, 1.0, 3.0, 10.0), i) if fam.startswith("Lipschitz") else None,
                        nu_index=_cycle((0.0, 0.1, -0.2), i) if fam == "PassiveREN" else None,
                        rho_index=rho, T=FULL_T, pairs=FULL_PAIRS, fd_entries=0,
                        adversarial=not fam.startswith("Contracting") and i % 3 == 0))
    for (nu, ny) in [(1, 1), (4, 2), (2, 5), (6, 6)]:
        for compat in _COMPATS:
            for dtype in _DTYPES:
                i += 1
                out.append(Case("LBDN", nu, 0, 0, ny, hidden=_cycle(H, i),
                                gamma=_cycle((0.3, 1.0, 3.0, 10.0), i), learn_gamma=i % 3 == 0,
                                activation=_cycle(_ACTS, i), compat=compat, dtype=dtype,
                                pairs=FULL_PAIRS, fd_entries=0, adversarial=i % 2 == 0))
                out.append(Case("SandwichLayer", nu, 0, 0, ny, activation=_cycle(_ACTS, i + 1),
                                compat=compat, dtype=dtype, pairs=FULL_PAIRS, fd_entries=0,
                                adversarial=i % 2 == 1))
    return out


def _unique(cases: Iterable[Case]) -> tuple[Case, ...]:
    out, seen = [], {}
    for c in cases:
        if c.id in seen:
            if seen[c.id] != c:
                raise ValueError(f"conformance: two different cases share the id {c.id!r}.")
            continue
        seen[c.id] = c
        make_config(c)            # every case must be a valid model
        out.append(c)
    return tuple(out)


#: The CI tier: every family, both dtypes, every compat preset and option, small sizes, T = 4.
QUICK: tuple[Case, ...] = _unique(_quick())
#: The long tier: QUICK plus every family over six sizes x three compats x two dtypes, T = 10.
FULL: tuple[Case, ...] = _unique([*QUICK, *_full_extra()])
TIERS = {"quick": QUICK, "full": FULL}


def select(tier: str = "quick", pattern: str | None = None) -> tuple[Case, ...]:
    """The cases of ``tier`` whose id matches the glob ``pattern`` (substring when it has no ``*``)."""
    import fnmatch
    if tier not in TIERS:
        raise ValueError(f"conformance: `tier` must be one of {sorted(TIERS)}; got {tier!r}.")
    cases = TIERS[tier]
    if pattern:
        pats = [p if "*" in p or "?" in p else f"*{p}*" for p in pattern.split(",")]
        cases = tuple(c for c in cases if any(fnmatch.fnmatchcase(c.id, p) for p in pats))
    return cases


def with_dtype(case: Case, dtype: str) -> Case:
    """The same case in another dtype."""
    return replace(case, dtype=dtype, seed=-1)
