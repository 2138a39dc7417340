"""Timing: a stopwatch, timing loops (medians of interleaved repeats), log-log slopes, CPU load."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np


class Stopwatch:
    """``with Stopwatch() as sw: ...``; ``sw.seconds`` afterwards."""

    def __enter__(self) -> "Stopwatch":
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.seconds = time.perf_counter() - self.start


def time_call(fn: Callable[[], Any], repeats: int, sync: Callable[[Any], Any] = lambda v: v,
              warmup: int = 1) -> dict[str, Any]:
    """Run ``fn`` ``warmup`` times (compilation, caches), then ``repeats`` times, each waited for
    with ``sync``; returns the median, min, max and every time in seconds, and the first call's
    time (``first``: compile + run for a jitted function)."""
    t0 = time.perf_counter()
    sync(fn())
    first = time.perf_counter() - t0
    for _ in range(warmup - 1):
        sync(fn())
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        sync(fn())
        times.append(time.perf_counter() - t0)
    return {"median": float(np.median(times)), "min": float(np.min(times)),
            "max": float(np.max(times)), "first": first, "times": times}


def loglog_slope(x: Iterable[float], y: Iterable[float]) -> tuple[float, float]:
    """Least-squares slope of log y against log x and its standard error."""
    lx, ly = np.log(np.asarray(list(x), float)), np.log(np.asarray(list(y), float))
    p = np.polyfit(lx, ly, 1)
    n = len(lx)
    if n < 3:
        return float(p[0]), float("nan")
    resid = ly - np.polyval(p, lx)
    se = np.sqrt(np.sum(resid**2) / (n - 2) / np.sum((lx - lx.mean()) ** 2))
    return float(p[0]), float(se)


def cpu_load() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (timings on a shared CPU depend on them)."""
    try:
        return list(os.getloadavg())
    except OSError:
        return None


def time_interleaved(fns: Mapping[str, Callable[[], Any]], repeats: int,
                     sync: Callable[[Any], Any] = lambda v: v) -> dict[str, dict[str, Any]]:
    """Time several callables round-robin (each round runs every one once, the order rotating),
    so a shared machine's load drifts affect them alike; one warm-up call each first.

    Returns ``{name: {"median", "min", "max", "first", "times"}}`` in seconds.
    """
    names = list(fns)
    out: dict[str, dict[str, Any]] = {}
    for k in names:
        t0 = time.perf_counter()
        sync(fns[k]())
        out[k] = {"first": time.perf_counter() - t0, "times": []}
    for r in range(repeats):
        for k in names[r % len(names):] + names[:r % len(names)]:
            t0 = time.perf_counter()
            sync(fns[k]())
            out[k]["times"].append(time.perf_counter() - t0)
    for v in out.values():
        v.update(median=float(np.median(v["times"])), min=float(np.min(v["times"])),
                 max=float(np.max(v["times"])))
    return out
