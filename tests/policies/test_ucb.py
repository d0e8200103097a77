"""UCB1: its index in closed form, its deterministic choice, and Auer et al.'s regret bound."""

from __future__ import annotations

import math

import numpy as np
import pytest

from octobandit.policies import UCB1, ArmStats


def test_index_matches_the_closed_form() -> None:
    stats = ArmStats.of(n=[10, 40, 50], s=[5, 30, 20])
    idx = UCB1(c=math.sqrt(2)).indices(stats)
    total = 100
    expected = [
        s / n + math.sqrt(2 * math.log(total) / n) for n, s in ((10, 5), (40, 30), (50, 20))
    ]
    assert idx == pytest.approx(expected, rel=1e-12)


def test_untried_arms_first_then_deterministic() -> None:
    rng = np.random.default_rng(0)
    p = UCB1()
    c = p.choose(ArmStats.of(n=[3, 0, 0], s=[3, 0, 0]), rng, size=10_000)
    assert set(c.arms.tolist()) == {1, 2}
    assert np.allclose(c.propensities, 0.5)  # a tie between the two untried arms
    c = p.choose(ArmStats.of(n=[30, 30, 30], s=[3, 20, 10]), rng, size=100)
    assert (c.arms == 1).all() and (c.propensities == 1.0).all()


def test_disabled_arm_with_infinite_index_is_skipped() -> None:
    c = UCB1().choose(
        ArmStats.of(n=[0, 5], s=[0, 1]), np.random.default_rng(0), enabled=[False, True]
    )
    assert c.arms.tolist() == [1]


def test_suboptimal_pulls_respect_the_finite_time_bound() -> None:
    """Auer, Cesa-Bianchi & Fischer (2002), Theorem 1: for each suboptimal arm,
    E[T_i(n)] <= 8 ln n / Δ_i² + 1 + π²/3. Averaged over 200 seeded runs the
    mean count stays below it (the bound is loose, so this is a safe check that
    would still catch an index that explores too much, e.g. a wrong constant)."""
    rng = np.random.default_rng(42)
    means = np.array([0.3, 0.5, 0.7])
    runs, horizon = 200, 3000
    policy = UCB1()
    stats = ArmStats.zeros(3, (runs,))
    pulls = np.zeros((runs, 3))
    rows = np.arange(runs)
    for _ in range(horizon):
        arms = policy.choose(stats, rng).arms
        rewards = (rng.random(runs) < means[arms]).astype(float)
        stats.n[rows, arms] += 1
        stats.s[rows, arms] += rewards
        stats.ss[rows, arms] += rewards
        pulls[rows, arms] += 1
    for i in (0, 1):
        gap = means[2] - means[i]
        bound = 8 * math.log(horizon) / gap**2 + 1 + math.pi**2 / 3
        assert pulls[:, i].mean() <= bound
    # and UCB1 does concentrate on the best arm
    assert pulls[:, 2].mean() / horizon > 0.8
