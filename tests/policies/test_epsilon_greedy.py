"""Epsilon-greedy, tested as statistics: rates within binomial bounds, exact propensities."""

from __future__ import annotations

import math

import numpy as np
import pytest

from octobandit.errors import InvalidInput
from octobandit.policies import ArmStats, EpsilonGreedy

Z = 5.0  # a 5-sigma binomial bound: a correct policy fails it with probability < 1e-6


def binomial_bound(p: float, n: int) -> float:
    return Z * math.sqrt(p * (1 - p) / n)


@pytest.mark.parametrize(("epsilon", "k"), [(0.1, 3), (0.3, 5), (0.0, 4), (1.0, 2)])
def test_best_arm_rate_is_one_minus_epsilon_plus_epsilon_over_k(epsilon: float, k: int) -> None:
    rng = np.random.default_rng(2024)
    means = np.linspace(0.1, 0.5, k)
    stats = ArmStats.of(n=np.full(k, 100.0), s=100.0 * means)
    n = 200_000
    choice = EpsilonGreedy(epsilon=epsilon).choose(stats, rng, size=n)
    expected = 1 - epsilon + epsilon / k
    rate = float(np.mean(choice.arms == k - 1))
    assert abs(rate - expected) <= binomial_bound(expected, n) + 1e-12
    # the reported propensity is the exact selection probability
    assert np.allclose(choice.propensities[choice.arms == k - 1], expected)
    if epsilon > 0 and k > 1:
        other = choice.propensities[choice.arms == 0]
        assert np.allclose(other, epsilon / k)


def test_ties_are_broken_uniformly_at_random() -> None:
    rng = np.random.default_rng(7)
    stats = ArmStats.of(n=[10, 10, 10, 10], s=[5, 5, 1, 5])
    eps = 0.2
    choice = EpsilonGreedy(epsilon=eps).choose(stats, rng, size=300_000)
    p_tied = (1 - eps) / 3 + eps / 4
    for arm in (0, 1, 3):
        rate = float(np.mean(choice.arms == arm))
        assert abs(rate - p_tied) <= binomial_bound(p_tied, 300_000)
    assert np.allclose(choice.propensities[choice.arms == 2], eps / 4)


def test_disabled_arms_are_never_chosen() -> None:
    rng = np.random.default_rng(3)
    stats = ArmStats.of(n=[10, 10, 10], s=[9, 1, 1])
    choice = EpsilonGreedy(epsilon=0.5).choose(stats, rng, size=50_000, enabled=[False, True, True])
    assert 0 not in set(choice.arms.tolist())
    probs = EpsilonGreedy(epsilon=0.5).probabilities(stats, [False, True, True])
    assert probs[0] == 0 and probs.sum() == pytest.approx(1.0)


def test_unobserved_arms_take_the_initial_value() -> None:
    stats = ArmStats.of(n=[0, 4], s=[0, 1])
    assert EpsilonGreedy(epsilon=0.0).probabilities(stats).tolist() == [0.0, 1.0]
    assert EpsilonGreedy(epsilon=0.0, initial_value=1.0).probabilities(stats).tolist() == [1.0, 0.0]


def test_batch_of_problems_one_draw_per_row() -> None:
    rng = np.random.default_rng(11)
    r, k = 10_000, 3
    n = np.full((r, k), 10.0)
    s = np.tile([1.0, 2.0, 3.0], (r, 1))
    s[: r // 2] = [3.0, 2.0, 1.0]  # half of the problems prefer arm 0
    choice = EpsilonGreedy(epsilon=0.0).choose(ArmStats.of(n, s), rng)
    assert choice.arms.shape == (r,)
    assert (choice.arms[: r // 2] == 0).all() and (choice.arms[r // 2 :] == 2).all()
    assert (choice.propensities == 1.0).all()


@pytest.mark.parametrize("bad", [-0.01, 1.01, float("nan"), "0.1", None, True])
def test_epsilon_is_validated(bad: object) -> None:
    with pytest.raises(InvalidInput, match=r"policy\.epsilon"):
        EpsilonGreedy(epsilon=bad)  # type: ignore[arg-type]
