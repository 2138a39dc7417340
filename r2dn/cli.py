"""The ``r2dn`` command line: one argparse subcommand per task.

Each subcommand is a pair of functions: ``_add_<name>(subparsers)`` declares its arguments and
``cmd_<name>(args) -> int`` runs it and returns the exit code. Adding a subcommand (``convert``,
``certify``, ...) means writing that pair and listing ``_add_<name>`` in :data:`SUBCOMMANDS`.
Nothing here imports a framework at import time; each command imports what it needs.

Subcommands:

``r2dn conformance [--quick] [--backends numpy,torch,jax,julia] [--report DIR] [--device cuda]``
    Run the cross-backend conformance suite (:mod:`r2dn.conformance`): prints which backends are
    absent and why, a summary table and the failures; exit status 1 on any failing check.
``r2dn convert IN OUT [--to torch|jax|numpy] [--dtype float32|float64]``
    An r2dn checkpoint or a RobustNeuralNetworks.jl BSON file to an r2dn checkpoint, checked in a
    backend (:mod:`r2dn.porting`).
``r2dn certify IN [--json]``
    Print a stored model's certificate (as JSON with ``--json``); exit status 1 if it is not
    certified.

Exit status: 0 success; 1 a failed certificate or check, or a file that cannot be read as a
model; 2 a usage error (bad arguments, a missing file). A user error is one line on standard
error, ``r2dn <command>: <message>``, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import math
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
                   help="comma-separated subset of the registered backends and julia "
                        "(default: all)")
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
    known = cb.known_names()
    names = args.backends or known
    unknown = [n for n in names if n not in known]
    if unknown:
        print(f"r2dn conformance: unknown backend(s) {', '.join(unknown)}; choose from "
              f"{', '.join(known)}.", file=sys.stderr)
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


# -- convert -------------------------------------------------------------------------------------

def _add_convert(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert", help="convert a checkpoint or a RobustNeuralNetworks.jl BSON file",
        description="Read IN (an r2dn safetensors checkpoint, or a BSON.jl file saved by "
                    "RobustNeuralNetworks.jl, detected by content), load it into the backend "
                    "--to, check that one step runs and is finite, and write OUT as an r2dn "
                    "checkpoint that every backend loads.")
    p.add_argument("src", metavar="IN")
    p.add_argument("dst", metavar="OUT")
    from r2dn import backends
    p.add_argument("--to", choices=backends.names(), default="numpy",
                   help="backend that loads and checks the model (default: numpy)")
    p.add_argument("--dtype", choices=("float32", "float64"), default=None,
                   help="re-type the parameters (default: keep them)")
    p.add_argument("--key", default="model", help="top-level key of the model in a BSON file")
    p.set_defaults(func=cmd_convert)


def _fail(command: str, err: BaseException) -> int:
    """Print ``r2dn <command>: <err>`` and return the exit status: 2 for a missing file, else 1."""
    print(f"r2dn {command}: {err}", file=sys.stderr)
    return 2 if isinstance(err, (FileNotFoundError, IsADirectoryError)) else 1


def cmd_convert(args: argparse.Namespace) -> int:
    """``r2dn convert``: 0 on success, 1 for a bad or unsupported file, 2 for a missing one."""
    from r2dn.porting import convert_file
    if args.to == "jax":      # this process is ours: JAX may hold the float64 a file or --dtype asks
        import jax
        jax.config.update("jax_enable_x64", True)

    try:
        model, path = convert_file(args.src, args.dst, backend=args.to, key=args.key,
                                   dtype=args.dtype)
    except (OSError, ValueError, TypeError) as err:
        return _fail("convert", err)
    print(f"r2dn convert: {args.src} -> {path}: {model!r} checked in {args.to}")
    return 0


# -- certify -------------------------------------------------------------------------------------

def _add_certify(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("certify", help="certify a stored model (dissipation matrix, rate, gain)",
                       description="Load a checkpoint or BSON file in NumPy and print its "
                                   "certificate (docs/math/certificates.md); exit status 1 if "
                                   "not certified.")
    p.add_argument("src", metavar="IN")
    p.add_argument("--key", default="model", help="top-level key of the model in a BSON file")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.set_defaults(func=cmd_certify)


#: one line per field of the certify report: what it means.
CERTIFY_LEGEND = {
    "certified": "the dissipation matrix is positive definite (and every Sandwich layer of an "
                 "LBDN or R2DN is 1-Lipschitz to within rounding)",
    "min_eig": "smallest eigenvalue of the dissipation matrix (> 0: certified)",
    "scale": "largest |eigenvalue| of the dissipation matrix",
    "relative_margin": "min_eig / scale: compare with the dtype's rounding (float32 ~1e-7)",
    "rate": "certified contraction rate (<= abar); inf: not contracting; nan: feed-forward",
    "gamma": "certified incremental gain ||dy|| <= gamma ||du|| (None: not a gain model)",
    "network_min_eig": "min over Sandwich layers of lambda_min(I - A A^T - B B^T): zero in exact "
                       "arithmetic, so a tiny negative value (~ -1e-16) is rounding, not a failure",
}


def _json_value(v: object) -> object:
    return v if not isinstance(v, float) or math.isfinite(v) else str(v)


def cmd_certify(args: argparse.Namespace) -> int:
    """``r2dn certify``: print the report; 1 if not certified or the file is bad, 2 if missing."""
    import r2dn
    from r2dn.porting import load_any

    try:
        model = load_any(args.src, "numpy", key=args.key)
        rep = r2dn.certify(model)
    except (OSError, ValueError, TypeError) as err:
        return _fail("certify", err)
    fields = {f: getattr(rep, f) for f in CERTIFY_LEGEND}
    if args.json:
        print(json.dumps({"file": str(args.src), "model": rep.model,
                          **{k: _json_value(v) for k, v in fields.items()}}))
    else:
        print(f"{model!r}")
        for name, value in fields.items():
            print(f"  {name:16} {value!s:24} {CERTIFY_LEGEND[name]}")
    return 0 if rep.certified else 1


#: the subcommands, in help order (each adds its parser and sets ``func``).
SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    _add_conformance, _add_convert, _add_certify]


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
