"""Learning-rate schedules of the paper's experiments."""

from __future__ import annotations

import math
from collections.abc import Callable


def step_decay(lr0: float, every: int, factor: float = 0.1,
               floor: float = 0.0) -> Callable[[int], float]:
    """``lr(epoch) = max(lr0 * factor ** (epoch // every), floor)`` (optax.exponential_decay,
    staircase, ``end_value=floor``, as the paper's code)."""
    return lambda epoch: max(lr0 * factor ** (epoch // every), floor)


class ReduceOnPlateau:
    """Learning-rate scale cut by ``factor`` when the epoch loss has not improved for ``patience``
    epochs; never below ``min_scale`` (optax.contrib.reduce_on_plateau with rtol = 1e-4, atol = 0,
    cooldown = 0, as the paper's PDE code uses it)."""

    def __init__(self, factor: float = 0.1, patience: int = 10, min_scale: float = 0.0,
                 rtol: float = 1e-4) -> None:
        self.factor, self.patience, self.min_scale, self.rtol = factor, patience, min_scale, rtol
        self.scale, self.best, self.bad = 1.0, math.inf, 0

    def update(self, value: float) -> float:
        if value < (1 - self.rtol) * self.best:
            self.best, self.bad = value, 0
        else:
            self.bad += 1
            if self.bad >= self.patience:
                self.scale, self.bad = max(self.scale * self.factor, self.min_scale), 0
        return self.scale
