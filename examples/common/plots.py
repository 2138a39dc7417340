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


def save_figure(fig: Any, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    import matplotlib.pyplot as plt
    plt.close(fig)
