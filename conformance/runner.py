"""Run the case matrix on the backends and turn every comparison into a :class:`CheckResult`.

Per case and backend (each against the float64 NumPy reference of :mod:`.reference`, with the
tolerances of :mod:`.tolerances`):

============  ==================================================================================
explicit      every explicit matrix (same names, shapes and values)
dtype         every array the backend returns has the model's dtype
step          ``model(x, u)`` (recurrent) / ``forward``: ``model(u)`` (feed-forward)
rollout       ``model.simulate(x0, us)``: final state and every output
grad_fd       autodiff gradient of the fixed loss against float64 central differences of the
              reference: a few single entries, and random directions over all parameters
grad_cross    every gradient entry of this backend against the first autodiff backend's (torch
              against JAX); names must equal ``direct()``'s
certificate   ``r2dn.certify(model)`` on the backend's model: certified, ``min_eig > 0``,
              ``rate <= abar``, ``gamma <= gamma`` (Lipschitz, LBDN, Sandwich)
contraction   rows with equal inputs, different initial states: ``|dx_T|_Pc <= abar^T |dx_0|_Pc``
gain_random   rows with equal initial states, different inputs: ``|dy| <= bound |du|``
dissipation   (Q, S, R) families: ``sum_t s(dy_t, du_t) >= 0`` on the same pairs
gain_adversarial  the backend's ``empirical_gain`` (adversarial ascent) stays below the bound
golden        pinned cases: the committed fixtures (reference maths unchanged)
============  ==================================================================================

The ``julia`` backend (RobustNeuralNetworks.jl) computes rollouts and LBDN outputs only, so it
gets the ``rollout`` / ``forward`` checks; cases Julia has no counterpart for are skipped with
the bridge's reason.

A check's status is ``pass``, ``fail``, ``error`` (the backend raised), ``skip`` (does not apply;
the reason is recorded), ``xfail`` (failed as listed in ``known_differences.toml``) or ``xpass``
(listed but did not fail: strict, counted as a failure).
"""

from __future__ import annotations

import fnmatch
import math
import time
import tomllib
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


from . import golden
from .backends import Adapter, Outputs
from .cases import Case
from .reference import Reference, reference
from .tolerances import tolerance

KNOWN_DIFFERENCES = Path(__file__).with_name("known_differences.toml")
FAILING = ("fail", "error", "xpass")
#: every check name a result can carry
CHECKS = ("supported", "evaluate", "explicit", "dtype", "step", "rollout", "forward", "grad_fd",
          "grad_cross", "certificate", "contraction", "gain_random", "dissipation",
          "gain_adversarial", "golden")
#: adversarial ascent settings per tier: (steps, horizon cap, batch)
ADVERSARIAL = {"quick": (25, 4, 4), "full": (60, 10, 8)}


@dataclass
class CheckResult:
    """One comparison of one backend on one case."""

    case: str
    family: str
    dtype: str
    backend: str
    check: str
    status: str
    error: float | None = None        # the measured error (or slack) the tolerance applies to
    tol: float | None = None
    detail: str = ""
    values: dict[str, float] = field(default_factory=dict)   # e.g. rate, abar, gamma, bound

    @property
    def failed(self) -> bool:
        return self.status in FAILING

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("error", "tol"):
            if d[k] is not None and not math.isfinite(d[k]):
                d[k] = str(d[k])
        d["values"] = {k: (v if isinstance(v, (int, str)) or math.isfinite(v) else str(v))
                       for k, v in d["values"].items()}
        return d


# -- known differences ---------------------------------------------------------------------------

@dataclass(frozen=True)
class KnownDifference:
    """An expected failure, with its ``reason`` (and a ``link`` where there is one).

    ``case``, ``backend``, ``check`` and ``dtype`` are globs (``backend`` and ``check`` may be lists
    of globs); the entry covers every result that matches all four, and each of those results must
    fail (strict).
    """

    case: str
    backend: tuple[str, ...]
    check: tuple[str, ...]
    reason: str
    link: str = ""
    dtype: str = "*"

    def matches(self, r: CheckResult) -> bool:
        return (fnmatch.fnmatchcase(r.case, self.case)
                and any(fnmatch.fnmatchcase(r.backend, b) for b in self.backend)
                and any(fnmatch.fnmatchcase(r.check, c) for c in self.check)
                and fnmatch.fnmatchcase(r.dtype, self.dtype))


def _globs(value) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


def load_known(path: Path | str = KNOWN_DIFFERENCES) -> tuple[KnownDifference, ...]:
    """Parse ``known_differences.toml`` (a list of ``[[difference]]`` tables)."""
    path = Path(path)
    if not path.exists():
        return ()
    with path.open("rb") as f:
        data = tomllib.load(f)
    unknown = set(data) - {"difference"}
    if unknown:
        raise ValueError(f"{path}: unknown top-level keys {sorted(unknown)}; use [[difference]].")
    out = []
    for i, entry in enumerate(data.get("difference", [])):
        missing = {"case", "backend", "check", "reason"} - set(entry)
        if missing:
            raise ValueError(f"{path}: difference #{i + 1} lacks {sorted(missing)}.")
        extra = set(entry) - {"case", "backend", "check", "reason", "link", "dtype"}
        if extra:
            raise ValueError(f"{path}: difference #{i + 1} has unknown keys {sorted(extra)}.")
        if not str(entry["reason"]).strip():
            raise ValueError(f"{path}: difference #{i + 1} needs a non-empty `reason`.")
        out.append(KnownDifference(**{**entry, "backend": _globs(entry["backend"]),
                                      "check": _globs(entry["check"])}))
    return tuple(out)


def apply_known(results: list[CheckResult], known: Iterable[KnownDifference]) -> None:
    """Turn listed failures into ``xfail`` and listed passes into ``xpass`` (strict), in place."""
    for r in results:
        for k in known:
            if k.matches(r):
                if r.status in ("fail", "error"):
                    r.status, r.detail = "xfail", f"known difference: {k.reason} | {r.detail}"
                elif r.status == "pass":
                    r.status = "xpass"
                    r.detail = f"listed in known_differences.toml but passed ({k.reason})"
                break


# -- error measures ------------------------------------------------------------------------------

def rel_err(actual: np.ndarray, ref: np.ndarray, scale: float | None = None) -> float:
    """``max|actual - ref| / max(1, max|ref|)`` (or / ``scale``); inf on a shape mismatch."""
    actual, ref = np.asarray(actual, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    if actual.shape != ref.shape:
        return math.inf
    if not np.all(np.isfinite(actual)):
        return math.inf
    s = scale if scale is not None else max(1.0, float(np.max(np.abs(ref), initial=0.0)))
    return float(np.max(np.abs(actual - ref), initial=0.0)) / s


def worst(pairs: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> tuple[float, str]:
    err, where = 0.0, ""
    for k, (a, r) in pairs.items():
        e = rel_err(a, r)
        if e > err or not where:
            err, where = e, k
    return err, where


# -- the runner ----------------------------------------------------------------------------------

class Runner:
    """Runs cases on adapters; caches references and backend outputs per process.

    Parameters
    ----------
    adapters : {name: Adapter} of the backends that work here
    absent : {name: reason} of those that do not (reported, never silently skipped)
    tier : "quick" or "full" (sets the adversarial ascent's effort)
    known : the known differences (default: ``known_differences.toml``)
    """

    def __init__(self, adapters: Mapping[str, Adapter], absent: Mapping[str, str] | None = None,
                 *, tier: str = "quick", known: Iterable[KnownDifference] | None = None) -> None:
        self.adapters = dict(adapters)
        self.absent = dict(absent or {})
        self.tier = tier
        self.known = tuple(load_known() if known is None else known)
        self._cache: dict[tuple[str, str], tuple[Any, Outputs | None, str | None]] = {}
        self.timings: dict[str, float] = {name: 0.0 for name in self.adapters}

    # -- evaluation ------------------------------------------------------------------------------
    def evaluate(self, case: Case, backend: str) -> tuple[Any, Outputs | None, str | None]:
        """``(model, outputs, error text)`` of a backend on a case (cached)."""
        key = (case.id, backend)
        if key not in self._cache:
            adapter = self.adapters[backend]
            ref = reference(case)
            t0 = time.perf_counter()
            try:
                with adapter.context():
                    model = adapter.build(ref.config, ref.direct)
                    out = adapter.evaluate(model, ref.inputs)
                self._cache[key] = (model, out, None)
            except Exception as err:  # noqa: BLE001 - a backend failure is a result, not a crash
                tb = traceback.format_exception_only(type(err), err)[-1].strip()
                self._cache[key] = (None, None, tb)
            self.timings[backend] = self.timings.get(backend, 0.0) + time.perf_counter() - t0
        return self._cache[key]

    def drop(self, case: Case) -> None:
        """Forget the cached outputs of ``case`` and let the adapters free what it left behind
        (keeps memory flat over a long run)."""
        for name, adapter in self.adapters.items():
            self._cache.pop((case.id, name), None)
            adapter.release()

    # -- checks -------------------------------------------------------------------------------------
    def check(self, case: Case, backend: str) -> list[CheckResult]:
        """Every check of ``backend`` on ``case`` (known differences applied)."""
        ref = reference(case)
        adapter = self.adapters[backend]
        base = dict(case=case.id, family=case.family, dtype=case.dtype, backend=backend)

        def res(check: str, status: str, error=None, detail="", tol_check=None, **values):
            tol = tolerance(case.dtype, tol_check or check) if error is not None else None
            return CheckResult(**base, check=check, status=status, error=error, tol=tol,
                               detail=detail, values=values)

        def judged(check: str, error: float, detail: str = "", **values) -> CheckResult:
            tol = tolerance(case.dtype, check)
            ok = error <= tol
            return CheckResult(**base, check=check, status="pass" if ok else "fail", error=error,
                               tol=tol, detail=detail, values=values)

        why = adapter.supports(ref.config)
        if why is not None:
            results = [res("supported", "skip", detail=why)]
            apply_known(results, self.known)
            return results
        t0 = time.perf_counter()
        model, out, err = self.evaluate(case, backend)
        if err is not None:
            results = [res("evaluate", "error", detail=err)]
            apply_known(results, self.known)
            return results
        results: list[CheckResult] = []
        with adapter.context():
            results += self._compare_values(case, ref, adapter, out, judged, res)
            if "explicit" in adapter.computes:        # the bounds certify the explicit matrices
                results += self._bounds(case, ref, adapter, model, out, judged, res)
        if golden.is_pinned(case) and "explicit" in adapter.computes:
            results.append(self._golden(case, out, judged, res))
        self.timings[backend] = self.timings.get(backend, 0.0) + time.perf_counter() - t0
        apply_known(results, self.known)
        return results

    def _compare_values(self, case, ref: Reference, adapter, out: Outputs, judged, res):
        rs = []
        if "explicit" in adapter.computes:
            if set(out.explicit) != set(ref.explicit):
                rs.append(res("explicit", "fail", error=math.inf,
                              detail=f"names differ: {sorted(set(out.explicit) ^ set(ref.explicit))}"))
            else:
                e, where = worst({k: (out.explicit[k], ref.explicit[k]) for k in ref.explicit})
                rs.append(judged("explicit", e, f"worst: {where}"))
            bad = sorted(out.dtypes - {case.dtype})
            rs.append(res("dtype", "fail" if bad else "pass",
                          detail=f"returned dtypes {sorted(out.dtypes)}; model is {case.dtype}"))
        if case.recurrent:
            if "step" in adapter.computes:
                e, where = worst({"x1": (out.step[0], ref.step[0]), "y1": (out.step[1], ref.step[1])})
                rs.append(judged("step", e, f"worst: {where}"))
            e, where = worst({"xT": (out.rollout[0], ref.rollout[0]),
                              "ys": (out.rollout[1], ref.rollout[1])})
            rs.append(judged("rollout", e, f"worst: {where}"))
        else:
            e, _ = worst({"y": (out.rollout[1], ref.rollout[1])})
            rs.append(judged("forward", e, "model(u)"))
        if adapter.autodiff:
            rs += self._gradients(case, ref, adapter, out, judged, res)
        return rs

    def _gradients(self, case, ref: Reference, adapter, out: Outputs, judged, res):
        rs = []
        names = set(ref.direct)
        if set(out.grads) != names:
            return [res("grad_fd", "fail", error=math.inf,
                        detail=f"gradient names {sorted(out.grads)} != direct() names {sorted(names)}")]
        # the gradient's scale: its largest entry (the differences sample only a few entries)
        scale = max([1.0] + [abs(v) for v in ref.fd.values()]
                    + [float(np.max(np.abs(g), initial=0.0)) for g in out.grads.values()])
        errs = {f"{k}[{i}]": abs(float(out.grads[k].reshape(-1)[i]) - v) / scale
                for (k, i), v in ref.fd.items()}
        for j, (v, d) in enumerate(ref.fd_directions):
            terms = [out.grads[k] * v[k] for k in v]
            dot = float(sum(np.sum(t) for t in terms))
            dscale = max(1.0, abs(d), float(sum(np.sum(np.abs(t)) for t in terms)))
            errs[f"direction {j}"] = abs(dot - d) / dscale
        where = max(errs, key=errs.get) if errs else "-"
        detail = (f"{len(ref.fd)} entries and {len(ref.fd_directions)} random directions over all "
                  f"parameters vs float64 central differences of the reference; worst: {where}")
        if ref.fd_dropped:
            detail += f"; {len(ref.fd_dropped)} entries next to a kink left out"
        rs.append(judged("grad_fd", max(errs.values(), default=0.0), detail))
        peers = [n for n, a in self.adapters.items() if a.autodiff]
        first = peers[0] if peers else None
        if first is None or first == adapter.name:
            if len(peers) < 2:
                rs.append(res("grad_cross", "skip",
                              detail=f"needs two autodiff backends; have {peers}"))
            return rs
        _, other, err = self.evaluate(case, first)
        if other is None:
            rs.append(res("grad_cross", "skip", detail=f"{first} failed to evaluate: {err}"))
            return rs
        gscale = max([1.0] + [float(np.max(np.abs(g), initial=0.0)) for g in other.grads.values()])
        errs = {k: rel_err(out.grads[k], other.grads[k], gscale) for k in other.grads}
        where = max(errs, key=errs.get)
        rs.append(judged("grad_cross", max(errs.values()),
                         f"every entry vs {first}; worst: {where}", against=first))
        return rs

    def _bounds(self, case, ref: Reference, adapter, model, out: Outputs, judged, res):
        rs = []
        cfg = ref.config
        # certificate of the backend's own model (float64 maths on its explicit matrices)
        try:
            cert = adapter.certify(model, out)
        except Exception as err:  # noqa: BLE001
            rs.append(res("certificate", "error", detail=f"{type(err).__name__}: {err}"))
            cert = None
        if cert is not None:
            slack = -math.inf
            values = dict(min_eig=cert.min_eig, relative_margin=cert.relative_margin)
            if case.recurrent:
                values.update(rate=cert.rate, abar=cfg.abar)
                slack = max(slack, cert.rate / cfg.abar - 1)
            gamma_cfg = None
            if cert.gamma is not None:
                values["gamma"] = cert.gamma
                if cfg.model in ("LipschitzREN", "LipschitzR2DN", "LBDN", "SandwichLayer"):
                    gamma_cfg = ref.bound
                    values["gamma_bound"] = gamma_cfg
                    slack = max(slack, cert.gamma / gamma_cfg - 1)
            slack = 0.0 if slack == -math.inf else slack
            tol = tolerance(case.dtype, "certificate")
            ok = cert.certified \
                and slack <= tol
            detail = (f"certified={cert.certified}, min_eig={cert.min_eig:.3g} "
                      f"(relative {cert.relative_margin:.3g})")
            if case.recurrent:
                detail += f", rate={cert.rate:.6g} <= abar={cfg.abar:g}"
            if gamma_cfg is not None:
                detail += f", gamma={cert.gamma:.6g} <= {gamma_cfg:g}"
            rs.append(CheckResult(case.id, case.family, case.dtype, adapter.name, "certificate",
                                  "pass" if ok else "fail", slack, tol, detail, values))
        rs += self._empirical(case, ref, out, judged, res)
        if case.adversarial and ref.bound is not None:
            steps, hcap, batch = ADVERSARIAL[self.tier if self.tier in ADVERSARIAL else "quick"]
            try:
                g = adapter.adversarial_gain(model, steps=steps, horizon=min(case.T, hcap),
                                             batch=batch, seed=case.seed % 2**31)
            except Exception as err:  # noqa: BLE001
                rs.append(res("gain_adversarial", "error", detail=f"{type(err).__name__}: {err}"))
            else:
                if g is None:
                    rs.append(res("gain_adversarial", "skip",
                                  detail=f"{adapter.name} has no empirical_gain"))
                else:
                    rs.append(judged("gain_adversarial", g / ref.bound - 1,
                                     f"ascent found {g:.6g} <= bound {ref.bound:.6g} "
                                     f"({ref.bound_source})", gain=g, bound=ref.bound))
        return rs

    def _empirical(self, case, ref: Reference, out: Outputs, judged, res):
        """Contraction, random-pair gain and supply checks on the rollout's a/b/c rows."""
        rs = []
        k = case.pairs
        inp = ref.inputs
        if not case.recurrent:
            y = out.rollout[1]
            du = np.linalg.norm(inp.u[:k] - inp.u[k:2 * k], axis=-1)
            dy = np.linalg.norm(y[:k] - y[k:2 * k], axis=-1)
            ratio = float(np.max(dy / du))
            rs.append(judged("gain_random", ratio / ref.bound - 1,
                             f"max |dy|/|du| = {ratio:.6g} over {k} pairs, bound {ref.bound:.6g}",
                             gain=ratio, bound=ref.bound))
            return rs
        xT, ys = out.rollout
        Pc = ref.Pc
        dx0 = inp.x0[:k] - inp.x0[2 * k:]
        dxT = xT[:k] - xT[2 * k:]
        V = lambda d: np.einsum("bi,ij,bj->b", d, Pc, d)  # noqa: E731
        ratio = float(np.max(np.sqrt(np.maximum(V(dxT), 0) / V(dx0)))) / case.abar ** case.T
        rs.append(judged("contraction", ratio - 1,
                         f"max |dx_T|_Pc / (abar^T |dx_0|_Pc) = {ratio:.6g} over {k} pairs, T={case.T}",
                         ratio=ratio))
        du = inp.us[:, :k] - inp.us[:, k:2 * k]
        dy = ys[:, :k] - ys[:, k:2 * k]
        if ref.bound is not None:
            gain = float(np.max(np.sqrt((dy**2).sum(axis=(0, 2)) / (du**2).sum(axis=(0, 2)))))
            rs.append(judged("gain_random", gain / ref.bound - 1,
                             f"max |dy|/|du| = {gain:.6g} over {k} pairs, bound {ref.bound:.6g} "
                             f"({ref.bound_source})", gain=gain, bound=ref.bound))
        supply = ref.config.supply()
        if supply is not None and case.family not in ("LipschitzREN", "LipschitzR2DN"):
            Q, S, R = supply
            s = (np.einsum("tbi,ij,tbj->b", dy, Q, dy) + 2 * np.einsum("tbi,ij,tbj->b", du, S, dy)
                 + np.einsum("tbi,ij,tbj->b", du, R, du))
            scale = float(np.max(np.einsum("tbi,ij,tbj->b", du, np.abs(R), du))) + \
                float(np.max(np.einsum("tbi,ij,tbj->b", dy, np.abs(Q), dy))) + 1.0
            rs.append(judged("dissipation", float(-np.min(s) / scale),
                             f"min_pairs sum_t s(dy, du) = {np.min(s):.6g} (scale {scale:.3g})",
                             supply=float(np.min(s))))
        return rs

    def _golden(self, case, out: Outputs, judged, res):
        stored = golden.load(case)
        if stored is None:
            return res("golden", "fail", error=math.inf,
                       detail=f"no fixture {golden.path(case).name}; regenerate deliberately "
                              "(python -m r2dn.conformance.golden --regenerate)")
        got = {f"explicit.{k}": v for k, v in out.explicit.items()}
        if case.recurrent:
            got |= {"step.x1": out.step[0], "step.y1": out.step[1],
                    "rollout.xT": out.rollout[0], "rollout.ys": out.rollout[1]}
        else:
            got["forward.y"] = out.rollout[1]
        ref = reference(case)
        got |= {f"direct.{k}": v for k, v in ref.direct.items()}
        err, where = golden.compare(stored, got)
        return judged("golden", err, f"vs {golden.path(case).name}; worst: {where}")

    # -- whole runs ---------------------------------------------------------------------------------
    def run(self, cases: Iterable[Case],
            progress: Callable[[Case, list[CheckResult]], None] | None = None
            ) -> list[CheckResult]:
        """Every check of every adapter on every case, in case order; ``progress(case, results)``
        is called after each case with that case's results."""
        results = []
        for case in cases:
            mine = []
            for name in self.adapters:
                mine += self.check(case, name)
            self.drop(case)
            results += mine
            if progress is not None:
                progress(case, mine)
        return results


def summarize(results: list[CheckResult]) -> dict[str, Any]:
    """Counts per status, and the worst error per backend, dtype and check."""
    counts: dict[str, int] = {}
    worst_err: dict[str, dict[str, dict[str, float]]] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
        if r.error is None or r.status == "skip":
            continue
        slot = worst_err.setdefault(r.backend, {}).setdefault(r.dtype, {})
        slot[r.check] = max(slot.get(r.check, -math.inf), r.error)
    return {"counts": counts, "worst": worst_err,
            "failed": sum(r.failed for r in results)}
