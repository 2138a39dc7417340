"""Matplotlib figures written to PNG files without a display."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plt_figure(*args: Any, **kw: Any):
    """A Matplotlib figure on the non-interactive Agg canvas (no display needed)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt.subplots(*args, **kw)


def integer_ticks(ax: Any) -> None:
    """Whole-number ticks on the x axis (epochs)."""
    from matplotlib.ticker import MaxNLocator
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def save_figure(fig: Any, path: Path, args: Any = None) -> None:
    """Write ``fig`` to ``path``; a ``--quick`` run's figure is titled as a smoke run."""
    if getattr(args, "quick", False):
        title = fig.get_suptitle() if hasattr(fig, "get_suptitle") else ""
        fig.suptitle("SMOKE RUN (--quick): tiny data, model and epochs - not a result"
                     + (f"\n{title}" if title else ""), color="tab:red", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    import matplotlib.pyplot as plt
    plt.close(fig)
