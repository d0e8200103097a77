"""Epsilon-greedy: exploit the best empirical mean, explore uniformly with probability ε.

ε may decay with the number ``t`` of observed rewards (over the enabled arms),
so the policy stays a pure function of the statistics.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from octobandit.errors import InvalidInput
from octobandit.policies.base import (
    ArmStats,
    FloatArray,
    Policy,
    _as_mask,
    check_number,
    ties_probabilities,
)
from octobandit.policies.schedules import check_choice, observed_total, schedule

#: Decay schedules of ε: ``ε(t) = max(floor, epsilon · g(rate · t))``.
DECAYS = ("none", "exponential", "inverse", "linear")


@dataclass(frozen=True, slots=True)
class EpsilonGreedy(Policy):
    """With probability ε a uniformly random enabled arm, otherwise the best mean.

    Arms with no observed reward are valued at ``initial_value``. Ties for the
    best mean are broken uniformly at random, so the propensity is exact:
    ``(1 - ε) / |ties| + ε / K`` for a tied best arm and ``ε / K`` for the others
    (``K`` enabled arms).

    ε may decay with ``t``, the number of observed rewards over the enabled
    arms (``decay``; ``rate`` per observed reward, never below ``floor``):

    * ``"none"`` (default): ``ε(t) = epsilon``;
    * ``"exponential"``: ``ε(t) = max(floor, epsilon · exp(-rate · t))``;
    * ``"inverse"``: ``ε(t) = max(floor, epsilon / (1 + rate · t))`` — with
      ``epsilon = 1`` and ``rate = d² / (c·K)``, ε decreases like ``cK / (d² t)`` for
      large ``t``, as in the ε_n-greedy of Auer, Cesa-Bianchi & Fischer (2002);
    * ``"linear"``: ``ε(t) = max(floor, epsilon · (1 - rate · t))`` (reaches the
      floor after ``(1 - floor/epsilon) / rate`` rewards).

    Reference: Sutton & Barto, *Reinforcement Learning: An Introduction* (2018), §2.2–2.3;
    Auer, Cesa-Bianchi & Fischer, "Finite-time analysis of the multiarmed bandit
    problem", Machine Learning 47 (2002).

    >>> import numpy as np
    >>> p = EpsilonGreedy(epsilon=0.1)
    >>> stats = ArmStats.of(n=[10, 10, 10], s=[1, 5, 2])
    >>> p.probabilities(stats).round(4).tolist()
    [0.0333, 0.9333, 0.0333]
    >>> c = p.choose(stats, np.random.default_rng(0), size=4)
    >>> c.arms.shape, float(c.propensities.max())
    ((4,), 0.9333333333333333)
    >>> d = EpsilonGreedy(epsilon=0.3, decay="inverse", rate=0.1)
    >>> float(d.epsilon_at(30))  # 0.3 / (1 + 0.1 · 30)
    0.075
    >>> d.probabilities(stats).round(4).tolist()
    [0.025, 0.95, 0.025]
    """

    type = "epsilon_greedy"

    epsilon: float = 0.1
    initial_value: float = 0.0
    decay: str = "none"
    rate: float = 0.001
    floor: float = 0.0
    reward: str = "binary"

    def __post_init__(self) -> None:
        eps = check_number(self.epsilon, "policy.epsilon", low=0.0, high=1.0)
        object.__setattr__(self, "epsilon", eps)
        object.__setattr__(
            self, "initial_value", check_number(self.initial_value, "policy.initial_value")
        )
        object.__setattr__(self, "decay", check_choice(self.decay, "policy.decay", DECAYS))
        object.__setattr__(self, "rate", check_number(self.rate, "policy.rate", low=0.0))
        floor = check_number(self.floor, "policy.floor", low=0.0, high=1.0)
        if floor > eps:
            raise InvalidInput(f"must be <= epsilon ({eps})", field="policy.floor")
        object.__setattr__(self, "floor", floor)

    def params(self) -> dict[str, Any]:
        """Parameters as JSON; the schedule's ``rate`` and ``floor`` only when ε decays."""
        out = Policy.params(self)
        if self.decay == "none":
            for name in ("decay", "rate", "floor"):
                out.pop(name)
        return out

    def epsilon_at(self, t: ArrayLike) -> FloatArray:
        """ε after ``t`` observed rewards (any shape)."""
        return schedule(self.decay, self.epsilon, self.rate, self.floor, t)

    def point_estimates(self, stats: ArmStats) -> FloatArray:
        return stats.means(self.initial_value)

    def probabilities(self, stats: ArmStats, enabled: Any = None) -> FloatArray:
        mask = _as_mask(enabled, stats.k)
        greedy = ties_probabilities(self.point_estimates(stats), mask)
        explore = mask / mask.sum(axis=-1, keepdims=True)
        if self.decay == "none":
            eps: Any = self.epsilon
        else:
            eps = self.epsilon_at(observed_total(stats, mask))
        return np.asarray((1.0 - eps) * greedy + eps * explore, dtype=np.float64)
