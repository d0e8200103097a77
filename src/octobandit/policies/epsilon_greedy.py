"""Epsilon-greedy: exploit the best empirical mean, explore uniformly with probability ε."""

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
class EpsilonGreedy(Policy):
    """With probability ``epsilon`` a uniformly random enabled arm, otherwise the best mean.

    Arms with no observed reward are valued at ``initial_value``. Ties for the
    best mean are broken uniformly at random, so the propensity is exact:
    ``(1 - ε) / |ties| + ε / K`` for a tied best arm and ``ε / K`` for the others.

    >>> import numpy as np
    >>> p = EpsilonGreedy(epsilon=0.1)
    >>> stats = ArmStats.of(n=[10, 10, 10], s=[1, 5, 2])
    >>> p.probabilities(stats).round(4).tolist()
    [0.0333, 0.9333, 0.0333]
    >>> c = p.choose(stats, np.random.default_rng(0), size=4)
    >>> c.arms.shape, float(c.propensities.max())
    ((4,), 0.9333333333333333)
    """

    type = "epsilon_greedy"

    epsilon: float = 0.1
    initial_value: float = 0.0
    reward: str = "binary"

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "epsilon", check_number(self.epsilon, "policy.epsilon", low=0.0, high=1.0)
        )
        object.__setattr__(
            self, "initial_value", check_number(self.initial_value, "policy.initial_value")
        )

    def point_estimates(self, stats: ArmStats) -> FloatArray:
        return stats.means(self.initial_value)

    def probabilities(self, stats: ArmStats, enabled: Any = None) -> FloatArray:
        mask = _as_mask(enabled, stats.k)
        greedy = ties_probabilities(self.point_estimates(stats), mask)
        explore = mask / mask.sum(axis=-1, keepdims=True)
        return np.asarray((1.0 - self.epsilon) * greedy + self.epsilon * explore, dtype=np.float64)
