"""Stateful policies in the simulator: the loop it runs, and recovery after a change point."""

from __future__ import annotations

import numpy as np
import pytest

from octobandit.policies import POLICIES, ArmStats, make_policy
from octobandit.policies.base import sample_categorical
from octobandit.simulation import Bernoulli, PiecewiseBernoulli, simulate

STATEFUL = sorted(k for k, cls in POLICIES.items() if cls.stateful and not cls.contextual)


def test_the_new_families_are_stateful() -> None:
    assert {"discounted_thompson", "sliding_window_ucb", "exp3", "vdbe"} <= set(STATEFUL)


@pytest.mark.parametrize(
    "spec",
    [
        {"type": "exp3", "gamma": 0.2},
        {"type": "vdbe"},
        {"type": "sliding_window_ucb", "window": 30},
        {"type": "discounted_thompson", "half_life": 20},
    ],
)
def test_simulate_runs_the_state_loop(spec: dict[str, object]) -> None:
    """The same run by hand: init_state(R, K), then per step a draw (state_draw if the
    policy has one, else sample_categorical of state_probabilities), the rewards, and
    update_state with the chosen arms' propensities (NaN after state_draw) and time t."""
    env = PiecewiseBernoulli([[0.2, 0.6, 0.4], [0.6, 0.2, 0.4]], change_points=[40])
    r, k, horizon, seed = 16, 3, 90, 12
    policy = make_policy(spec)
    res = simulate(policy, env, horizon=horizon, replications=r, seed=seed, record_every=30)

    policy_rng, env_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    state = policy.init_state(r, k, 0)
    stats = ArmStats.zeros(k, (r,))
    enabled = np.ones(k, dtype=bool)
    draw = getattr(policy, "state_draw", None)
    regret = np.zeros(r)
    for t in range(horizon):
        mu = env.expected_rewards(t, None)
        if draw is not None:
            arms = draw(stats, enabled, state, policy_rng, contexts=None, time=float(t))
            props = np.full(r, np.nan)
        else:
            probs = policy.state_probabilities(stats, enabled, state, time=float(t))
            arms = sample_categorical(probs, policy_rng)
            props = probs[np.arange(r), arms]
        regret += mu.max() - mu[arms]
        rewards = env.rewards(arms, mu[arms], env_rng)
        stats = stats + ArmStats.zeros(k, (r,))  # fresh arrays
        stats.n[np.arange(r), arms] += 1
        stats.s[np.arange(r), arms] += rewards
        stats.ss[np.arange(r), arms] += rewards
        policy.update_state(
            state, arms, rewards, np.ones(r),
            propensities=props, contexts=None, times=np.full(r, float(t)),
        )  # fmt: skip
    np.testing.assert_allclose(res.regret[-1], regret, rtol=1e-12)
    np.testing.assert_array_equal(res.pulls, stats.n)


@pytest.mark.parametrize("kind", STATEFUL)
def test_stateful_runs_are_reproducible(kind: str) -> None:
    env = Bernoulli([0.3, 0.5, 0.4])
    a, b = (simulate({"type": kind}, env, horizon=200, replications=10, seed=3) for _ in range(2))
    np.testing.assert_array_equal(a.regret, b.regret)
    assert a.pulls.sum() == 200 * 10
    assert a.policy["type"] == kind


def test_discounted_thompson_recovers_after_the_best_arm_changes_and_thompson_does_not() -> None:
    """3 arms; at step 1,500 the best arm (0.7) and the second (0.4) swap. 64 replications,
    best-arm share per 50-step window with 95% bands. Discounted Thompson (half-life 100
    observations) is back above 80% (lower band) from the window ending 250 steps after
    the change, and stays there; stationary Thompson stays below 80% (upper band) for
    the 600 steps after the change. Measured (seed 5): discounted Thompson 0.91 before the
    change, 0.83 in the window ending 200 steps after it, 0.91 from 250 steps; Thompson
    at most 0.15."""
    cp, horizon = 1500, 2100
    env = PiecewiseBernoulli([[0.7, 0.4, 0.3], [0.4, 0.7, 0.3]], change_points=[cp])
    kw = {"horizon": horizon, "replications": 64, "seed": 5, "record_every": 50}
    dts = simulate({"type": "discounted_thompson", "half_life": 100}, env, **kw)
    ts = simulate({"type": "thompson"}, env, **kw)
    lo, _ = dts.best_arm_band
    _, hi = ts.best_arm_band
    after = dts.steps > cp
    recovered = dts.steps >= cp + 250
    assert (lo[recovered] > 0.8).all()
    assert (hi[after] < 0.8).all()
    # both were above 80% before the change
    before = (dts.steps > cp - 500) & (dts.steps <= cp)
    assert (dts.best_arm_band[0][before] > 0.8).all() and (ts.best_arm_band[0][before] > 0.8).all()
