"""Environments: expected rewards as specified, rewards drawn at those rates."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from scipy import special

from octobandit.simulation import (
    Bernoulli,
    Gaussian,
    LinearContextual,
    LogisticContextual,
    PiecewiseBernoulli,
)

Z = 5.0


def test_bernoulli_rewards_occur_at_the_arm_means() -> None:
    env = Bernoulli([0.05, 0.5, 0.93])
    rng = np.random.default_rng(0)
    n = 100_000
    for arm, mu in enumerate([0.05, 0.5, 0.93]):
        arms = np.full(n, arm)
        r = env.rewards(arms, env.expected_rewards(0, None)[arms], rng)
        assert set(np.unique(r).tolist()) <= {0.0, 1.0}
        assert abs(r.mean() - mu) <= Z * math.sqrt(mu * (1 - mu) / n)


def test_bernoulli_with_gap_and_validation() -> None:
    env = Bernoulli.with_gap(10, best=0.5, gap=0.1)
    assert env.k == 10
    assert env.expected_rewards(0, None).tolist() == [0.5] + [0.4] * 9
    bad_means: list[Any] = [[], [1.2], [-0.1], [[0.5]], [float("nan")]]
    for bad in bad_means:
        with pytest.raises(ValueError):
            Bernoulli(bad)


def test_gaussian_rewards_mean_and_variance() -> None:
    env = Gaussian([1.0, -2.0], sd=[0.5, 3.0])
    rng = np.random.default_rng(1)
    n = 100_000
    for arm, (mu, sd) in enumerate([(1.0, 0.5), (-2.0, 3.0)]):
        arms = np.full(n, arm)
        r = env.rewards(arms, env.expected_rewards(0, None)[arms], rng)
        assert abs(r.mean() - mu) <= Z * sd / math.sqrt(n)
        # sample variance: sd of s² is σ²·sqrt(2/(n-1)) for normal data
        assert abs(r.var(ddof=1) - sd**2) <= Z * sd**2 * math.sqrt(2 / (n - 1))


def test_piecewise_means_switch_at_the_change_points() -> None:
    env = PiecewiseBernoulli([[0.7, 0.3], [0.2, 0.8], [0.5, 0.6]], change_points=[100, 250])
    best = [int(np.argmax(env.expected_rewards(t, None))) for t in range(400)]
    assert best[:100] == [0] * 100 and best[100:] == [1] * 300
    assert env.expected_rewards(99, None).tolist() == [0.7, 0.3]
    assert env.expected_rewards(100, None).tolist() == [0.2, 0.8]
    assert env.expected_rewards(249, None).tolist() == [0.2, 0.8]
    assert env.expected_rewards(250, None).tolist() == [0.5, 0.6]
    for segs, cps in (([[0.5]], [10]), ([[0.5], [0.6]], [0]), ([[0.5], [0.6], [0.4]], [20, 10])):
        with pytest.raises(ValueError):
            PiecewiseBernoulli(segs, cps)


def test_linear_contexts_and_means() -> None:
    theta = np.array([[0.5, 1.0, -1.0], [0.0, 2.0, 0.5]])
    env = LinearContextual(theta, noise_sd=0.3)
    rng = np.random.default_rng(2)
    x = env.contexts(0, 50_000, rng)
    assert x.shape == (50_000, 3) and (x[:, 0] == 1).all()
    # the other coordinates are standard normal
    assert np.abs(x[:, 1:].mean(axis=0)).max() <= Z / math.sqrt(50_000)
    mu = env.expected_rewards(0, x)
    np.testing.assert_allclose(mu, x @ theta.T, rtol=1e-15)
    arms = rng.integers(0, 2, size=50_000)
    chosen = mu[np.arange(50_000), arms]
    noise = env.rewards(arms, chosen, rng) - chosen
    assert abs(noise.mean()) <= Z * 0.3 / math.sqrt(50_000)
    assert abs(noise.std() - 0.3) <= Z * 0.3 / math.sqrt(2 * 50_000)


def test_logistic_means_and_rewards() -> None:
    theta = [[0.0, 2.0], [1.0, -1.0]]
    env = LogisticContextual(theta)
    rng = np.random.default_rng(3)
    x = env.contexts(0, 100_000, rng)
    mu = env.expected_rewards(0, x)
    np.testing.assert_allclose(mu, special.expit(x @ np.array(theta).T), rtol=1e-15)
    arms = np.zeros(100_000, dtype=np.intp)
    r = env.rewards(arms, mu[:, 0], rng)
    # E[σ(2z)] = 1/2 for z ~ N(0, 1), by symmetry
    assert abs(r.mean() - 0.5) <= Z * math.sqrt(0.25 / 100_000)
    assert LogisticContextual(theta, intercept=False).contexts(0, 4, rng)[:, 0].std() > 0
