"""UCB-Tuned: UCB1 with the exploration bonus scaled by each arm's empirical variance."""

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
class UCBTuned(Policy):
    """UCB-Tuned (Auer, Cesa-Bianchi & Fischer, 2002, §4): the arm maximising

    ``μ̂ + sqrt(ln N / n · min(max_variance, V))``, with
    ``V = m2 / n + sqrt(2 ln N / n)``

    an upper confidence bound on the arm's variance (its empirical variance, from
    the centred sum of squares :attr:`ArmStats.m2`, plus a margin). ``N`` counts the
    observed rewards over the enabled arms, ``n`` the arm's. ``max_variance = 1/4`` is the
    largest variance of a reward in [0, 1] (the paper's constant); for other
    bounded rewards use ``(range)² / 4`` — the margin term assumes rewards in
    [0, 1], so rescaling rewards there is the safer choice.

    An arm with no observed reward has an infinite index, so every arm is tried
    first. The choice is deterministic up to ties, broken uniformly: the
    propensity is ``1 / |ties|`` (1.0 in general), and logs of this policy cannot
    be evaluated off-policy.

    Reference: Auer, Cesa-Bianchi & Fischer, "Finite-time analysis of the
    multiarmed bandit problem", Machine Learning 47 (2002), 235–256.

    >>> p = UCBTuned()
    >>> p.probabilities(ArmStats.of(n=[0, 3, 3], s=[0, 1, 2])).tolist()
    [1.0, 0.0, 0.0]
    >>> idx = p.indices(ArmStats.of(n=[100, 100], s=[50, 60]))
    >>> idx.round(4).tolist()  # 0/1 rewards: V = μ̂(1-μ̂) + sqrt(2 ln 200 / 100) > 1/4
    [0.6151, 0.7151]
    """

    type = "ucb_tuned"
    deterministic = True

    max_variance: float = 0.25
    reward: str = "binary"

    def __post_init__(self) -> None:
        object.__setattr__(
            self,
            "max_variance",
            check_number(self.max_variance, "policy.max_variance", low=0.0, low_open=True),
        )

    def indices(self, stats: ArmStats, enabled: Any = None) -> FloatArray:
        mask = _as_mask(enabled, stats.k)
        n = np.where(mask, stats.n, 0.0)
        log_total = np.log(np.maximum(n.sum(axis=-1, keepdims=True), 1.0))
        seen = n > 0
        n1 = np.where(seen, n, 1.0)
        mean = stats.s / n1
        var = stats.m2 / n1 + np.sqrt(2.0 * log_total / n1)
        bonus = np.sqrt(log_total / n1 * np.minimum(self.max_variance, var))
        return np.asarray(np.where(seen, mean + bonus, np.inf), dtype=np.float64)

    def probabilities(self, stats: ArmStats, enabled: Any = None) -> FloatArray:
        mask = _as_mask(enabled, stats.k)
        return ties_probabilities(self.indices(stats, mask), mask)
