"""Delayed feedback in the simulator: delays, attribution windows, and the alternatives.

Statistical checks compare with closed forms derived here, for uniform play (ε-greedy
with ε = 1 chooses every arm with probability 1/K whatever the statistics, so the
choices of a seed are the same in every feedback mode). Decision ``t`` of ``H`` then
adds an independent Bernoulli indicator to each count, so the counts' means and
variances are sums over ``t``: the tolerances are 5 standard deviations of those sums.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from octobandit.policies import EpsilonGreedy, Policy, ThompsonSampling, make_policy
from octobandit.policies.base import ArmStats, FloatArray
from octobandit.simulation import (
    Bernoulli,
    Gaussian,
    LogisticContextual,
    SimulationResult,
    simulate,
)
from octobandit.simulation.delays import Exponential, Fixed
from octobandit.simulation.runner import _Calendar

Z = 5.0
UNIFORM = EpsilonGreedy(epsilon=1.0)


def arrived(m: float, j: np.ndarray) -> np.ndarray:
    """P(floor(X) <= j) for X ~ Exp(mean m): P(X < j + 1)."""
    return 1.0 - np.exp(-(j + 1.0) / m)


def close(observed: float, expected: float, variance: float, replications: int) -> bool:
    """Mean over replications within Z standard errors of its expectation."""
    return abs(observed - expected) <= Z * math.sqrt(variance / replications)


@dataclass(frozen=True, slots=True)
class Recorder(Policy):
    """Always chooses arm 0 and records the (n, s) it is shown at every step."""

    type = "recorder"

    reward: str = "binary"
    seen: list[tuple[FloatArray, FloatArray]] = field(default_factory=list)

    def probabilities(self, stats: ArmStats, enabled: Any = None) -> FloatArray:
        self.seen.append((stats.n.copy(), stats.s.copy()))
        p = np.zeros(stats.n.shape)
        p[..., 0] = 1.0
        return p


# -- delays ------------------------------------------------------------------------


def test_exponential_delays_are_whole_steps_of_an_exponential() -> None:
    """P(D < w) = 1 - exp(-w/m) for whole w (floor keeps it exact), and
    E[D] = 1 / (exp(1/m) - 1) (a geometric count of whole steps)."""
    m, size = 20.0, 200_000
    d = Exponential(m).sample(np.random.default_rng(3), size)
    assert d.dtype.kind == "i" and d.min() >= 0
    for w in (1, 10, 40):
        p = 1.0 - math.exp(-w / m)
        assert Exponential(m).within(w) == pytest.approx(p, rel=1e-12)
        assert abs((d < w).mean() - p) <= Z * math.sqrt(p * (1 - p) / size)
    p1 = 1.0 - math.exp(-1.0 / m)  # geometric: P(D = j) = (1 - p1)^j p1
    mean, sd = (1 - p1) / p1, math.sqrt(1 - p1) / p1
    assert abs(d.mean() - mean) <= Z * sd / math.sqrt(size)


def test_fixed_delays_and_the_arrival_helpers() -> None:
    assert Fixed(4).sample(np.random.default_rng(0), 3).tolist() == [4, 4, 4]
    assert Fixed(4).arrived(np.arange(6)).tolist() == [0, 0, 0, 0, 1, 1]
    assert Fixed(0).within(1) == 1.0 and Fixed(4).within(4) == 0.0
    # (1/H) Σ_{j<H} P(D <= j): the continuous approximation 1 - (m/H)(1 - e^{-H/m})
    # differs from the whole-step sum by at most 1/m (here m = 50, H = 400)
    exact = float(np.mean(arrived(50.0, np.arange(400))))
    assert Exponential(50).mean_arrived(400) == pytest.approx(exact, rel=1e-12)
    assert abs(exact - (1 - 50 / 400 * (1 - math.exp(-8)))) <= 1 / 50
    assert Fixed(10).mean_arrived(40) == pytest.approx(30 / 40)


@pytest.mark.parametrize(
    "make",
    [
        lambda: Exponential(0),
        lambda: Exponential(float("nan")),
        lambda: Exponential(-1),
        lambda: Fixed(-1),
        lambda: Fixed(1.5),  # type: ignore[arg-type]
        lambda: Fixed(True),
        lambda: Bernoulli([0.5], delay="exponential"),  # type: ignore[arg-type]
    ],
)
def test_bad_delays_are_refused(make: Callable[[], object]) -> None:
    with pytest.raises(ValueError):
        make()


def test_the_delay_is_part_of_the_description_only_when_given() -> None:
    assert Bernoulli([0.5]).describe() == {"type": "bernoulli", "means": [0.5]}
    assert Bernoulli([0.5], delay=Fixed(3)).describe()["delay"] == {"type": "fixed", "steps": 3}
    env = Bernoulli.with_gap(3, best=0.2, gap=0.1, delay=Exponential(10))
    assert env.describe()["delay"] == {"type": "exponential", "mean": 10.0}
    assert "delay" not in LogisticContextual([[0.0, 1.0], [0.0, -1.0]]).describe()
    logistic = LogisticContextual([[0.0, 1.0]], delay=Fixed(1))
    assert logistic.describe()["delay"] == {"type": "fixed", "steps": 1}


def test_the_calendar_gives_every_conversion_back_at_its_step() -> None:
    """Random arrivals, near and far (beyond the dense ring), against a plain count."""
    rng = np.random.default_rng(5)
    horizon, size = 2000, 7
    cal = _Calendar(size, block=16)
    expected = np.zeros((horizon + 500, size))
    for t in range(horizon):
        steps = t + rng.integers(0, 300, rng.integers(0, 5))
        flat = rng.integers(0, size, steps.size)
        np.add.at(expected, (steps, flat), 1.0)
        cal.add(steps, flat)
        assert cal.take(t).tolist() == expected[t].tolist()
    assert cal.near.shape == (32, size)


# -- modes -------------------------------------------------------------------------


def test_immediate_feedback_ignores_the_delay_and_is_unchanged() -> None:
    a = simulate(ThompsonSampling(), Bernoulli([0.3, 0.2]), 500, 30, seed=2)
    b = simulate(ThompsonSampling(), Bernoulli([0.3, 0.2], delay=Exponential(100)), 500, 30, seed=2)
    assert np.array_equal(a.regret, b.regret) and np.array_equal(a.stats.s, b.stats.s)
    assert b.feedback is None and b.chosen is None and b.pending is None
    assert np.array_equal(b.pulls, b.stats.n)
    assert "feedback" not in json.loads(b.to_json())


@pytest.mark.parametrize("delay", [None, Fixed(0)])
def test_a_one_step_window_without_delay_is_immediate_feedback(delay: Fixed | None) -> None:
    """W = 1, D = 0: a positive and a window's close both fall at the end of the decision's
    step, so the policy sees what it sees with immediate feedback: the same run."""
    env = Bernoulli([0.3, 0.25, 0.1], delay=delay)
    a = simulate(ThompsonSampling(), Bernoulli([0.3, 0.25, 0.1]), 800, 40, seed=9)
    b = simulate(ThompsonSampling(), env, 800, 40, seed=9, feedback="window", window=1)
    assert np.array_equal(a.regret, b.regret)
    for f in ("n", "s", "ss"):
        assert np.array_equal(getattr(a.stats, f), getattr(b.stats, f))
    assert b.pending is not None and b.late is not None
    assert (b.pending == 0).all() and (b.late == 0).all()


def test_a_longer_window_without_delay_defers_every_outcome_to_its_close() -> None:
    """Same choices (uniform play, same seed): every decision is counted when its window
    closes, positive or not, so at the horizon exactly the decisions of the last W - 1
    steps are pending, and the counted ones are immediate feedback's first H - W + 1."""
    env, w, h = Bernoulli([0.6, 0.3, 0.1]), 50, 500
    a = simulate(UNIFORM, env, h - w + 1, 100, seed=4)  # the same first H - W + 1 steps
    b = simulate(UNIFORM, env, h, 100, seed=4, feedback="window", window=w)
    full = simulate(UNIFORM, env, h, 100, seed=4)
    assert np.array_equal(full.regret, b.regret)
    assert b.pending is not None
    assert (b.pending.sum(axis=1) == w - 1).all()
    for f in ("n", "s", "ss"):
        assert np.array_equal(getattr(b.stats, f), getattr(a.stats, f))
    assert np.array_equal(b.stats.n + b.pending, full.stats.n)


@pytest.mark.parametrize(
    ("mode", "delay", "shown"),
    [
        # decision t is counted at the end of step t + W - 1: seen from step t + W
        ("window", None, lambda u: max(0, u - 5 + 1)),
        ("window", Fixed(2), lambda u: max(0, u - 5 + 1)),
        # eager: a conversion at the end of step t + D, seen from step t + D + 1
        ("window_eager", Fixed(2), lambda u: max(0, u - 2)),
    ],
)
def test_what_the_policy_sees_at_each_step(
    mode: str, delay: Fixed | None, shown: Callable[[int], int]
) -> None:
    """μ = 1, W = 5: the (n, s) the policy is shown at step u, exactly."""
    policy = Recorder()
    env = Bernoulli([1.0, 0.0], delay=delay)
    simulate(policy, env, 20, 2, seed=0, feedback=mode, window=5)
    assert len(policy.seen) == 20
    for u, (n, s) in enumerate(policy.seen):
        assert n[:, 0].tolist() == s[:, 0].tolist() == [shown(u)] * 2, u
        assert (n[:, 1] == 0).all()


def test_eager_window_without_delay_only_defers_the_failures() -> None:
    """The comparison mode: every positive is counted at once, as with immediate
    feedback; a failure only when its window closes, so the decisions of the last
    W - 1 steps without a positive are pending at the horizon."""
    env, w = Bernoulli([0.6, 0.3, 0.1]), 50
    a = simulate(UNIFORM, env, 500, 100, seed=4)
    b = simulate(UNIFORM, env, 500, 100, seed=4, feedback="window_eager", window=w)
    assert np.array_equal(a.regret, b.regret)
    assert b.pending is not None
    assert np.array_equal(b.stats.s, a.stats.s)
    assert np.array_equal(b.stats.n + b.pending, a.stats.n)
    per_run = b.pending.sum(axis=1)
    assert per_run.max() <= w - 1
    # each of the last W - 1 decisions is pending with probability 1 - mean(μ)
    p = 1 - np.mean([0.6, 0.3, 0.1])
    assert close(per_run.mean(), (w - 1) * p, (w - 1) * p * (1 - p), 100)


def test_failure_until_reward_counts_every_decision_and_its_conversions_so_far() -> None:
    """n = pulls; s counts the conversions arrived by the horizon:
    E[s_a] = (μ_a/K) Σ_{j<H} P(D <= j) = (μ_a/K) · H · mean_arrived(H)."""
    mu, m, h, r = [0.6, 0.3], 100.0, 400, 500
    env = Bernoulli(mu, delay=Exponential(m))
    res = simulate(UNIFORM, env, h, r, seed=11, feedback="failure_until_reward")
    assert np.array_equal(res.stats.n, res.pulls)
    assert res.pending is not None and (res.pending == 0).all()
    for a, mu_a in enumerate(mu):
        p = mu_a / 2 * arrived(m, np.arange(h))
        assert close(res.stats.s[:, a].mean(), p.sum(), (p * (1 - p)).sum(), r)
        assert p.sum() == pytest.approx(mu_a / 2 * h * Exponential(m).mean_arrived(h))


def test_window_counts_match_their_closed_forms() -> None:
    """Window W, default 0, delays Exp(m), horizon H. The H - W + 1 decisions t <= H - W
    are closed: each counted once, as a conversion when D < W (probability
    q = 1 - e^{-W/m}), else as a failure. The W - 1 younger ones are pending, whatever
    has arrived. Late: closed decisions whose conversion arrived after the window, by
    the horizon."""
    mu, m, w, h, r = [0.6, 0.3], 100.0, 150, 600, 500
    env = Bernoulli(mu, delay=Exponential(m))
    res = simulate(UNIFORM, env, h, r, seed=12, feedback="window", window=w)
    assert res.pending is not None and res.late is not None
    assert np.array_equal(res.stats.n + res.pending, res.pulls)
    closed = h - w + 1
    assert (res.stats.n.sum(axis=1) == closed).all()
    assert (res.pending.sum(axis=1) == w - 1).all()
    assert np.array_equal(res.stats.ss, res.stats.s)  # rewards of 0 and 1
    q = 1 - math.exp(-w / m)
    ages = np.arange(w, h)  # closed decisions of age j >= W
    for a, mu_a in enumerate(mu):
        p = mu_a / 2 * q
        assert close(res.stats.s[:, a].mean(), closed * p, closed * p * (1 - p), r)
        assert close(res.stats.n[:, a].mean(), closed / 2, closed / 4, r)
        p_late = mu_a / 2 * (arrived(m, ages) - q)
        assert close(res.late[:, a].mean(), p_late.sum(), (p_late * (1 - p_late)).sum(), r)


@pytest.mark.parametrize("default", [0.0, 0.25])
def test_window_estimates_are_unbiased_for_mu_times_p_on_time(default: float) -> None:
    """Uniform play: given n, an arm's s counts n independent outcomes, each 1 with
    probability p = μ q and the default otherwise (q = P(D < W)), so the pooled estimate
    at the horizon lies within binomial bounds of μ q + (1 - μ q) · default."""
    mu, m, w, h, r = [0.6, 0.3, 0.05], 100.0, 100, 1000, 400
    env = Bernoulli(mu, delay=Exponential(m))
    res = simulate(UNIFORM, env, h, r, seed=21, feedback="window", window=w, default=default)
    q = Exponential(m).within(w)
    for a, mu_a in enumerate(mu):
        p = mu_a * q
        n = res.stats.n[:, a].sum()
        expected = p + (1 - p) * default
        sd = (1 - default) * math.sqrt(p * (1 - p) / n)
        assert abs(res.stats.s[:, a].sum() / n - expected) <= Z * sd


def test_pending_conversions_are_not_counted() -> None:
    """Same seed, uniform play: both window modes see the same choices and the same
    delays. The eager mode has also counted, as successes, the conversions of open
    windows that have already arrived; the service's mode has not: the difference is
    exactly those (positive in most runs), in n and in s alike."""
    env = Bernoulli([0.6, 0.3], delay=Exponential(20))
    w, h, r = 100, 400, 200
    new = simulate(UNIFORM, env, h, r, seed=5, feedback="window", window=w)
    old = simulate(UNIFORM, env, h, r, seed=5, feedback="window_eager", window=w)
    assert np.array_equal(new.pulls, old.pulls)
    assert (new.stats.n.sum(axis=1) == h - w + 1).all()  # closed windows only
    extra = old.stats.n - new.stats.n
    assert np.array_equal(extra, old.stats.s - new.stats.s)  # successes only, no failures
    assert (extra >= 0).all() and (extra.sum(axis=1) > 0).mean() > 0.9
    # the young decisions converted by now: E = Σ_{j<W-1} (μ̄) P(D <= j), μ̄ = 0.45
    young = 0.45 * arrived(20.0, np.arange(w - 1))
    assert close(extra.sum(axis=1).mean(), young.sum(), (young * (1 - young)).sum(), r)


def test_eager_window_counts_match_their_closed_forms() -> None:
    """The comparison mode, window W, default 0, delays Exp(m), horizon H. Decisions
    t <= H - W are closed: each counted once, with a conversion when D < W (probability
    q = 1 - e^{-W/m}). The W - 1 younger ones are counted only if their conversion has
    arrived (age j = H - 1 - t, probability P(D <= j)). Late: closed decisions whose
    conversion arrived after the window, by the horizon."""
    mu, m, w, h, r = [0.6, 0.3], 100.0, 150, 600, 500
    env = Bernoulli(mu, delay=Exponential(m))
    res = simulate(UNIFORM, env, h, r, seed=12, feedback="window_eager", window=w)
    assert res.pending is not None and res.late is not None
    # never counted twice, never lost: counted + pending = chosen, for every run and arm
    assert np.array_equal(res.stats.n + res.pending, res.pulls)
    q = 1 - math.exp(-w / m)
    closed = h - w + 1
    young = arrived(m, np.arange(w - 1))  # ages 0 .. W - 2
    ages = np.arange(w, h)  # closed decisions of age j >= W
    for a, mu_a in enumerate(mu):
        p_closed, p_young = mu_a / 2 * q, mu_a / 2 * young
        e_s = closed * p_closed + p_young.sum()
        v_s = closed * p_closed * (1 - p_closed) + (p_young * (1 - p_young)).sum()
        assert close(res.stats.s[:, a].mean(), e_s, v_s, r)
        e_n = closed / 2 + p_young.sum()
        v_n = closed / 4 + (p_young * (1 - p_young)).sum()
        assert close(res.stats.n[:, a].mean(), e_n, v_n, r)
        p_late = mu_a / 2 * (arrived(m, ages) - q)
        assert close(res.late[:, a].mean(), p_late.sum(), (p_late * (1 - p_late)).sum(), r)


def test_positives_only_counts_conversions_alone() -> None:
    """Every counted reward is a 1: s = n, estimates 1 wherever something was counted;
    E[n_a] = (μ_a/K) Σ_{j<H} P(D <= j)."""
    mu, m, h, r = [0.6, 0.3], 100.0, 400, 500
    env = Bernoulli(mu, delay=Exponential(m))
    res = simulate(UNIFORM, env, h, r, seed=13, feedback="positives_only")
    assert np.array_equal(res.stats.s, res.stats.n)
    est = res.estimates
    assert (est[res.stats.n > 0] == 1.0).all() and np.isnan(est[res.stats.n == 0]).all()
    for a, mu_a in enumerate(mu):
        p = mu_a / 2 * arrived(m, np.arange(h))
        assert close(res.stats.n[:, a].mean(), p.sum(), (p * (1 - p)).sum(), r)


def fixed_runs(fixed_arm: Callable[..., Policy], mu: float, d: int, **kw: Any) -> SimulationResult:
    return simulate(fixed_arm(arm=0), Bernoulli([mu], delay=Fixed(d)), 3000, 3, seed=1, **kw)


def test_fixed_delays_give_exact_counts(fixed_arm: Callable[..., Policy]) -> None:
    """Every decision converts (μ = 1) exactly d = 700 steps later (beyond the calendar's
    dense ring): the counts at H = 3000 are known exactly."""
    h, d = 3000, 700
    res = fixed_runs(fixed_arm, 1.0, d, feedback="window", window=1000)
    # converted within the window, counted when it closes: decisions t <= H - W are
    # counted, the W - 1 younger ones pending (even the 300 whose conversion arrived)
    assert res.stats.n.tolist() == res.stats.s.tolist() == [[h - 1000 + 1]] * 3
    assert res.pending.tolist() == [[1000 - 1]] * 3 and res.late.tolist() == [[0]] * 3
    res = fixed_runs(fixed_arm, 1.0, d, feedback="window_eager", window=1000)
    # eager: the conversions are counted as they arrive, decisions t <= H - 1 - d
    assert res.stats.n.tolist() == res.stats.s.tolist() == [[h - d]] * 3
    assert res.pending.tolist() == [[d]] * 3 and res.late.tolist() == [[0]] * 3
    res = fixed_runs(fixed_arm, 1.0, d, feedback="window", window=500, default=0.25)
    # every conversion is late: the H - W + 1 closed decisions count the default
    assert res.stats.n.tolist() == [[h - 500 + 1]] * 3
    assert res.stats.s.tolist() == [[(h - 500 + 1) * 0.25]] * 3
    assert res.stats.ss.tolist() == [[(h - 500 + 1) * 0.0625]] * 3
    assert res.pending.tolist() == [[500 - 1]] * 3 and res.late.tolist() == [[h - d]] * 3
    res = fixed_runs(fixed_arm, 1.0, d, feedback="window_eager", window=500, default=0.25)
    assert res.stats.n.tolist() == [[h - 500 + 1]] * 3
    assert res.stats.s.tolist() == [[(h - 500 + 1) * 0.25]] * 3
    res = fixed_runs(fixed_arm, 1.0, d, feedback="failure_until_reward")
    assert res.stats.n.tolist() == [[h]] * 3 and res.stats.s.tolist() == [[h - d]] * 3
    res = fixed_runs(fixed_arm, 1.0, d, feedback="positives_only")
    assert res.stats.n.tolist() == res.stats.s.tolist() == [[h - d]] * 3
    res = fixed_runs(fixed_arm, 0.0, d, feedback="window", window=1000)
    assert res.stats.n.tolist() == [[h - 1000 + 1]] * 3 and (res.stats.s == 0).all()
    assert (res.regret == 0).all()  # one arm: the feedback never changes the regret


@pytest.mark.parametrize("mode", ["window", "window_eager"])
@pytest.mark.parametrize("d", [29, 30])
def test_a_conversion_is_on_time_only_strictly_inside_the_window(
    fixed_arm: Callable[..., Policy], d: int, mode: str
) -> None:
    """W = 30: a delay of 29 steps is counted as a conversion, one of 30 is late."""
    env = Bernoulli([1.0], delay=Fixed(d))
    res = simulate(fixed_arm(arm=0), env, 200, 2, seed=0, feedback=mode, window=30)
    assert res.late is not None
    if d < 30:
        assert (res.stats.s == res.stats.n).all() and (res.late == 0).all()
    else:
        assert (res.stats.s == 0).all() and (res.late == 200 - d).all()


@pytest.mark.parametrize("mode", ["window", "window_eager"])
def test_delayed_fields_survive_workers(mode: str) -> None:
    env = Bernoulli([0.5, 0.2, 0.1], delay=Exponential(30))
    res = simulate(ThompsonSampling(), env, 300, 10, seed=3, feedback=mode, window=40, workers=2)
    assert res.feedback == {"mode": mode, "window": 40, "default": 0.0}
    assert res.chosen is not None and res.pending is not None and res.late is not None
    assert res.chosen.shape == res.pending.shape == res.late.shape == (10, 3)
    assert np.array_equal(res.stats.n + res.pending, res.pulls)
    assert (res.pulls.sum(axis=1) == 300).all()
    out = json.loads(res.to_json())
    assert out["feedback"]["mode"] == mode
    assert sum(out["mean_counted"]) + sum(out["mean_pending"]) == pytest.approx(300)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"feedback": "later"}, "feedback must be one of"),
        ({"feedback": "window"}, "needs window"),
        ({"feedback": "window", "window": 0}, "needs window"),
        ({"feedback": "window", "window": True}, "needs window"),
        ({"feedback": "window", "window": 10, "default": float("nan")}, r"in \[0, 1\]"),
        ({"feedback": "window", "window": 10, "default": 1.5}, r"in \[0, 1\]"),
        ({"feedback": "window", "window": 10, "default": -0.1}, r"in \[0, 1\]"),
        ({"feedback": "window_eager"}, "needs window"),
        ({"feedback": "window_eager", "window": 10, "default": 2.0}, r"in \[0, 1\]"),
        ({"window": 10}, "only for feedback='window'"),
        ({"feedback": "positives_only", "default": 1.0}, "only for feedback='window'"),
    ],
)
def test_bad_feedback_settings_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        simulate(ThompsonSampling(), Bernoulli([0.5, 0.4]), 10, 2, **kwargs)  # type: ignore[arg-type]


def test_delayed_feedback_needs_binary_rewards_and_a_stateless_policy() -> None:
    with pytest.raises(ValueError, match="binary environment"):
        simulate({"type": "thompson"}, Gaussian([1.0, 0.0]), 10, 2, feedback="positives_only")
    with pytest.raises(ValueError, match="stateless policies only"):
        simulate(
            make_policy({"type": "discounted_thompson"}),
            Bernoulli([0.5, 0.4]),
            10,
            2,
            feedback="window",
            window=5,
        )
