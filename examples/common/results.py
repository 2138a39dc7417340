"""Settings, deviations from the paper, ``results.json`` and the figures of merit."""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .timing import cpu_load

if TYPE_CHECKING:
    from .adapters import Backend


def deviations(paper: Mapping[str, Any], used: Mapping[str, Any],
               notes: Iterable[str] = ()) -> list[str]:
    """Every setting of ``used`` that differs from ``paper``, in words, then the fixed ``notes``."""
    out = [f"{k}: paper {paper[k]!r}, here {used[k]!r}" for k in paper
           if k in used and _normal(paper[k]) != _normal(used[k])]
    return out + list(notes)


def _normal(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


#: what a ``--quick`` run says about itself, in its output, ``results.json`` and plot titles.
SMOKE_NOTE = ("SMOKE RUN (--quick): tiny data, model and epochs; its figures show that the code "
              "runs, not how well the model does")


def write_results(out: Path, script: str, args: argparse.Namespace, settings: Mapping[str, Any],
                  devs: list[str], figures: Mapping[str, Any], backend: Backend | None = None,
                  extra: Mapping[str, Any] | None = None) -> Path:
    """Write ``out/results.json`` and print the deviations and the figures."""
    out.mkdir(parents=True, exist_ok=True)
    cli = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    payload = {
        "script": script,
        "command": "python " + " ".join([script] + sys.argv[1:]),
        "args": cli,
        "settings": dict(settings),
        "deviations_from_paper": devs,
        "figures": dict(figures),
        "environment": {"python": platform.python_version(), "machine": platform.machine(),
                        "cpus": os.cpu_count(), "cpu_load_1_5_15min": cpu_load(),
                        "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
                        **(backend.info() if backend else {})},
        **(dict(extra) if extra else {}),
    }
    smoke = bool(getattr(args, "quick", False))
    payload = {"smoke_run": smoke, **({"note": SMOKE_NOTE} if smoke else {}), **payload}
    path = out / "results.json"
    path.write_text(json.dumps(_jsonable(payload), indent=2) + "\n")
    if smoke:
        print(SMOKE_NOTE)
    print("deviations from the paper:" if devs else "deviations from the paper: none")
    for d in devs:
        print(f"  - {d}")
    for k, v in figures.items():
        print(f"{k}: {fmt(v)}" + (" (smoke run)" if smoke else ""))
    print(f"wrote {path}")
    return path


def fmt(v: Any) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def _jsonable(v: Any) -> Any:
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if isinstance(v, Path):
        return str(v)
    return v


def nrmse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """``sqrt(mean((y - yhat)^2) / mean(y^2))`` over every entry (the paper's NRMSE; x100 for %)."""
    return float(np.sqrt(np.mean((y_true - y_pred) ** 2) / np.mean(y_true ** 2)))
