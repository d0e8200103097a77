"""Upper-confidence-bound policies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from octobandit.policies.base import (
    ArmStats,
    FloatArray,
    Policy,
    _as_mask,
    check_number,
    ties_probabilities,
)


@dataclass(frozen=True, slots=True)
class UCB1(Policy):
    """UCB1 (Auer, Cesa-Bianchi & Fischer, 2002): the arm maximising ``mean + c·sqrt(ln N / n)``.

    ``N`` is the number of observed rewards over the enabled arms, ``n`` the arm's.
    An arm with no observed reward has an infinite index, so every arm is tried
    first. The choice is deterministic up to ties (broken uniformly), so its
    propensity is ``1 / |ties|`` (1.0 in general): logs of a deterministic
    policy cannot be evaluated off-policy. ``c = sqrt(2)`` matches rewards in
    [0, 1]; scale it with the reward range for continuous rewards.

    >>> p = UCB1()
    >>> p.probabilities(ArmStats.of(n=[0, 3, 3], s=[0, 1, 2])).tolist()
    [1.0, 0.0, 0.0]
    >>> p.probabilities(ArmStats.of(n=[100, 100, 100], s=[10, 50, 20])).tolist()
    [0.0, 1.0, 0.0]
    >>> p.probabilities(ArmStats.of(n=[100, 100, 5], s=[10, 50, 1])).tolist()  # explore arm 2
    [0.0, 0.0, 1.0]
    """

    type = "ucb1"
    deterministic = True

    c: float = float(np.sqrt(2.0))
    reward: str = "binary"

    def __post_init__(self) -> None:
        object.__setattr__(self, "c", check_number(self.c, "policy.c", low=0.0))

    def indices(self, stats: ArmStats, enabled: Any = None) -> FloatArray:
        mask = _as_mask(enabled, stats.k)
        n = np.where(mask, stats.n, 0.0)
        total = n.sum(axis=-1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            bonus = self.c * np.sqrt(np.log(np.maximum(total, 1.0)) / n)
            idx = np.where(n > 0, stats.s / np.where(n > 0, n, 1.0) + bonus, np.inf)
        return np.asarray(idx, dtype=np.float64)

    def probabilities(self, stats: ArmStats, enabled: Any = None) -> FloatArray:
        mask = _as_mask(enabled, stats.k)
        return ties_probabilities(self.indices(stats, mask), mask)
