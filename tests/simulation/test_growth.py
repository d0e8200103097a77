"""Regret growth: logarithmic for Thompson sampling and UCB1, linear for fixed ε-greedy."""

from __future__ import annotations

import numpy as np
import pytest

from octobandit.policies import make_policy
from octobandit.simulation import Bernoulli, simulate

ENV = Bernoulli([0.7, 0.4, 0.4])
MARKS = (1000, 2000, 4000, 8000)


def increments(kind: str, **params: float) -> tuple[np.ndarray, np.ndarray]:
    """Per replication, the regret added over [1000, 2000] and over [4000, 8000]."""
    res = simulate(
        make_policy({"type": kind, **params}), ENV, horizon=8000, replications=200, seed=31,
        record_every=1000,
    )  # fmt: skip
    at = {int(s): res.regret[j] for j, s in enumerate(res.steps)}
    return at[2000] - at[1000], at[8000] - at[4000]


@pytest.mark.parametrize("kind", ["thompson", "ucb1"])
def test_logarithmic_growth(kind: str) -> None:
    """With R(T) ≈ c·ln T, doubling T adds the same regret wherever we start: the regret
    added over [4000, 8000] equals that over [1000, 2000] (c·ln 2 each); linear growth
    would add 4 times as much. We allow twice as much (finite-time terms), 3 standard
    errors beyond."""
    d1, d3 = increments(kind)
    diff = d3 - 2.0 * d1
    assert diff.mean() + 3 * diff.std(ddof=1) / np.sqrt(diff.size) < 0


def test_fixed_epsilon_greedy_grows_linearly() -> None:
    """Once it exploits the best arm, ε-greedy pays ε·(K−1)/K·Δ per step for ever: over
    [4000, 8000] that is 4000 · 0.2 · 2/3 · 0.3 = 160, four times the [1000, 2000] figure.
    The regret added over [4000, 8000] is within 5 SE of 160 and above twice the early one."""
    d1, d3 = increments("epsilon_greedy", epsilon=0.2)
    expected = 4000 * 0.2 * (2 / 3) * 0.3
    assert abs(d3.mean() - expected) <= 5 * d3.std(ddof=1) / np.sqrt(d3.size)
    diff = d3 - 2.0 * d1
    assert diff.mean() - 3 * diff.std(ddof=1) / np.sqrt(diff.size) > 0
