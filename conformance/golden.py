"""Golden fixtures: pinned outputs of the NumPy reference, committed, so that a change in the
maths is caught even when every backend drifts with it.

Each pinned case has one small file ``golden/<case id>.npz`` holding, in float64, the case's free
parameters (``direct.<name>``), the reference's explicit matrices (``explicit.<name>``), one step
(``step.x1``, ``step.y1``) and a rollout (``rollout.xT``, ``rollout.ys``; an LBDN's ``forward.y``).
The conformance run compares every backend's explicit matrices, step and rollout with the file,
and the regenerated parameters with the stored ones (a changed initialiser or random stream
shows up there, separately from a changed map).

Regenerating is deliberate, after a reviewed change of the maths::

    python -m r2dn.conformance.golden --regenerate      # rewrite conformance/golden/*.npz
    python -m r2dn.conformance.golden                   # check only (exit 1 on a difference)

Regenerate only from a source checkout (the files are package data); say in the commit which
formula changed and why.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from .cases import QUICK, Case
from .reference import reference

#: where the fixtures live (package data of r2dn.conformance).
GOLDEN_DIR = Path(__file__).with_name("golden")

#: the pinned cases (ids in the quick tier): one per family group and compat preset.
PINNED: tuple[str, ...] = (
    "ContractingREN-u2x3v1y1-sigmoid-lm-julia-f64",
    "LipschitzREN-u1x2v3y3-sigmoid-nopolar-g5-robustnn-f64",
    "GeneralREN-u2x3v3y2-sigmoid-f64",
    "PassiveREN-u2x2v1y2-a0.9-nu0.1rho0.5-julia-f64",
    "ContractingR2DN-u1x2v3y3-h4.2-tanh-nopolar-robustnn-f64",
    "LipschitzR2DN-u2x3v3y2-h3-tanh-g2-f64",
    "GeneralR2DN-u2x3v1y1-h0-identity-lm-julia-f64",
    "LBDN-i3o2-h4.3-g2-f64",
)


def pinned_cases() -> tuple[Case, ...]:
    by_id = {c.id: c for c in QUICK}
    missing = [p for p in PINNED if p not in by_id]
    if missing:
        raise ValueError(f"conformance.golden: pinned case(s) {missing} are not in the quick tier.")
    return tuple(by_id[p] for p in PINNED)


def is_pinned(case: Case) -> bool:
    return case.id in PINNED


def path(case: Case, directory: Path = GOLDEN_DIR) -> Path:
    return Path(directory) / f"{case.id}.npz"


def compute(case: Case) -> dict[str, np.ndarray]:
    """The arrays a fixture holds, from the NumPy reference (float64)."""
    ref = reference(case)
    out = {f"direct.{k}": v for k, v in ref.direct.items()}
    out |= {f"explicit.{k}": v for k, v in ref.explicit.items()}
    if ref.step is not None:
        out["step.x1"], out["step.y1"] = ref.step
        out["rollout.xT"], out["rollout.ys"] = ref.rollout
    else:
        out["forward.y"] = ref.rollout[1]
    return {k: np.asarray(v, dtype=np.float64) for k, v in out.items()}


def load(case: Case, directory: Path = GOLDEN_DIR) -> dict[str, np.ndarray] | None:
    """The stored fixture of ``case``, or None when there is none."""
    p = path(case, directory)
    if not p.exists():
        return None
    with np.load(p, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def regenerate(directory: Path = GOLDEN_DIR) -> list[Path]:
    """Write the fixture of every pinned case (and remove stale ones); returns the paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for case in pinned_cases():
        p = path(case, directory)
        np.savez_compressed(p, **compute(case))
        written.append(p)
    keep = {p.name for p in written}
    for stale in directory.glob("*.npz"):
        if stale.name not in keep:
            stale.unlink()
    return written


def compare(stored: dict[str, np.ndarray], got: dict[str, np.ndarray]) -> tuple[float, str]:
    """Largest relative difference ``max|a - b| / max(1, max|b|)`` over common keys, and where.

    Keys present on one side only count as an infinite difference.
    """
    worst, where = 0.0, ""
    for k in sorted(set(stored) | set(got)):
        if k not in stored or k not in got or stored[k].shape != got[k].shape:
            return float("inf"), f"{k}: present or shaped differently"
        a, b = got[k], stored[k]
        err = float(np.max(np.abs(a - b), initial=0.0) / max(1.0, float(np.max(np.abs(b), initial=0.0))))
        if err > worst:
            worst, where = err, k
    return worst, where or "all equal"


def check_all(directory: Path = GOLDEN_DIR) -> list[tuple[str, float, str]]:
    """``(case id, worst error, where)`` of the reference against every stored fixture."""
    out = []
    for case in pinned_cases():
        stored = load(case, directory)
        if stored is None:
            out.append((case.id, float("inf"), "no fixture"))
            continue
        out.append((case.id, *compare(stored, compute(case))))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m r2dn.conformance.golden",
                                     description="Check or regenerate the golden fixtures.")
    parser.add_argument("--regenerate", action="store_true",
                        help="rewrite the fixtures from the NumPy reference (deliberate!)")
    parser.add_argument("--dir", type=Path, default=GOLDEN_DIR, help="fixture folder")
    args = parser.parse_args(argv)
    if args.regenerate:
        for p in regenerate(args.dir):
            print(f"wrote {p} ({p.stat().st_size} bytes)")
        return 0
    from .tolerances import tolerance
    bad = 0
    for cid, err, where in check_all(args.dir):
        ok = err <= tolerance("float64", "golden")
        bad += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {cid}: max relative difference {err:.3g} ({where})")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
