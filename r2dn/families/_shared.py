"""Pieces several families declare: the supply of a gamma-Lipschitz map and of given (Q, S, R)."""

from __future__ import annotations

import numpy as np

from ..config import ModelConfig, lipschitz_supply


def configured_gain(cfg: ModelConfig) -> float:
    """The gain bound a Lipschitz family is built for: ``cfg.gamma``."""
    return cfg.gamma


def gain_supply(cfg: ModelConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(Q, S, R) = (-I/gamma, 0, gamma I) with ``cfg.gamma`` (docs/math/index.md#incremental)."""
    return lipschitz_supply(cfg.gamma, cfg.nu, cfg.ny)


def given_supply(cfg: ModelConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The (Q, S, R) stored in the config (float64 arrays)."""
    return np.array(cfg.Q), np.array(cfg.S), np.array(cfg.R)
