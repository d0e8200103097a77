"""Thompson sampling: posterior algebra, probability matching, convergence."""

from __future__ import annotations

import math

import numpy as np
import pytest

from octobandit.policies import ArmStats, ThompsonSampling


def test_beta_posterior_is_prior_plus_counts() -> None:
    p = ThompsonSampling(alpha=2.0, beta=3.0)
    a, b = p.beta_posterior(ArmStats.of(n=[10, 0], s=[4, 0]))
    assert a.tolist() == [6.0, 2.0] and b.tolist() == [9.0, 3.0]


def test_normal_inverse_gamma_posterior_closed_form() -> None:
    x = np.array([3.0, 5.0, 4.0, 8.0])
    mu0, k0, a0, b0 = 1.0, 2.0, 3.0, 4.0
    p = ThompsonSampling(mu0=mu0, kappa0=k0, a0=a0, b0=b0, reward="continuous")
    loc, scale, df = p.t_posterior(ArmStats.of(n=[len(x)], s=[x.sum()], ss=[(x**2).sum()]))
    n, xbar = len(x), x.mean()
    kn = k0 + n
    mun = (k0 * mu0 + n * xbar) / kn
    an = a0 + n / 2
    bn = b0 + 0.5 * ((x - xbar) ** 2).sum() + k0 * n * (xbar - mu0) ** 2 / (2 * kn)
    assert loc[0] == pytest.approx(mun)
    assert df[0] == pytest.approx(2 * an)
    assert scale[0] == pytest.approx(math.sqrt(bn / (an * kn)))


@pytest.mark.parametrize(
    ("reward", "stats"),
    [
        ("binary", ArmStats.of(n=[20, 25, 30], s=[8, 12, 16])),
        ("continuous", ArmStats.of(n=[5, 8, 6], s=[50, 88, 60], ss=[520, 1000, 640])),
    ],
)
def test_choices_match_the_reported_propensities(reward: str, stats: ArmStats) -> None:
    """Probability matching: posterior sampling (the batch path, used by simulations)
    picks each arm at the rate the quadrature propensity gives, within 5 binomial
    standard errors; the service path draws from that same distribution."""
    rng = np.random.default_rng(99)
    policy = ThompsonSampling(reward=reward)
    n = 200_000
    batch = ArmStats(*(np.broadcast_to(a, (n, 3)) for a in (stats.n, stats.s, stats.ss)))
    sampled = policy.choose(batch, rng, propensities=False).arms
    served = policy.choose(stats, rng, size=n)
    probs = policy.probabilities(stats)
    assert probs.sum() == pytest.approx(1.0, abs=1e-9)
    for arm in range(3):
        bound = 5 * math.sqrt(probs[arm] * (1 - probs[arm]) / n)
        assert abs(float(np.mean(sampled == arm)) - probs[arm]) <= bound
        assert abs(float(np.mean(served.arms == arm)) - probs[arm]) <= bound
        assert np.all(served.propensities[served.arms == arm] == probs[arm])


def test_disabled_arm_never_chosen() -> None:
    stats = ArmStats.of(n=[100, 10], s=[90, 1])
    c = ThompsonSampling().choose(stats, np.random.default_rng(5), size=5000, enabled=[False, True])
    assert (c.arms == 1).all() and np.allclose(c.propensities, 1.0)


def test_converges_on_a_three_arm_instance() -> None:
    """Agrawal & Goyal (2013): suboptimal pulls grow like ln T / KL(μ_i, μ*). With
    means (0.2, 0.5, 0.8) and T = 2000 that is about 8 / 0.22 ≈ 35 pulls of the
    0.5 arm and fewer of the 0.2 arm, so the best arm gets well over 90% of the
    traffic; a policy that does not learn gets a third."""
    rng = np.random.default_rng(2013)
    means = np.array([0.2, 0.5, 0.8])
    runs, horizon = 100, 2000
    policy = ThompsonSampling()
    stats = ArmStats.zeros(3, (runs,))
    rows = np.arange(runs)
    best = np.zeros(runs)
    for _ in range(horizon):
        arms = policy.choose(stats, rng, propensities=False).arms
        r = (rng.random(runs) < means[arms]).astype(float)
        stats.n[rows, arms] += 1
        stats.s[rows, arms] += r
        best += arms == 2
    share = best / horizon
    assert share.mean() > 0.9
    assert np.median(share) > 0.95
