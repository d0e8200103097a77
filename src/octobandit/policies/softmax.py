"""Softmax (Boltzmann) exploration: choose arms with probability ∝ exp(mean / temperature)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from octobandit.errors import InvalidInput
from octobandit.policies.base import ArmStats, FloatArray, Policy, _as_mask, check_number
from octobandit.policies.schedules import SCHEDULES, check_choice, observed_total, schedule


@dataclass(frozen=True, slots=True)
class Softmax(Policy):
    """Boltzmann exploration: ``P(i) = exp(μ̂_i / τ) / Σ_j exp(μ̂_j / τ)`` over the enabled arms.

    ``μ̂_i`` is arm ``i``'s empirical mean (``initial_value`` before its first
    reward) and ``τ`` the temperature, in reward units: a small ``τ`` is nearly
    greedy, a large one nearly uniform. The probabilities are computed in closed
    form (shifted by the largest mean, so no overflow), and the propensity is
    exact.

    The temperature may be annealed with ``t``, the number of observed rewards
    over the enabled arms: ``τ(t) = max(min_temperature, temperature · g(rate · t))``
    with ``anneal`` one of ``"none"`` (default, ``τ = temperature``),
    ``"exponential"`` (``g = exp(-x)``), ``"inverse"`` (``1 / (1 + x)``),
    ``"linear"`` (``1 - x``) or ``"log"`` (``1 / ln(e + x)``). Cesa-Bianchi et al.
    (2017) show that a monotone schedule cannot guarantee logarithmic regret on
    every instance; softmax is a smooth randomised baseline (Kuleshov & Precup 2014).

    References: Sutton & Barto, *Reinforcement Learning: An Introduction* (2018), §2.8
    (soft-max action preferences); Cesa-Bianchi, Gentile, Lugosi & Neu, "Boltzmann
    exploration done right", NeurIPS 2017; Kuleshov & Precup, "Algorithms for
    multi-armed bandit problems", arXiv:1402.6028 (2014).

    >>> p = Softmax(temperature=0.1)
    >>> stats = ArmStats.of(n=[10, 10, 10], s=[2, 3, 4])
    >>> p.probabilities(stats).round(4).tolist()  # ∝ (e^2, e^3, e^4)
    [0.09, 0.2447, 0.6652]
    >>> a = Softmax(temperature=0.5, anneal="inverse", rate=0.1)
    >>> float(a.temperature_at(30))  # 0.5 / (1 + 0.1 · 30)
    0.125
    """

    type = "softmax"

    temperature: float = 0.1
    initial_value: float = 0.0
    anneal: str = "none"
    rate: float = 0.001
    min_temperature: float = 0.001
    reward: str = "binary"

    def __post_init__(self) -> None:
        tau = check_number(self.temperature, "policy.temperature", low=0.0, low_open=True)
        object.__setattr__(self, "temperature", tau)
        object.__setattr__(
            self, "initial_value", check_number(self.initial_value, "policy.initial_value")
        )
        object.__setattr__(self, "anneal", check_choice(self.anneal, "policy.anneal", SCHEDULES))
        object.__setattr__(self, "rate", check_number(self.rate, "policy.rate", low=0.0))
        low = check_number(self.min_temperature, "policy.min_temperature", low=0.0, low_open=True)
        if low > tau:
            raise InvalidInput(f"must be <= temperature ({tau})", field="policy.min_temperature")
        object.__setattr__(self, "min_temperature", low)

    def temperature_at(self, t: ArrayLike) -> FloatArray:
        """The temperature after ``t`` observed rewards (any shape)."""
        return schedule(self.anneal, self.temperature, self.rate, self.min_temperature, t)

    def point_estimates(self, stats: ArmStats) -> FloatArray:
        return stats.means(self.initial_value)

    def probabilities(self, stats: ArmStats, enabled: Any = None) -> FloatArray:
        mask = _as_mask(enabled, stats.k)
        values = np.where(mask, self.point_estimates(stats), -np.inf)
        if self.anneal == "none":
            tau: Any = self.temperature
        else:
            tau = self.temperature_at(observed_total(stats, mask))
        z = (values - values.max(axis=-1, keepdims=True)) / tau
        w = np.exp(z)  # exactly 0 for disabled arms, 1 for the best
        return np.asarray(w / w.sum(axis=-1, keepdims=True), dtype=np.float64)
