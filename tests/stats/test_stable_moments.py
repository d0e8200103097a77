"""Moments stay accurate when the mean is large compared with the spread (mean 1e8, sd 1).

The service keeps ``Σ x`` and ``Σ (x - c)²`` about a per-arm shift ``c`` (the arm's first
reward). Error bound for n = 10^4 rewards of mean 1e8 and sd 1: ``x - c`` is exact (Sterbenz:
both within a factor 2), each square and addition adds a relative error <= eps, so
``Σ (x - c)²`` is within n·eps ≈ 2e-12 relative. ``d = Σx - n·c`` inherits the rounding of
``Σx`` (n additions of at most ulp(1e12)/2 = 6.1e-5: |δd| <= 0.61), and
``m2 = Σ(x - c)² - d² / n`` is then off by at most ``2 |d| |δd| / n``; with
``|d| <= n · |x̄ - c| <= n · 5 sd`` that is <= 6.1 against m2 ≈ n sd² = 10^4, i.e.
6.1e-4 relative on m2, 3.1e-4 on a width (a square root). The plain ``Σx² - (Σx)²/n`` is
off by about 40% (the issue's report) or worse.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as st

from octobandit.engine import Engine, RewardItem
from octobandit.policies import ArmStats, ThompsonSampling, UCBTuned
from octobandit.stats.conclusion import posterior_summary
from octobandit.stats.intervals import t_interval

WIDTH_TOL = 3.1e-4
M2_TOL = 6.1e-4


def data(seed: int, n: int = 10_000, mean: float = 1e8) -> np.ndarray:
    return mean + np.random.default_rng(seed).standard_normal(n)


def two_pass(x: np.ndarray) -> float:
    return float(((x - x.mean()) ** 2).sum())


def test_shifted_sums_give_the_two_pass_m2() -> None:
    xs = [data(1), data(2, mean=1e8 + 0.5)]
    stats = ArmStats.zeros(2)
    for j, x in enumerate(xs):
        for r in x[:10]:
            stats = stats.observe(j, float(r))  # c = 0: plain squares
    plain = ArmStats.of(
        n=[len(x) for x in xs],
        s=[math.fsum(x) for x in xs],
        ss=[float((x * x).sum()) for x in xs],
    )
    shifted = ArmStats.of(
        n=[len(x) for x in xs],
        s=[float(x.sum()) for x in xs],
        ss=[float(((x - x[0]) ** 2).sum()) for x in xs],
        c=[x[0] for x in xs],
    )
    exact = np.array([two_pass(x) for x in xs])
    assert np.abs(shifted.m2 / exact - 1).max() <= M2_TOL
    assert np.abs(plain.m2 / exact - 1).max() > 0.01  # the cancellation this replaces


def test_merging_statistics_with_different_shifts() -> None:
    x, y = data(3, 500), data(4, 700, mean=1e8 + 2)
    a = ArmStats.of([500], [x.sum()], [((x - x[0]) ** 2).sum()], [x[0]])
    b = ArmStats.of([700], [y.sum()], [((y - y[0]) ** 2).sum()], [y[0]])
    both = np.concatenate([x, y])
    # Σx of each side carries the rounding bounded in the module docstring
    assert float((a + b).m2[0]) == pytest.approx(two_pass(both), rel=M2_TOL)
    assert float((a + ArmStats.zeros(1)).m2[0]) == pytest.approx(two_pass(x), rel=M2_TOL)
    assert float((ArmStats.zeros(1) + b).m2[0]) == pytest.approx(two_pass(y), rel=M2_TOL)


def test_service_statistics_interval_and_posterior_scale(engine: Engine) -> None:
    engine.create_experiment(
        {"id": "big", "reward": {"type": "continuous"}, "arms": [{"id": "a"}, {"id": "b"}]}
    )
    xs = {"a": data(5), "b": data(6, mean=1e8 + 0.02)}
    for arm, x in xs.items():
        engine.reward("big", [RewardItem(float(r), arm_id=arm) for r in x])
    # GET /stats: the Student-t interval of the true sample variance (two-pass)
    for row in engine.stats("big")["arms"]:
        x = xs[row["arm_id"]]
        lo, hi = t_interval(float(x.sum()), two_pass(x), len(x), shift=float(x.mean()))
        want = 2 * st.t.ppf(0.975, len(x) - 1) * math.sqrt(two_pass(x) / (len(x) - 1) / len(x))
        assert hi - lo == pytest.approx(want, rel=1e-6)  # endpoints near 1e8: ulp 1.5e-8
        width = row["ci95"][1] - row["ci95"][0]
        assert width == pytest.approx(want, rel=WIDTH_TOL)
    # the posterior the policy and /conclusion use: textbook NIG with the two-pass m2
    record = engine.get_experiment("big")
    stats = ArmStats.of(
        [a.rewards for a in record.arms],
        [a.reward_sum for a in record.arms],
        [a.reward_sq_sum for a in record.arms],
        [a.shift for a in record.arms],
    )
    _, scale, _ = ThompsonSampling(reward="continuous").t_posterior(stats)
    m2 = np.array([two_pass(xs["a"]), two_pass(xs["b"])])
    n = np.array([len(xs["a"]), len(xs["b"])], dtype=float)
    v = m2.sum() / (n - 1).sum()  # the empirical b0 = a0 · v (a0 = 1)
    grand = np.concatenate(list(xs.values())).mean()
    means = np.array([xs["a"].mean(), xs["b"].mean()])
    kappa = 0.01 + n
    b = v + m2 / 2 + 0.01 * n * (means - grand) ** 2 / (2 * kappa)
    want_scale = np.sqrt(b / ((1 + n / 2) * kappa))
    np.testing.assert_allclose(scale, want_scale, rtol=WIDTH_TOL)
    summary = posterior_summary(stats, "continuous")
    df = 2 + n
    want_width = 2 * st.t.ppf(0.975, df) * want_scale
    np.testing.assert_allclose(summary.ci95_high - summary.ci95_low, want_width, rtol=WIDTH_TOL)
    view = engine.conclusion("big")
    widths = [arm["ci95"][1] - arm["ci95"][0] for arm in view["arms"]]
    np.testing.assert_allclose(widths, want_width, rtol=WIDTH_TOL)


def test_ucb_tuned_uses_the_centred_variance() -> None:
    x = data(7, 1000)
    shifted = ArmStats.of(
        [1000, 1000], [x.sum(), x.sum()], [((x - x[0]) ** 2).sum()] * 2, [x[0]] * 2
    )
    var = two_pass(x) / len(x)
    assert float(shifted.m2[0]) / 1000 == pytest.approx(var, rel=M2_TOL)
    assert np.isfinite(UCBTuned(reward="continuous").indices(shifted)).all()
