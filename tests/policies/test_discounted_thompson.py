"""Discounted Thompson sampling: decayed sums in closed form, seconds mode, posteriors."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from octobandit.errors import InvalidInput
from octobandit.policies import ArmStats, DiscountedThompson, ThompsonSampling, make_policy

NAN = np.array([np.nan])


def observe(
    p: DiscountedThompson,
    state: dict[str, np.ndarray],
    arm: int,
    reward: float,
    *,
    time: float = 0.0,
    count: float = 1.0,
) -> None:
    p.update_state(
        state,
        np.array([arm]),
        np.array([reward]),
        np.array([count]),
        propensities=NAN,
        contexts=None,
        times=np.array([time]),
    )


def test_parameters_are_validated_and_round_trip() -> None:
    p = make_policy({"type": "discounted_thompson", "half_life": 20, "half_life_unit": "seconds"})
    assert p.params() == {
        "type": "discounted_thompson",
        "half_life": 20.0,
        "half_life_unit": "seconds",
        "alpha": 1.0,
        "beta": 1.0,
        "mu0": None,  # empirical (unit-free) default
        "kappa0": 0.01,
        "a0": 1.0,
        "b0": None,
    }
    assert p.stateful and make_policy(p.params()).params() == p.params()
    for bad, field in [
        ({"half_life": 0}, "policy.half_life"),
        ({"half_life": float("inf")}, "policy.half_life"),
        ({"half_life": "10"}, "policy.half_life"),
        ({"half_life_unit": "steps"}, "policy.half_life_unit"),
        ({"alpha": -1}, "policy.alpha"),
        ({"kappa0": 0}, "policy.kappa0"),
    ]:
        with pytest.raises(InvalidInput) as err:
            make_policy({"type": "discounted_thompson", **bad})
        assert err.value.field == field


@pytest.mark.parametrize("h", [1.0, 7.5, 100.0])
def test_discounted_count_after_m_rewards_is_a_geometric_sum(h: float) -> None:
    """m rewards of 1 on one arm: n = s = ss = Σ_{i<m} 2^(-i/h), the others stay 0;
    vectorised over problems that play different arms."""
    p = DiscountedThompson(half_life=h)
    state = p.init_state(3, 4)
    arms = np.array([0, 2, 3])
    m = 40
    for _ in range(m):
        p.update_state(
            state, arms, np.ones(3), np.ones(3),
            propensities=np.full(3, np.nan), contexts=None, times=np.zeros(3),
        )  # fmt: skip
    expected = sum(2.0 ** (-i / h) for i in range(m))
    assert expected == pytest.approx((1 - 2 ** (-m / h)) / (1 - 2 ** (-1 / h)), rel=1e-12)
    for name in ("n", "s", "ss"):
        want = np.zeros((3, 4))
        want[np.arange(3), arms] = expected
        np.testing.assert_allclose(state[name], want, rtol=1e-12, atol=0)
    assert (state["t"] == m).all()


def test_other_arms_decay_while_one_is_played() -> None:
    """Arm 0 observed once (reward 0.5), then arm 1 m times: arm 0 keeps 2^(-m/h) of it."""
    h, m = 5.0, 12
    p = DiscountedThompson(half_life=h, reward="continuous")
    state = p.init_state(1, 2)
    observe(p, state, 0, 0.5)
    for _ in range(m):
        observe(p, state, 1, 2.0)
    w = 2.0 ** (-m / h)
    assert state["n"][0, 0] == pytest.approx(w, rel=1e-12)
    assert state["s"][0, 0] == pytest.approx(0.5 * w, rel=1e-12)
    assert state["ss"][0, 0] == pytest.approx(0.25 * w, rel=1e-12)
    geo = sum(2.0 ** (-i / h) for i in range(m))
    assert state["ss"][0, 1] == pytest.approx(4.0 * geo, rel=1e-12)


def test_a_batch_of_count_rewards_counts_as_count_observations() -> None:
    p = DiscountedThompson(half_life=4.0)
    state = p.init_state(1, 2)
    observe(p, state, 0, 1.0)
    observe(p, state, 1, 0.25, count=8.0)  # 8 rewards with mean 0.25
    assert state["n"][0].tolist() == pytest.approx([2.0 ** (-8 / 4), 8.0], rel=1e-12)
    assert state["s"][0, 1] == pytest.approx(2.0)
    assert state["t"][0].tolist() == [9.0, 9.0]


def test_seconds_mode_decays_by_elapsed_time_whatever_the_arrival_order() -> None:
    """Rewards at times 10, 25, 40 (arms 0, 1, 0): at time 40 each weighs 2^(-(40 - τ)/h),
    and every arrival order gives the same state (late rewards are weighted by their age)."""
    h = 15.0
    events = [(0, 1.0, 10.0), (1, 1.0, 25.0), (0, 0.0, 40.0)]
    p = DiscountedThompson(half_life=h, half_life_unit="seconds")
    states = []
    for order in itertools.permutations(events):
        state = p.init_state(1, 2)
        for arm, r, t in order:
            observe(p, state, arm, r, time=t)
        states.append(state)
    n0 = 2.0 ** (-30 / h) + 1.0
    n1 = 2.0 ** (-15 / h)
    for state in states:
        np.testing.assert_allclose(state["n"], [[n0, n1]], rtol=1e-12)
        np.testing.assert_allclose(state["s"], [[2.0 ** (-30 / h), n1]], rtol=1e-12)
        assert state["t"].tolist() == [[40.0, 40.0]]


def test_seconds_mode_decays_virtually_to_the_decision_time() -> None:
    h = 30.0
    p = DiscountedThompson(half_life=h, half_life_unit="seconds", alpha=2.0, beta=0.5)
    state = p.init_state(1, 3)
    for arm, r, t in [(0, 1.0, 0.0), (0, 1.0, 5.0), (1, 0.0, 8.0), (2, 1.0, 9.0), (1, 1.0, 10.0)]:
        observe(p, state, arm, r, time=t)
    before = {k: v.copy() for k, v in state.items()}
    at = 100.0
    f = 2.0 ** (-(at - 10.0) / h)
    decayed = p.decayed_stats(state, at)
    np.testing.assert_allclose(decayed.n, state["n"] * f, rtol=1e-12)
    probs = p.state_probabilities(ArmStats.zeros(3), None, state, time=at)
    ref = ThompsonSampling(alpha=2.0, beta=0.5).probabilities(
        ArmStats(state["n"] * f, state["s"] * f, state["ss"] * f)
    )
    np.testing.assert_allclose(probs, ref, atol=1e-12)
    # the decision leaves the state alone, and never decays forwards past the state's time
    assert all((state[k] == before[k]).all() for k in state)
    earlier = p.state_probabilities(ArmStats.zeros(3), None, state, time=3.0)
    np.testing.assert_allclose(
        earlier, p.state_probabilities(ArmStats.zeros(3), None, state, time=10.0), atol=0
    )
    # observations mode ignores the decision time
    q = DiscountedThompson(half_life=h)
    np.testing.assert_allclose(
        q.state_probabilities(ArmStats.zeros(3), None, state, time=1e9),
        q.thompson().probabilities(ArmStats(state["n"], state["s"], state["ss"])),
        atol=0,
    )


@pytest.mark.parametrize("reward", ["binary", "continuous"])
def test_probabilities_are_thompson_on_the_discounted_statistics(reward: str) -> None:
    rng = np.random.default_rng(5)
    p = DiscountedThompson(half_life=10.0, reward=reward, mu0=0.5, kappa0=0.1)
    state = p.init_state(4, 3)
    for _ in range(60):
        arms = rng.integers(0, 3, size=4)
        r = rng.random(4) < 0.4 + 0.2 * arms if reward == "binary" else rng.normal(arms, 1.0)
        p.update_state(
            state, arms, r.astype(float), np.ones(4),
            propensities=np.full(4, np.nan), contexts=None, times=np.zeros(4),
        )  # fmt: skip
    mask = np.array([[True, True, True], [True, False, True], [False, True, True], [1, 1, 1]])
    probs = p.state_probabilities(ArmStats.zeros(3), mask.astype(bool), state)
    stats = ArmStats(state["n"], state["s"], state["ss"])
    ts = ThompsonSampling(reward=reward, mu0=0.5, kappa0=0.1)
    np.testing.assert_allclose(probs, ts.probabilities(stats, mask.astype(bool)), atol=0)
    assert probs.shape == (4, 3)
    assert probs.sum(axis=1) == pytest.approx(np.ones(4), abs=1e-9)
    assert probs[1, 1] == 0 and probs[2, 0] == 0


def test_posterior_draws_follow_the_reported_probabilities() -> None:
    """state_draw (used by the simulator) picks each arm at the P(best) rate, within
    5 binomial standard errors."""
    p = DiscountedThompson(half_life=20.0)
    one = p.init_state(1, 3)
    for arm, r in [(0, 1.0), (1, 1.0), (1, 0.0), (2, 1.0), (0, 0.0), (2, 1.0), (1, 1.0)]:
        observe(p, one, arm, r)
    probs = p.state_probabilities(ArmStats.zeros(3), None, one)[0]
    n = 100_000
    many = {k: np.repeat(v, n, axis=0) for k, v in one.items()}
    arms = p.state_draw(ArmStats.zeros(3), None, many, np.random.default_rng(3))
    for arm in range(3):
        bound = 5 * math.sqrt(probs[arm] * (1 - probs[arm]) / n)
        assert abs(float(np.mean(arms == arm)) - probs[arm]) <= bound


def test_a_grown_state_is_a_valid_state_with_one_more_arm() -> None:
    """init_state(1, K) + init_state(1, 1) along axis 1: the new arm starts empty and,
    after the next observation, the state is the one of a K+1-arm problem from the start."""
    k = 3
    for unit in ("observations", "seconds"):
        p = DiscountedThompson(half_life=6.0, half_life_unit=unit)
        grown, full = p.init_state(1, k), p.init_state(1, k + 1)
        for i, (arm, r) in enumerate([(0, 1.0), (2, 0.0), (1, 1.0), (0, 1.0)]):
            observe(p, grown, arm, r, time=10.0 + i)
            observe(p, full, arm, r, time=10.0 + i)
        extra = p.init_state(1, 1)
        grown = {name: np.concatenate([v, extra[name]], axis=1) for name, v in grown.items()}
        assert all(v.shape == (1, k + 1) for v in grown.values())
        probs = p.state_probabilities(ArmStats.zeros(k + 1), None, grown, time=20.0)
        np.testing.assert_allclose(
            probs, p.state_probabilities(ArmStats.zeros(k + 1), None, full, time=20.0), atol=0
        )
        for arm, r in [(k, 1.0), (1, 0.0)]:
            observe(p, grown, arm, r, time=30.0)
            observe(p, full, arm, r, time=30.0)
        for name in grown:
            np.testing.assert_allclose(grown[name], full[name], rtol=1e-13, atol=0)


def test_without_a_state_every_enabled_arm_is_equally_likely() -> None:
    p = DiscountedThompson()
    probs = p.probabilities(ArmStats.of(n=[50, 5, 0], s=[40, 1, 0]), [True, True, False])
    assert probs == pytest.approx([0.5, 0.5, 0.0], abs=1e-9)
    assert p.probabilities(ArmStats.zeros(2, (4,))).shape == (4, 2)
