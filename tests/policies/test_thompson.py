"""Thompson sampling: posterior algebra, probability matching, convergence."""

from __future__ import annotations

import math

import numpy as np
import pytest

from octobandit.errors import InvalidInput
from octobandit.policies import ArmStats, ThompsonSampling
from octobandit.stats.conclusion import posterior_summary


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


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"a0": 0.5}, "policy.a0"),  # an arm without data would have no posterior mean
        ({"a0": 0.3}, "policy.a0"),
        ({"kappa0": 1e-320}, "policy.kappa0"),
        ({"kappa0": 1e300}, "policy.kappa0"),
        ({"b0": 1e300}, "policy.b0"),
        ({"b0": 1e-320}, "policy.b0"),
        ({"mu0": 1e300}, "policy.mu0"),
        ({"alpha": 1e-320}, "policy.alpha"),
        ({"beta": 1e300}, "policy.beta"),
        ({"mu0": 10**400}, "policy.mu0"),
    ],
)
def test_parameters_outside_the_trusted_range_are_refused(
    params: dict[str, float], field: str
) -> None:
    with pytest.raises(InvalidInput) as info:
        ThompsonSampling(reward="continuous", **params)
    assert info.value.field == field


@pytest.mark.parametrize("reward", ["binary", "continuous"])
def test_extreme_accepted_parameters_and_statistics_stay_finite(reward: str) -> None:
    """Every corner of the parameter ranges with statistics at the bounds of the service."""
    if reward == "binary":
        corners = [{"alpha": a, "beta": b} for a in (0.01, 1.0, 1e15) for b in (0.01, 1.0, 1e15)]
        stats = [
            ArmStats.of([0, 3], [0, 2]),
            ArmStats.of([1e15, 10], [5e14, 3]),
            ArmStats.of([1e15, 1e15], [1e15, 0]),
            ArmStats.of([1e15, 1e15], [1.0, 1e15 - 1]),
        ]
    else:
        corners = [
            {"kappa0": k, "a0": a, "b0": b, "mu0": m}
            for k in (1e-6, 1e6)
            for a in (0.5000001, 1e6)
            for b in (None, 1e-100, 1e24)
            for m in (None, -1e12, 1e12)
        ]
        stats = [
            ArmStats.of([0, 3], [0, 2.0], [0, 1.0], [0, 0.5]),
            ArmStats.of([1e15, 1], [1e27, -1e12], [4e39, 0], [1e12, -1e12]),
            ArmStats.of([1e-6, 2], [1e6, 3], [0, 0.5], [1e12, 1.5]),
            ArmStats.of([1e15, 1e15], [-1e27, 1e27], [0, 0], [-1e12, 1e12]),
        ]
    for params in corners:
        policy = ThompsonSampling(reward=reward, **params)  # type: ignore[arg-type]
        for st in stats:
            probs = policy.probabilities(st)
            assert np.isfinite(probs).all() and probs.sum() == pytest.approx(1.0), params
            summary = posterior_summary(st, reward, prior=params)
            for values in (summary.expected_loss, summary.ci95_low, summary.ci95_high):
                assert np.isfinite(values).all(), (params, st)
