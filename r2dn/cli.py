"""The ``r2dn`` command line: one argparse subcommand per task.

Each subcommand is a pair of functions: ``_add_<name>(subparsers)`` declares its arguments and
``cmd_<name>(args) -> int`` runs it and returns the exit code. Adding a subcommand (``convert``,
``certify``, ...) means writing that pair and listing ``_add_<name>`` in :data:`SUBCOMMANDS`.
Nothing here imports a framework at import time; each command imports what it needs.

Subcommands:

``r2dn conformance [--quick] [--backends numpy,torch,jax,julia] [--report DIR] [--device cuda]``
    Run the cross-backend conformance suite (:mod:`r2dn.conformance`): prints which backends are
    absent and why, a summary table and the failures; exit status 1 on any failing check.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence


def _csv(text: str) -> tuple[str, ...]:
    items = tuple(s.strip() for s in text.split(",") if s.strip())
    if not items:
        raise argparse.ArgumentTypeError("expected a comma-separated list, e.g. numpy,torch")
    return items


# -- conformance ---------------------------------------------------------------------------------

def _add_conformance(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "conformance", help="run the cross-backend conformance suite",
        description="Run the conformance case matrix on the installed backends against the "
                    "float64 NumPy reference and the golden fixtures. Exit status 1 if any check "
                    "fails (including a listed known difference that did not occur).")
    tier = p.add_mutually_exclusive_group()
    tier.add_argument("--quick", action="store_true", help="the quick (CI) tier")
    tier.add_argument("--full", action="store_true", help="the full tier (default)")
    p.add_argument("--backends", type=_csv, default=None, metavar="LIST",
                   help="comma-separated subset of numpy,torch,jax,julia (default: all)")
    p.add_argument("--device", default="cpu",
                   help="device for torch (.to(device)) and JAX (jax.device_put): cpu, cuda, "
                        "cuda:1, ... (default: cpu)")
    p.add_argument("--report", type=str, default=None, metavar="DIR",
                   help="write DIR/report.json, DIR/report.md and DIR/report.png")
    p.add_argument("--cases", default=None, metavar="GLOB",
                   help="only cases whose id matches (comma-separated globs or substrings)")
    p.add_argument("--list", action="store_true", help="list the tier's case ids and exit")
    p.add_argument("--jax-compile", choices=("fast", "default"), default=None,
                   help="XLA CPU compile options: 'fast' (no LLVM optimisation; the quick tier's "
                        "default) or 'default' (the full tier's)")
    p.add_argument("--jax-cache", default=None, metavar="DIR",
                   help="JAX persistent compilation cache folder (reruns skip XLA compilation)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_conformance)


def cmd_conformance(args: argparse.Namespace) -> int:
    """``r2dn conformance``: run, print the summary, write the report; 1 on any failure."""
    from r2dn.conformance import backends as cb, report as cr
    from r2dn.conformance.cases import select
    from r2dn.conformance.suite import run_suite

    tier = "quick" if args.quick else "full"
    if args.list:
        for case in select(tier, args.cases):
            print(case.id)
        return 0
    names = args.backends or cb.ALL_BACKENDS
    unknown = [n for n in names if n not in cb.ALL_BACKENDS]
    if unknown:
        print(f"r2dn conformance: unknown backend(s) {', '.join(unknown)}; choose from "
              f"{', '.join(cb.ALL_BACKENDS)}.", file=sys.stderr)
        return 2
    if args.jax_cache and "jax" in names:
        import jax
        jax.config.update("jax_compilation_cache_dir", args.jax_cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    fast = None if args.jax_compile is None else args.jax_compile == "fast"
    outcome = run_suite(tier=tier, backends=names, device=args.device, cases=args.cases,
                        report_dir=args.report, progress=not args.no_progress,
                        jax_fast_compile=fast)
    print(f"r2dn conformance: {tier} tier, {len(outcome.cases)} cases, device {args.device}, "
          f"{outcome.report['duration_s']:.1f} s")
    for name, desc in outcome.report["backends"].items():
        print(f"  backend {name:6}: {desc}")
    for name, why in outcome.absent.items():
        print(f"  backend {name:6}: ABSENT - {why}")
    if not outcome.cases:
        print("  no case matches the filter.")
    print()
    print(cr.summary_table(outcome.results))
    if outcome.failed:
        print(f"\n{outcome.failed} failing check(s):")
        print(cr.failures_text(outcome.results))
    for p in outcome.paths:
        print(f"wrote {p}")
    print("\nFAILED" if outcome.failed else "\nPASSED")
    return 1 if outcome.failed else 0


#: the subcommands, in help order (each adds its parser and sets ``func``).
SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [_add_conformance]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="r2dn", description="r2dn: robust recurrent networks.")
    parser.add_argument("--version", action="version",
                        version=f"%(prog)s {__import__('r2dn').__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``r2dn`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
