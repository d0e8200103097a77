"""The default continuous prior does not depend on the rewards' unit.

For data ``x`` and ``a·x + b`` (``a > 0``) Thompson's selection probabilities and the
conclusion's P(best) are equal, and means, intervals and expected losses transform as the
rewards. Tolerances come from float error: the quadrature works in standardised coordinates
``(z - loc) / scale``, whose absolute error is about ``eps · |z| / scale``; with
``rho = max|loc| / min scale`` over both data sets, probabilities agree to a small multiple of
``eps · (1 + rho)``, and numbers in reward units to that times their magnitude.
"""

from __future__ import annotations

import numpy as np
import pytest

from octobandit.engine import Engine, RewardItem
from octobandit.policies import ArmStats, ThompsonSampling
from octobandit.simulation.environments import Gaussian
from octobandit.simulation.runner import simulate
from octobandit.stats.conclusion import posterior_summary, reward_gain_vs_equal_split

EPS = float(np.finfo(float).eps)
AFFINE = [(0.01, 0.0), (100.0, 0.0), (100.0, -1e4), (1e-3, 7.0), (1e6, 1e8), (1.0, 1e6)]


def samples(seed: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    arms = ((0.0, 30), (0.3, 25), (0.5, 5), (0.1, 1), (0.0, 0))
    return [rng.normal(m, 1.0, n) for m, n in arms]


def stats_of(xs: list[np.ndarray]) -> ArmStats:
    """Statistics as the service keeps them: squares about each arm's first reward."""
    c = [float(x[0]) if len(x) else 0.0 for x in xs]
    return ArmStats.of(
        n=[len(x) for x in xs],
        s=[float(x.sum()) for x in xs],
        ss=[float(((x - ci) ** 2).sum()) for x, ci in zip(xs, c, strict=True)],
        c=c,
    )


def tolerance(*stats: ArmStats) -> float:
    rho = 0.0
    for st in stats:
        loc, scale, _ = ThompsonSampling(reward="continuous").t_posterior(st)
        rho = max(rho, float(np.abs(loc).max() / scale.min()))
    return 64 * EPS * (1.0 + rho)


@pytest.mark.parametrize(("a", "b"), AFFINE)
def test_thompson_probabilities_do_not_depend_on_the_unit(a: float, b: float) -> None:
    xs = samples()
    base, moved = stats_of(xs), stats_of([a * x + b for x in xs])
    policy = ThompsonSampling(reward="continuous")
    p, q = policy.probabilities(base), policy.probabilities(moved)
    assert np.abs(p - q).max() <= tolerance(base, moved)
    # a sharp test: the probabilities are far from uniform, so a unit-dependent prior shows
    assert p.max() - p.min() > 0.3
    mask = np.array([True, False, True, True, True])
    pm, qm = policy.probabilities(base, mask), policy.probabilities(moved, mask)
    assert np.abs(pm - qm).max() <= tolerance(base, moved)


def test_the_old_unit_prior_did_depend_on_the_unit() -> None:
    """The explicit prior of the earlier default (mu0 0, b0 1) is kept as given, and moves."""
    xs = samples()
    fixed = ThompsonSampling(reward="continuous", mu0=0.0, b0=1.0)
    p = fixed.probabilities(stats_of(xs))
    q = fixed.probabilities(stats_of([100 * x for x in xs]))
    assert np.abs(p - q).max() > 0.05


@pytest.mark.parametrize(("a", "b"), AFFINE)
def test_conclusion_transforms_with_the_unit(a: float, b: float) -> None:
    xs = samples()
    base, moved = stats_of(xs), stats_of([a * x + b for x in xs])
    tol = tolerance(base, moved)
    s, t = posterior_summary(base, "continuous"), posterior_summary(moved, "continuous")
    assert np.abs(s.prob_best - t.prob_best).max() <= tol
    size = float(np.abs(s.mean).max() + np.abs(s.ci95_high - s.ci95_low).max()) + abs(b) / a
    assert np.abs((t.mean - b) / a - s.mean).max() <= tol * size
    assert np.abs((t.ci95_low - b) / a - s.ci95_low).max() <= tol * size
    assert np.abs((t.ci95_high - b) / a - s.ci95_high).max() <= tol * size
    assert np.abs(t.expected_loss / a - s.expected_loss).max() <= tol * size
    # the gain over an equal split is a reward total: it is multiplied by a (b cancels)
    decisions = base.n + np.array([5, 0, 3, 0, 2])
    g, se = reward_gain_vs_equal_split(base, decisions, reward_type="continuous")
    h, se_h = reward_gain_vs_equal_split(moved, decisions, reward_type="continuous")
    total = float(base.n.sum())
    assert abs(h / a - g) <= tol * size * total
    assert se_h / a == pytest.approx(se, rel=tol * size)


def test_engine_conclusion_in_hundreds_equals_units(engine: Engine) -> None:
    """The issue's case: every reward multiplied by 100 moved P(best) from 0.60 to 0.53.

    Rewards are about 300 at most, posterior scales at least ~1 (in hundreds): rho < 10^3,
    so the probabilities agree to 64 eps (1 + rho) < 1e-11.
    """
    xs = samples(8)[:3]
    for exp_id, (a, b) in {"units": (1.0, 0.0), "hundreds": (100.0, 3.0)}.items():
        engine.create_experiment(
            {
                "id": exp_id,
                "reward": {"type": "continuous"},
                "arms": [{"id": f"arm{i}"} for i in range(3)],
            }
        )
        items = [
            RewardItem(float(a * r + b), arm_id=f"arm{i}") for i, x in enumerate(xs) for r in x
        ]
        engine.reward(exp_id, items)
    u, h = engine.conclusion("units"), engine.conclusion("hundreds")
    pu = np.array([arm["prob_best"] for arm in u["arms"]])
    ph = np.array([arm["prob_best"] for arm in h["arms"]])
    assert np.abs(pu - ph).max() <= 1e-11
    for au, ah in zip(u["arms"], h["arms"], strict=True):
        assert ah["expected_loss"] == pytest.approx(100 * au["expected_loss"], rel=1e-9, abs=1e-12)
        assert ah["mean"] == pytest.approx(100 * au["mean"] + 3, rel=1e-12)
    # the propensities the service logs come from the same distribution at both scales
    engine.decide("units")
    engine.decide("hundreds")
    probs_u, probs_h = engine._live["units"].probs, engine._live["hundreds"].probs
    assert probs_u is not None and probs_h is not None
    assert np.abs(probs_u - probs_h).max() <= 1e-11


@pytest.mark.parametrize(("a", "b"), [(0.01, 0.0), (100.0, 0.0), (100.0, 5.0)])
def test_simulated_choices_are_identical_at_every_scale(a: float, b: float) -> None:
    """Common random numbers: the same seed draws the same noise and the same posterior
    t-variates, so with a unit-free prior every choice is the same and the regret scales."""
    means, horizon = np.array([0.0, 0.2, 0.5]), 400
    policy = ThompsonSampling(reward="continuous")
    ref = simulate(policy, Gaussian(means, sd=1.0), horizon, replications=20, seed=9)
    res = simulate(policy, Gaussian(a * means + b, sd=a), horizon, replications=20, seed=9)
    np.testing.assert_array_equal(res.stats.n, ref.stats.n)
    np.testing.assert_allclose(res.regret / a, ref.regret, rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(res.best_arm, ref.best_arm)
