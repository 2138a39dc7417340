"""The command line every example and benchmark shares."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .adapters import BACKEND_CHOICES
from .results import fmt


def base_parser(description: str, *, default_epochs: int | None, default_out: str,
                models: tuple[str, ...] | None = ("ren", "r2dn"),
                default_backend: str = "jax") -> argparse.ArgumentParser:
    """The options every example script shares."""
    p = argparse.ArgumentParser(description=description,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--backend", choices=BACKEND_CHOICES, default=default_backend,
                   help="framework that runs the models")
    if models is not None:
        p.add_argument("--model", choices=models, default=models[-1],
                       help="contracting REN or contracting R2DN")
    if default_epochs is not None:
        p.add_argument("--epochs", type=int, default=None,
                       help=f"training epochs (paper: {default_epochs}; --quick: a few)")
    p.add_argument("--seed", type=int, default=0, help="seed of the model and of the data")
    p.add_argument("--out", type=Path, default=Path("out") / default_out,
                   help="folder for results.json and the PNG plots")
    p.add_argument("--quick", action="store_true",
                   help="tiny data, model and epochs: a smoke run of a few seconds to minutes (CI)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch intra-op threads (1 is fastest for these small per-step products, "
                        "and the only sane choice on a shared 2-core CPU)")
    p.add_argument("--unroll", type=int, default=None,
                   help="JAX only: time steps per lax.scan iteration in simulate (default: 8 for "
                        "R2DN, 2.4x faster training on CPU; 1 for REN, whose compile time grows "
                        "with unroll x nv)")
    p.add_argument("--no-progress", action="store_true", help="hide the tqdm progress bars")
    return p


def benchmark_parser(description: str, *, default_out: str,
                     repeats_help: str) -> argparse.ArgumentParser:
    """The options both benchmarks share: ``--backend torch|jax|both``, ``--repeats``, ``--seed``,
    ``--out``, ``--quick``, ``--threads`` and ``--no-progress``."""
    p = argparse.ArgumentParser(description=description,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--backend", choices=(*BACKEND_CHOICES, "both"), default="both")
    p.add_argument("--repeats", type=int, default=None, help=repeats_help)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("out") / default_out)
    p.add_argument("--quick", action="store_true", help="tiny sizes (CI)")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    p.add_argument("--no-progress", action="store_true")
    return p


def run_settings(args: argparse.Namespace, paper: dict[str, Any],
                 quick: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(settings of this run, the paper's settings)`` for ``args.model``.

    ``paper`` and ``quick`` are a script's settings tables, whose ``"nv"`` entry maps each model
    to its size; ``--quick`` overrides with ``quick``, ``--epochs`` overrides the epochs.
    """
    def for_model(table: dict[str, Any]) -> dict[str, Any]:
        return {k: (v[args.model] if k == "nv" else v) for k, v in table.items()}

    paper_s = for_model(paper)
    s = {**paper_s, **(for_model(quick) if args.quick else {})}
    if args.epochs is not None:
        s["epochs"] = args.epochs
    return s, paper_s


def progress(iterable: Iterable, args: argparse.Namespace, **kw: Any):
    """A tqdm progress bar (to stderr), unless ``--no-progress`` or ``TQDM_DISABLE`` is set."""
    from tqdm.auto import tqdm
    return tqdm(iterable, disable=args.no_progress or bool(os.environ.get("TQDM_DISABLE")),
                dynamic_ncols=True, **kw)


class EpochProgress:
    """A progress bar over epochs whose ETA leaves out the first epoch.

    The first epoch of a JAX run (and a torch run's first steps) includes compilation, often
    most of its time; an ETA extrapolated from it is wrong by a large factor. The first epoch gets
    a bar without an ETA, the rest a bar that counts from epoch 2 (tqdm's ``initial``).
    """

    def __init__(self, epochs: int, args: argparse.Namespace, desc: str = "epochs") -> None:
        self.epochs, self.args, self.desc, self.bar = epochs, args, desc, None

    def __iter__(self):
        if self.epochs < 1:
            return
        self.bar = progress(range(1), self.args, total=self.epochs,
                            desc=f"{self.desc} (1st includes compilation: no ETA yet)",
                            bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]")
        yield from self.bar
        self.bar.close()
        if self.epochs > 1:
            self.bar = progress(range(1, self.epochs), self.args, desc=self.desc, initial=1,
                                total=self.epochs)
            yield from self.bar

    def set_postfix(self, **values: Any) -> None:
        if self.bar is not None:
            self.bar.set_postfix(**values)


def log_epoch(args: argparse.Namespace, epoch: int, epochs: int, **values: Any) -> None:
    """One line per epoch when the progress bars are off (logs of long runs)."""
    if args.no_progress or os.environ.get("TQDM_DISABLE"):
        items = ", ".join(f"{k} {fmt(v)}" for k, v in values.items())
        print(f"epoch {epoch + 1}/{epochs}: {items}", flush=True)
