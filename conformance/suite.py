"""One call for a whole conformance run: load the backends, run a tier, report.

>>> from r2dn.conformance.suite import run_suite
>>> outcome = run_suite(tier="quick", backends=("numpy",), cases="SandwichLayer-i3o2", progress=False)
>>> outcome.failed, [c.id for c in outcome.cases]
(0, ['SandwichLayer-i3o2-f64'])
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import r2dn

from . import backends as _backends
from . import report as _report
from .cases import Case, select
from .runner import CheckResult, Runner, summarize


@dataclass
class Outcome:
    """What :func:`run_suite` did: the results, the report and where it went."""

    cases: tuple[Case, ...]
    results: list[CheckResult]
    report: dict[str, Any]
    runner: Runner
    paths: list[Path] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return sum(r.failed for r in self.results)

    @property
    def absent(self) -> dict[str, str]:
        return self.runner.absent


def run_suite(*, tier: str = "quick", backends: tuple[str, ...] | list[str] | None = None,
              device: str = "cpu", cases: str | None = None, report_dir: Path | str | None = None,
              progress: bool = True, jax_fast_compile: bool | None = None,
              adapters: dict[str, _backends.Adapter] | None = None,
              stream: Any = None) -> Outcome:
    """Run the ``tier``'s cases (filtered by the glob ``cases``) on ``backends``.

    ``adapters`` replaces the loaded adapters (tests inject a deliberately broken one).
    ``jax_fast_compile`` defaults to True for the quick tier and False for the full one.
    Returns an :class:`Outcome`; nothing is raised for failing checks.
    """
    start = time.perf_counter()
    chosen = select(tier, cases)
    fast = (tier == "quick") if jax_fast_compile is None else jax_fast_compile
    if adapters is None:
        adapters, absent = _backends.load(backends, device=device, jax_fast_compile=fast)
    else:
        absent = {}
    runner = Runner(adapters, absent, tier=tier)
    bar = None
    if progress:
        try:
            from tqdm import tqdm
            bar = tqdm(total=len(chosen), desc=f"conformance ({tier})", unit="case",
                       file=stream or sys.stderr, dynamic_ncols=True)
        except ImportError:
            bar = None
    failing = 0
    partial = None
    if report_dir is not None:
        Path(report_dir).mkdir(parents=True, exist_ok=True)
        partial = Path(report_dir) / "results.jsonl"
        partial.write_text("")

    def tick(case: Case, results: list[CheckResult]) -> None:
        nonlocal failing
        failing += sum(r.failed for r in results)
        if partial is not None:              # survives a crash of a long run
            with partial.open("a") as f:
                for r in results:
                    f.write(json.dumps(r.to_dict()) + "\n")
        if bar is not None:
            bar.set_postfix_str(f"failing={failing} {case.family}")
            bar.update(1)

    results = runner.run(chosen, tick)
    if bar is not None:
        bar.close()
    meta = {
        "format": "r2dn-conformance/1",
        "r2dn_version": r2dn.__version__,
        "tier": tier,
        "device": device,
        "machine": _backends.machine(),
        "backends": {n: a.describe() for n, a in runner.adapters.items()},
        "absent": dict(runner.absent),
        "duration_s": time.perf_counter() - start,
        "backend_seconds": {n: round(t, 3) for n, t in runner.timings.items()},
        "filter": cases,
    }
    rep = _report.build(results, list(chosen), meta, runner.known)
    out = Outcome(chosen, results, rep, runner)
    if report_dir is not None:
        out.paths = _report.write(rep, results, Path(report_dir))
    return out


__all__ = ["Outcome", "run_suite", "summarize"]
