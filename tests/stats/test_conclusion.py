"""Tests for octobandit.stats.conclusion: summaries, the stopping rule, the gain estimator.

Tolerances
----------
* P(best) and expected loss come from the quadrature of ``octobandit.stats.posterior``, whose
  contract is 1e-6 and which its own tests hold to 1e-8.  The references below are closed forms
  or ``scipy.integrate.quad`` with ``epsabs=1e-13``, so ``TOL = 1e-7`` leaves a 10x margin.
* Means and credible intervals are closed forms evaluated by different code: 1e-12 (relative).
* The Monte Carlo coverage check uses R = 2000 replications: the standard error of a coverage
  near 0.95 is sqrt(0.95 · 0.05 / 2000) ≈ 0.0049, and the prior's pull on the estimate costs
  about 0.3 points of coverage (see the test), so [0.93, 0.97] is ~4 standard errors wide.
"""

from __future__ import annotations

import dataclasses
import doctest
import json
import math
from typing import Any

import numpy as np
import pytest
from scipy import integrate, special, stats

from octobandit.policies import ArmStats
from octobandit.stats import conclusion
from octobandit.stats.conclusion import (
    InvalidRule,
    StoppingRule,
    evaluate,
    evaluate_batch,
    posterior_summary,
    reward_gain_vs_equal_split,
)

TOL = 1e-7


def test_doctests() -> None:
    result = doctest.testmod(conclusion, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


# --------------------------------------------------------------------------------------------
# independent references
# --------------------------------------------------------------------------------------------


def p_b_beats_a(a_a: int, b_a: int, a_b: int, b_b: int) -> float:
    """P(θ_B > θ_A) for θ ~ Beta with integer parameters (closed form, summed in log space)."""
    i = np.arange(a_b, dtype=np.float64)
    log_terms = (
        special.betaln(a_a + i, b_a + b_b)
        - np.log(b_b + i)
        - special.betaln(1.0 + i, b_b)
        - special.betaln(a_a, b_a)
    )
    return float(np.exp(log_terms).sum())


def beta_expected_max(params: list[tuple[float, float]]) -> float:
    """E[max θ_i] for independent Beta arms on [0, 1]: ∫ (1 - ∏ F_i(x)) dx."""
    means = [a / (a + b) for a, b in params]

    def tail(x: float) -> float:
        return 1.0 - math.prod(float(stats.beta.cdf(x, a, b)) for a, b in params)

    value, _ = integrate.quad(tail, 0.0, 1.0, points=means, epsabs=1e-13, limit=200)
    return float(value)


#: The pre-0.x default prior, given explicitly (the default is now empirical).
UNIT_PRIOR = {"mu0": 0.0, "kappa0": 0.01, "a0": 1.0, "b0": 1.0}


def nig_posterior(
    x: np.ndarray, mu0: float, k0: float, a0: float, b0: float
) -> tuple[float, float, float]:
    """Student-t marginal (loc, scale, df) of the mean, textbook Normal-Inverse-Gamma update."""
    n, xbar = len(x), float(x.mean())
    kn = k0 + n
    mun = (k0 * mu0 + n * xbar) / kn
    an = a0 + n / 2
    bn = b0 + 0.5 * float(((x - xbar) ** 2).sum()) + k0 * n * (xbar - mu0) ** 2 / (2 * kn)
    return mun, math.sqrt(bn / (an * kn)), 2 * an


def stats_of(samples: list[np.ndarray]) -> ArmStats:
    return ArmStats.of(
        n=[len(x) for x in samples],
        s=[float(x.sum()) for x in samples],
        ss=[float((x**2).sum()) for x in samples],
    )


# --------------------------------------------------------------------------------------------
# posterior summaries
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "s", "prior"),
    [
        ([20, 30], [5, 12], None),
        ([200, 180], [11, 17], None),
        ([0, 7], [0, 7], {"alpha": 2.0, "beta": 5.0}),
    ],
)
def test_two_beta_arms_match_closed_forms(
    n: list[int], s: list[int], prior: dict[str, float] | None
) -> None:
    summary = posterior_summary(ArmStats.of(n=n, s=s), "binary", prior=prior)
    a0, b0 = (prior or {}).get("alpha", 1.0), (prior or {}).get("beta", 1.0)
    params = [(a0 + s_i, b0 + n_i - s_i) for n_i, s_i in zip(n, s, strict=True)]
    (aa, ba), (ab, bb) = params
    p1 = p_b_beats_a(int(aa), int(ba), int(ab), int(bb))
    assert summary.prob_best.tolist() == pytest.approx([1 - p1, p1], abs=TOL)
    e_max = beta_expected_max(params)
    means = [a / (a + b) for a, b in params]
    assert summary.mean.tolist() == pytest.approx(means, rel=1e-12)
    assert summary.expected_loss.tolist() == pytest.approx([e_max - m for m in means], abs=TOL)
    lo = [stats.beta.ppf(0.025, a, b) for a, b in params]
    hi = [stats.beta.ppf(0.975, a, b) for a, b in params]
    assert summary.ci95_low.tolist() == pytest.approx(lo, rel=1e-9)
    assert summary.ci95_high.tolist() == pytest.approx(hi, rel=1e-9)
    assert summary.prob_best_se.tolist() == [0.0, 0.0]
    assert summary.method == "quadrature" and summary.reward_type == "binary"


def test_three_beta_arms_expected_loss_and_prob_best() -> None:
    n, s = [50, 60, 40], [10, 15, 12]
    summary = posterior_summary(ArmStats.of(n=n, s=s), "binary")
    params = [(1.0 + s_i, 1.0 + n_i - s_i) for n_i, s_i in zip(n, s, strict=True)]
    e_max = beta_expected_max(params)
    for i, (a, b) in enumerate(params):
        assert summary.expected_loss[i] == pytest.approx(e_max - a / (a + b), abs=TOL)

        def integrand(x: float, i: int = i) -> float:
            others = math.prod(float(stats.beta.cdf(x, *params[j])) for j in range(3) if j != i)
            return float(stats.beta.pdf(x, *params[i])) * others

        ref, _ = integrate.quad(integrand, 0.0, 1.0, epsabs=1e-13, limit=200)
        assert summary.prob_best[i] == pytest.approx(ref, abs=TOL)


def test_disabled_arms_do_not_compete() -> None:
    stats3 = ArmStats.of(n=[100, 100, 100], s=[10, 14, 40])
    summary = posterior_summary(stats3, "binary", enabled=[True, True, False])
    pair = posterior_summary(ArmStats.of(n=[100, 100], s=[10, 14]), "binary")
    assert summary.prob_best[2] == 0.0
    assert math.isinf(summary.expected_loss[2])
    assert summary.prob_best[:2].tolist() == pytest.approx(pair.prob_best.tolist(), abs=1e-12)
    assert summary.expected_loss[:2].tolist() == pytest.approx(
        pair.expected_loss.tolist(), abs=1e-12
    )
    # a disabled arm still has its own posterior mean and interval
    assert summary.mean[2] == pytest.approx(41 / 102)
    assert summary.ci95_low[2] < summary.mean[2] < summary.ci95_high[2]
    assert summary.enabled.tolist() == [True, True, False]


def test_batch_summary_equals_row_by_row() -> None:
    n = np.array([[100.0, 120.0, 90.0], [1000.0, 1000.0, 1000.0]])
    s = np.array([[10.0, 20.0, 9.0], [50.0, 61.0, 40.0]])
    mask = np.array([[True, True, True], [True, False, True]])
    batch = posterior_summary(ArmStats.of(n, s), "binary", enabled=mask)
    for r in range(2):
        row = posterior_summary(ArmStats.of(n[r], s[r]), "binary", enabled=mask[r])
        for name in ("mean", "ci95_low", "ci95_high", "prob_best", "expected_loss"):
            assert getattr(batch, name)[r].tolist() == pytest.approx(
                getattr(row, name).tolist(), abs=1e-12
            )


def test_continuous_summary_matches_student_t_references() -> None:
    rng = np.random.default_rng(7)
    samples = [rng.normal(1.0, 2.0, 12), rng.normal(1.8, 1.0, 9)]
    prior = {"mu0": 0.5, "kappa0": 0.1, "a0": 2.0, "b0": 1.5}
    summary = posterior_summary(stats_of(samples), "continuous", prior=prior)
    (l0, s0, d0), (l1, s1, d1) = (nig_posterior(x, 0.5, 0.1, 2.0, 1.5) for x in samples)
    t0, t1 = stats.t(d0, l0, s0), stats.t(d1, l1, s1)
    assert summary.mean.tolist() == pytest.approx([l0, l1], rel=1e-12)
    assert summary.ci95_low.tolist() == pytest.approx([t0.ppf(0.025), t1.ppf(0.025)], rel=1e-9)
    assert summary.ci95_high.tolist() == pytest.approx([t0.ppf(0.975), t1.ppf(0.975)], rel=1e-9)

    p1, _ = integrate.quad(
        lambda x: t1.pdf(x) * t0.cdf(x), -np.inf, np.inf, points=None, epsabs=1e-13, limit=400
    )
    assert summary.prob_best.tolist() == pytest.approx([1 - p1, p1], abs=TOL)
    # E[max] = ∫ x (f0 F1 + f1 F0) dx
    e_max, _ = integrate.quad(
        lambda x: x * (t0.pdf(x) * t1.cdf(x) + t1.pdf(x) * t0.cdf(x)),
        -np.inf,
        np.inf,
        epsabs=1e-13,
        limit=400,
    )
    assert summary.expected_loss.tolist() == pytest.approx([e_max - l0, e_max - l1], abs=TOL)


def test_continuous_default_prior_arm_without_data() -> None:
    # with a0 = 1 an arm without data has df = 2: finite mean, so a finite expected loss
    stats_ = ArmStats.of(n=[0, 50], s=[0.0, 25.0], ss=[0.0, 30.0])
    summary = posterior_summary(stats_, "continuous")
    assert np.isfinite(summary.expected_loss).all()
    assert summary.prob_best.sum() == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"reward_type": "ordinal"}, "reward_type"),
        ({"prior": {"alpha": -1.0}}, "prior.alpha"),
        ({"prior": {"gamma": 1.0}}, "prior.gamma"),
        ({"prior": {"mu0": float("nan")}}, "prior.mu0"),
        ({"prior": {"beta": True}}, "prior.beta"),
        ({"enabled": [False, False]}, "enabled"),
        ({"enabled": [1, 0]}, "enabled"),
        ({"enabled": [True, True, True]}, "enabled"),
    ],
)
def test_summary_rejects_bad_input(kwargs: dict[str, Any], field: str) -> None:
    args: dict[str, Any] = {"reward_type": "binary", **kwargs}
    with pytest.raises(ValueError, match=f"^{field}"):
        posterior_summary(ArmStats.of(n=[10, 10], s=[1, 2]), **args)


# --------------------------------------------------------------------------------------------
# stopping rule
# --------------------------------------------------------------------------------------------


def test_rule_defaults_and_round_trip() -> None:
    rule = StoppingRule()
    assert rule.params() == {
        "prob_best": 0.999,
        "max_expected_loss": 0.01,
        "relative_loss": True,
        "min_rewards_per_arm": 2000,
    }
    assert StoppingRule.from_params({}) == rule
    custom = StoppingRule(prob_best=0.99, max_expected_loss=0.002, relative_loss=False)
    stored = json.loads(json.dumps(custom.params()))
    assert StoppingRule.from_params(stored) == custom
    # JSON numbers are normalised: whole floats for the count, ints for the thresholds
    assert StoppingRule.from_params({"min_rewards_per_arm": 500.0}).min_rewards_per_arm == 500
    assert StoppingRule.from_params({"max_expected_loss": 1}).params()["max_expected_loss"] == 1.0


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"prob_best": 1.0}, "prob_best"),
        ({"prob_best": 0.0}, "prob_best"),
        ({"prob_best": "0.9"}, "prob_best"),
        ({"prob_best": True}, "prob_best"),
        ({"max_expected_loss": 0.0}, "max_expected_loss"),
        ({"max_expected_loss": float("inf")}, "max_expected_loss"),
        ({"relative_loss": 1}, "relative_loss"),
        ({"min_rewards_per_arm": -1}, "min_rewards_per_arm"),
        ({"min_rewards_per_arm": 2.5}, "min_rewards_per_arm"),
        ({"min_decisions": 10}, "min_decisions"),
    ],
)
def test_rule_validation_names_the_field(params: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field}: ") as info:
        StoppingRule.from_params(params)
    assert isinstance(info.value, InvalidRule) and info.value.field == field


def binary(n: list[float], s: list[float], **kwargs: Any) -> tuple[Any, ArmStats]:
    stats_ = ArmStats.of(n=n, s=s)
    return posterior_summary(stats_, "binary", **kwargs), stats_


def test_clear_winner_is_met() -> None:
    summary, stats_ = binary([20000, 20000], [1000, 1200])
    c = evaluate(StoppingRule(), summary, stats_.n)
    assert c.met and c.winner == 1 and c.leader == 1 and c.failed == ()
    assert c.prob_best == pytest.approx(float(summary.prob_best[1]))
    assert c.expected_loss == pytest.approx(float(summary.expected_loss[1]))
    assert c.best_mean == pytest.approx(1201 / 20002)
    assert c.loss_threshold == pytest.approx(0.01 * 1201 / 20002)
    assert c.min_rewards == 20000
    assert c.reason.startswith("arm 1 wins: P(best) > 0.9999 ≥ 0.999")
    assert json.loads(json.dumps(dataclasses.asdict(c)))["winner"] == 1  # plain JSON values


def test_close_arms_fail_on_prob_best_only() -> None:
    # sd of the difference ≈ 6.9e-4 for a 5e-4 gap: P(best) ≈ 0.77, loss ≈ 1e-4 < cap ≈ 5e-4
    summary, stats_ = binary([200000, 200000], [10000, 10100])
    c = evaluate(StoppingRule(), summary, stats_.n, arm_names=["control", "variant"])
    assert not c.met and c.winner is None and c.leader == 1
    assert c.failed == ("prob_best",)
    assert 0.7 < c.prob_best < 0.85 and c.expected_loss < c.loss_threshold
    assert "variant leads" in c.reason and "below 0.999" in c.reason


def test_small_samples_fail_on_expected_loss() -> None:
    rule = StoppingRule(prob_best=0.8, min_rewards_per_arm=0)
    summary, stats_ = binary([40, 40], [2, 6])
    c = evaluate(rule, summary, stats_.n)
    # P(best) ≈ 0.9 clears 0.8, but the loss ≈ 2.6e-3 exceeds 1% of the best mean ≈ 1.7e-3
    assert c.prob_best >= 0.8
    assert c.expected_loss > c.loss_threshold == pytest.approx(0.01 * 7 / 42)
    assert c.failed == ("max_expected_loss",) and not c.met
    assert "expected loss" in c.reason and "above" in c.reason
    absolute = evaluate(
        StoppingRule(
            prob_best=0.8, min_rewards_per_arm=0, max_expected_loss=0.01, relative_loss=False
        ),
        summary,
        stats_.n,
    )
    assert absolute.loss_threshold == 0.01 and absolute.met and absolute.winner == 1


def test_too_few_rewards_is_not_met() -> None:
    summary, stats_ = binary([1500, 1800], [50, 150])
    c = evaluate(StoppingRule(), summary, stats_.n)
    assert c.prob_best > 0.9999 and c.expected_loss < c.loss_threshold
    assert c.failed == ("min_rewards_per_arm",) and c.fewest_arm == 0
    assert "arm 0 has only 1,500 observed rewards, fewer than the minimum of 2,000" in c.reason


def test_all_failures_are_listed() -> None:
    summary, stats_ = binary([30, 30], [2, 3])
    c = evaluate(StoppingRule(), summary, stats_.n)
    assert c.failed == ("prob_best", "max_expected_loss", "min_rewards_per_arm")
    assert c.reason.count(";") == 2


def test_disabled_arms_are_ignored_by_the_rule() -> None:
    # arm 2 is far better but disabled and has few rewards: it neither wins nor blocks
    summary, stats_ = binary([20000, 20000, 100], [1000, 1200, 90], enabled=[True, True, False])
    c = evaluate(StoppingRule(), summary, stats_.n)
    assert c.met and c.winner == 1 and c.min_rewards == 20000
    only_one, _ = binary([20000, 20000], [1000, 1200], enabled=[False, True])
    c1 = evaluate(StoppingRule(), only_one, [20000, 20000])
    assert not c1.met and c1.failed == ("arms",) and "two arms" in c1.reason


def test_evaluate_batch_agrees_with_evaluate() -> None:
    n = np.array([[20000.0, 20000.0], [200000.0, 200000.0], [1500.0, 1800.0]])
    s = np.array([[1000.0, 1200.0], [10000.0, 10100.0], [50.0, 150.0]])
    summary = posterior_summary(ArmStats.of(n, s), "binary")
    met, leader = evaluate_batch(StoppingRule(), summary, n)
    assert met.tolist() == [True, False, False] and leader.tolist() == [1, 1, 1]
    for r in range(3):
        row = posterior_summary(ArmStats.of(n[r], s[r]), "binary")
        c = evaluate(StoppingRule(), row, n[r])
        assert (c.met, c.leader) == (bool(met[r]), int(leader[r]))


def test_continuous_winner() -> None:
    rng = np.random.default_rng(3)
    samples = [rng.normal(10.0, 3.0, 3000), rng.normal(10.6, 3.0, 3000)]
    stats_ = stats_of(samples)
    c = evaluate(StoppingRule(), posterior_summary(stats_, "continuous"), stats_.n)
    assert c.met and c.winner == 1
    # a tiny difference in noisy rewards: no decision
    same = stats_of([rng.normal(10.0, 3.0, 3000), rng.normal(10.0, 3.0, 3000)])
    c2 = evaluate(StoppingRule(), posterior_summary(same, "continuous"), same.n)
    assert not c2.met and "prob_best" in c2.failed


def test_evaluate_rejects_a_batch_and_bad_names() -> None:
    summary = posterior_summary(ArmStats.of(np.full((2, 2), 10.0), np.ones((2, 2))), "binary")
    with pytest.raises(ValueError, match="evaluate_batch"):
        evaluate(StoppingRule(), summary, [10, 10])
    one = posterior_summary(ArmStats.of([10, 10], [1, 2]), "binary")
    with pytest.raises(ValueError, match="arm_names"):
        evaluate(StoppingRule(), one, [10, 10], arm_names=["a"])


# --------------------------------------------------------------------------------------------
# reward gained over an equal split
# --------------------------------------------------------------------------------------------


def test_gain_known_answer_binary() -> None:
    n, s = [1000.0, 9000.0], [50.0, 630.0]
    gain, se = reward_gain_vs_equal_split(ArmStats.of(n, s), n)
    a = np.array([51.0, 631.0])
    b = np.array([951.0, 8371.0])
    mean, var = a / (a + b), a * b / ((a + b) ** 2 * (a + b + 1))
    assert gain == pytest.approx(680.0 - 10000.0 * mean.mean(), rel=1e-12)
    assert se == pytest.approx(5000.0 * math.sqrt(var.sum()), rel=1e-12)


def test_gain_pending_rewards_and_arms_without_data() -> None:
    # arm 2 has decisions but no reward yet: left out.  Arm 1 awaits 1000 rewards: imputed.
    stats_ = ArmStats.of(n=[1000.0, 3000.0, 0.0], s=[100.0, 450.0, 0.0])
    gain, se = reward_gain_vs_equal_split(stats_, [1000, 4000, 500])
    a = np.array([101.0, 451.0])
    b = np.array([901.0, 2551.0])
    mean, var = a / (a + b), a * b / ((a + b) ** 2 * (a + b + 1))
    coef = np.array([0.0, 1000.0]) - 5000.0 / 2
    assert gain == pytest.approx(550.0 + (coef * mean).sum(), rel=1e-12)
    assert se == pytest.approx(math.sqrt((coef**2 * var).sum()), rel=1e-12)
    assert reward_gain_vs_equal_split(ArmStats.zeros(3), [5, 0, 0]) == (0.0, 0.0)


def test_gain_continuous_closed_form() -> None:
    rng = np.random.default_rng(11)
    samples = [rng.normal(2.0, 1.0, 40), rng.normal(3.0, 1.0, 160)]
    stats_ = stats_of(samples)
    gain, se = reward_gain_vs_equal_split(
        stats_, stats_.n, reward_type="continuous", prior=UNIT_PRIOR
    )
    post = [nig_posterior(x, 0.0, 0.01, 1.0, 1.0) for x in samples]
    means = np.array([loc for loc, _, _ in post])
    var = np.array([scale**2 * df / (df - 2) for _, scale, df in post])
    total = float(sum(x.sum() for x in samples))
    assert gain == pytest.approx(total - 200.0 * means.mean(), rel=1e-10)
    assert se == pytest.approx(100.0 * math.sqrt(var.sum()), rel=1e-10)


def test_gain_interval_covers_the_realised_gain() -> None:
    # Fixed (non-adaptive) allocation; estimand Σ s - (D / K) Σ p.  The Beta(1, 1) prior pulls
    # each mean up by about (1 - 2p) / n: a bias of ~4 reward units against an se of ~32, which
    # lowers the coverage of ±1.96 se by about 0.3 points.
    rng = np.random.default_rng(2024)
    p = np.array([0.05, 0.06, 0.04])
    d = np.array([3000.0, 10000.0, 2000.0])
    reps = 2000
    s = rng.binomial(d.astype(np.int64), p, size=(reps, 3)).astype(np.float64)
    covered = 0
    for row in s:
        gain, se = reward_gain_vs_equal_split(ArmStats.of(d, row), d)
        realised = row.sum() - d.sum() * p.mean()
        covered += abs(gain - realised) <= 1.959964 * se
    assert 0.93 <= covered / reps <= 0.97


def test_gain_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="decisions_per_arm"):
        reward_gain_vs_equal_split(ArmStats.of([1, 1], [0, 1]), [1, 1, 1])
    with pytest.raises(ValueError, match="decisions_per_arm"):
        reward_gain_vs_equal_split(ArmStats.of([1, 1], [0, 1]), [1, -1])
    with pytest.raises(ValueError, match="one experiment"):
        reward_gain_vs_equal_split(ArmStats.zeros(2, (3,)), np.zeros((3, 2)))
