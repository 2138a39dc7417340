"""Reports of a conformance run: a terminal summary, ``report.json``, ``report.md`` and a PNG.

``report.json`` holds the run's metadata (backends present with their description, backends
absent with the reason, tier, device, durations) and, under ``"cases"``, one entry per case with
the case's fields and the list of its check results. ``report.md`` is the same for people, and
``report.png`` plots the worst error per backend and dtype against the tolerances, and the
certified rate and gain against the configured bounds. (:func:`~.suite.run_suite` also appends
every case's results to ``results.jsonl`` as the run goes.)
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from .cases import Case
from .runner import FAILING, CheckResult, KnownDifference, summarize

#: checks that compare values (plotted as errors), and bound checks (plotted as slacks).
VALUE_CHECKS = ("explicit", "step", "rollout", "forward", "grad_fd", "grad_cross", "golden")
BOUND_CHECKS = ("certificate", "contraction", "gain_random", "dissipation", "gain_adversarial")


def _fmt(x: float | None) -> str:
    if x is None:
        return "-"
    if isinstance(x, str):
        return x
    if not math.isfinite(x):
        return str(x)
    return f"{x:.2e}"


def build(results: list[CheckResult], cases: list[Case], meta: dict[str, Any],
          known: tuple[KnownDifference, ...] = ()) -> dict[str, Any]:
    """The JSON-able report of a run."""
    by_case: dict[str, list[dict]] = defaultdict(list)
    for r in results:
        by_case[r.case].append(r.to_dict())
    summary = summarize(results)
    worst = {b: {d: {c: _json_float(v) for c, v in checks.items()} for d, checks in dt.items()}
             for b, dt in summary["worst"].items()}
    return {
        **meta,
        "summary": {"counts": summary["counts"], "failed": summary["failed"],
                    "n_cases": len(cases), "worst": worst},
        "known_differences": [k.__dict__ for k in known],
        "cases": [{**c.to_dict(), "results": by_case.get(c.id, [])} for c in cases],
    }


def _json_float(v: float) -> float | str:
    return v if math.isfinite(v) else str(v)


def summary_table(results: list[CheckResult]) -> str:
    """A plain-text table: per backend and dtype, counts and the worst error of each check group."""
    rows = defaultdict(lambda: defaultdict(int))
    worst = defaultdict(lambda: defaultdict(lambda: -math.inf))
    cases = defaultdict(set)
    for r in results:
        key = (r.backend, r.dtype)
        rows[key][r.status] += 1
        cases[key].add(r.case)
        if r.error is not None and r.status != "skip":
            group = ("values" if r.check in ("explicit", "step", "rollout", "forward", "golden")
                     else "grads" if r.check.startswith("grad") else "bounds")
            worst[key][group] = max(worst[key][group], r.error)
    head = (f"{'backend':8} {'dtype':8} {'cases':>5} {'pass':>5} {'fail':>5} {'xfail':>5} "
            f"{'skip':>5} {'worst value err':>15} {'worst grad err':>15} {'worst bound slack':>17}")
    lines = [head, "-" * len(head)]
    for key in sorted(rows):
        c = rows[key]
        fails = c["fail"] + c["error"] + c["xpass"]
        w = worst[key]
        lines.append(
            f"{key[0]:8} {key[1]:8} {len(cases[key]):5d} {c['pass']:5d} {fails:5d} {c['xfail']:5d} "
            f"{c['skip']:5d} {_fmt(w.get('values')):>15} {_fmt(w.get('grads')):>15} "
            f"{_fmt(w.get('bounds')):>17}")
    return "\n".join(lines + ["", *SUMMARY_LEGEND])


#: printed under the summary table: what its columns mean.
SUMMARY_LEGEND = (
    "columns: fail counts failures, errors and listed known differences that did not occur; "
    "xfail: listed known differences that occurred.",
    "worst value err / worst grad err: largest max|a - ref| / max(1, max|ref|) against the float64 "
    "NumPy reference (gradients: against central differences or the other framework); must stay "
    "below the dtype's tolerance.",
    "worst bound slack: largest (measured or certified value) / bound - 1 over the bound checks "
    "(rate vs abar, gain vs gamma, supply >= 0). Negative is good: -0.3 means 30 % below the "
    "bound; a value above the tolerance (1e-9 float64, 1e-5 float32) fails.",
)


def failures_text(results: list[CheckResult], limit: int = 40) -> str:
    bad = [r for r in results if r.status in FAILING]
    lines = [f"  {r.status.upper():5} {r.backend:6} {r.check:16} {r.case}: error={_fmt(r.error)} "
             f"tol={_fmt(r.tol)} {r.detail}" for r in bad[:limit]]
    if len(bad) > limit:
        lines.append(f"  ... and {len(bad) - limit} more (see report.json)")
    return "\n".join(lines)


def markdown(report: dict[str, Any], results: list[CheckResult]) -> str:
    s = report["summary"]
    out = [f"# r2dn conformance report ({report.get('tier', '?')} tier)", ""]
    out.append(f"- r2dn {report.get('r2dn_version', '?')}, {report.get('machine', '')}")
    out.append(f"- device: `{report.get('device', 'cpu')}`; {s['n_cases']} cases; "
               f"{report.get('duration_s', 0):.1f} s")
    verdict = "PASSED" if s["failed"] == 0 else f"FAILED ({s['failed']} failing checks)"
    out.append(f"- result: **{verdict}**; counts: "
               + ", ".join(f"{k} {v}" for k, v in sorted(s["counts"].items())))
    out += ["", "## Backends", "", "| backend | status |", "| --- | --- |"]
    for name, desc in report.get("backends", {}).items():
        out.append(f"| {name} | {desc} |")
    for name, why in report.get("absent", {}).items():
        out.append(f"| {name} | **absent**: {why} |")
    out += ["", "## Summary", "", "```", summary_table(results), "```", ""]
    out += ["## Worst error per backend, dtype and check", "",
            "| backend | dtype | check | worst | tolerance |", "| --- | --- | --- | --- | --- |"]
    tols = {}
    for r in results:
        if r.tol is not None:
            tols[(r.dtype, r.check)] = r.tol
    for b, dts in s["worst"].items():
        for d, checks in dts.items():
            for c, v in sorted(checks.items()):
                out.append(f"| {b} | {d} | {c} | {_fmt(v)} | {_fmt(tols.get((d, c)))} |")
    bad = [r for r in results if r.status in FAILING]
    out += ["", f"## Failures ({len(bad)})", ""]
    out += [f"- `{r.case}` **{r.backend}** {r.check} ({r.status}): error {_fmt(r.error)}, "
            f"tolerance {_fmt(r.tol)}. {r.detail}" for r in bad] or ["none"]
    xf = [r for r in results if r.status == "xfail"]
    out += ["", f"## Known differences that occurred ({len(xf)})", ""]
    out += [f"- `{r.case}` {r.backend} {r.check}: {r.detail}" for r in xf] or ["none"]
    skips = defaultdict(int)
    for r in results:
        if r.status == "skip":
            skips[(r.backend, r.check, r.detail)] += 1
    out += ["", "## Skipped checks", ""]
    out += [f"- {b} {c} (x{n}): {d}" for (b, c, d), n in sorted(skips.items())] or ["none"]
    out += ["", "## Cases", "", "| case | " + " | ".join(report.get("backends", {})) + " |",
            "| --- |" + " --- |" * len(report.get("backends", {}))]
    for c in report["cases"]:
        cells = []
        for b in report.get("backends", {}):
            rs = [r for r in c["results"] if r["backend"] == b]
            n_bad = sum(r["status"] in FAILING for r in rs)
            n_ok = sum(r["status"] == "pass" for r in rs)
            cells.append(f"{n_ok} ok" + (f", **{n_bad} failing**" if n_bad else "")
                         + (" (skipped)" if rs and all(r["status"] == "skip" for r in rs) else ""))
        out.append(f"| `{c['id']}` | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def plot(results: list[CheckResult], path: Path) -> Path | None:
    """Worst error per backend and dtype (log scale, with tolerances), and certified vs bounds."""
    try:
        import matplotlib
        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(16, 5.6))
    groups = sorted({(r.backend, r.dtype) for r in results if r.error is not None})
    checks = [c for c in VALUE_CHECKS if any(r.check == c and r.error is not None for r in results)]
    width = 0.8 / max(1, len(groups))
    for gi, (b, d) in enumerate(groups):
        ys = []
        for c in checks:
            errs = [r.error for r in results if r.backend == b and r.dtype == d and r.check == c
                    and r.error is not None and r.status != "skip"]
            v = max(errs) if errs else math.nan
            ys.append(v if math.isfinite(v) else (1e2 if errs else math.nan))
        xs = [i + (gi - (len(groups) - 1) / 2) * width for i in range(len(checks))]
        # an error of exactly zero has no place on a log axis: no bar, a "0" at the bottom
        heights = [y if y > 0 else math.nan for y in ys]
        bars = ax1.bar(xs, heights, width=width, label=f"{b} {d}",
                       hatch="//" if d == "float32" else None)
        for x, y in zip(xs, ys):
            if y == 0:
                ax1.annotate("0", (x, 0), xycoords=("data", "axes fraction"), ha="center",
                             va="bottom", fontsize=7, color=bars.patches[0].get_facecolor())
    for d, style in (("float64", ":"), ("float32", "--")):
        for i, c in enumerate(checks):
            tol = next((r.tol for r in results if r.dtype == d and r.check == c and r.tol), None)
            if tol:
                ax1.hlines(tol, i - 0.45, i + 0.45, colors="k", linestyles=style, linewidth=1)
    ax1.set_yscale("log")
    ax1.set_xticks(range(len(checks)), checks, rotation=20)
    ax1.set_ylabel("worst relative error (vs float64 NumPy reference)")
    ax1.set_title("Worst error per backend and dtype\n(lines: tolerances, float64 dotted, float32 "
                  "dashed; 0: exactly zero)", fontsize=10)
    ax1.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    names = list(dict.fromkeys(r.backend for r in results))
    markers = dict(zip(names, "os^Dv<>ph"))
    kinds = {"certified rate": "C0", "certified gain": "C1", "random-pair gain": "C2",
             "adversarial gain": "C3"}
    for r in results:
        m = markers.get(r.backend, "x")
        points = []
        if r.check == "certificate" and r.values:
            rate = r.values.get("rate")
            if isinstance(rate, float) and math.isfinite(rate):
                points.append((r.values["abar"], rate, "certified rate"))
            if "gamma_bound" in r.values and math.isfinite(r.values.get("gamma", math.inf)):
                points.append((r.values["gamma_bound"], r.values["gamma"], "certified gain"))
        elif r.check in ("gain_adversarial", "gain_random") and "bound" in r.values:
            kind = "random-pair gain" if r.check == "gain_random" else "adversarial gain"
            points.append((r.values["bound"], r.values["gain"], kind))
        for x, y, kind in points:
            ax2.scatter(x, y, marker=m, s=36, facecolors="none", edgecolors=kinds[kind],
                        linewidths=1.2)
    from matplotlib.lines import Line2D
    handles = [Line2D([], [], ls="", marker="o", mfc="none", mec=c, label=k) for k, c in kinds.items()]
    handles += [Line2D([], [], ls="", marker=mk, color="0.3", mfc="none", label=b)
                for b, mk in markers.items() if any(r.backend == b for r in results)]
    ax2.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    lim = [0.1, 20]
    ax2.plot(lim, lim, "k--", linewidth=1)
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    ax2.set_xlabel("configured bound (abar, gamma)")
    ax2.set_ylabel("certified / measured value")
    ax2.set_title("Certified and measured values against their bound\n(on or below the dashed "
                  "line: the bound holds)", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write(report: dict[str, Any], results: list[CheckResult], directory: Path) -> list[Path]:
    """Write report.json, report.md and report.png into ``directory``; the paths written."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / "report.json", directory / "report.md"]
    paths[0].write_text(json.dumps(report, indent=1, default=str))
    paths[1].write_text(markdown(report, results))
    png = plot(results, directory / "report.png")
    if png is not None:
        paths.append(png)
    return paths
