"""Epsilon-greedy with a decaying ε: schedule values in closed form, exact propensities,
selection rates within binomial bounds, and the old parameters unchanged."""

from __future__ import annotations

import math

import numpy as np
import pytest

from octobandit.errors import InvalidInput
from octobandit.policies import ArmStats, EpsilonGreedy, make_policy

Z = 5.0  # 5-sigma binomial bounds: a correct policy fails one with probability < 1e-6


def expected_epsilon(decay: str, eps: float, rate: float, floor: float, t: float) -> float:
    if decay == "none":
        return eps
    g = {
        "exponential": math.exp(-rate * t),
        "inverse": 1.0 / (1.0 + rate * t),
        "linear": 1.0 - rate * t,
    }[decay]
    return max(floor, eps * g)


@pytest.mark.parametrize("decay", ["none", "exponential", "inverse", "linear"])
def test_schedule_values_match_the_closed_form(decay: str) -> None:
    p = EpsilonGreedy(epsilon=0.4, decay=decay, rate=0.002, floor=0.01)
    ts = [0, 1, 10, 100, 250, 499, 500, 1000, 10**6]
    got = p.epsilon_at(ts)
    want = [expected_epsilon(decay, 0.4, 0.002, 0.01, t) for t in ts]
    assert got == pytest.approx(want, rel=1e-14, abs=0)
    assert got[0] == 0.4  # every schedule starts at epsilon


def test_linear_reaches_the_floor_where_predicted() -> None:
    p = EpsilonGreedy(epsilon=0.5, decay="linear", rate=0.01, floor=0.1)
    t_floor = (1 - 0.1 / 0.5) / 0.01  # = 80
    assert p.epsilon_at(t_floor - 10) > 0.1
    assert p.epsilon_at(t_floor) == pytest.approx(0.1, abs=1e-15)
    assert p.epsilon_at([t_floor + 1, 1e9]).tolist() == [0.1, 0.1]


def test_inverse_decay_halves_epsilon_after_one_over_rate_rewards() -> None:
    p = EpsilonGreedy(epsilon=1.0, decay="inverse", rate=0.05)
    assert float(p.epsilon_at(20)) == pytest.approx(0.5, rel=1e-15)


@pytest.mark.parametrize("decay", ["exponential", "inverse", "linear"])
def test_probabilities_use_epsilon_at_t_over_enabled_arms(decay: str) -> None:
    p = EpsilonGreedy(epsilon=0.6, decay=decay, rate=0.004)
    stats = ArmStats.of(n=[100, 50, 30, 70], s=[30, 40, 10, 20])  # arm 1 has the best mean
    enabled = [True, True, False, True]
    t = 100 + 50 + 70  # the disabled arm's rewards do not count
    eps = expected_epsilon(decay, 0.6, 0.004, 0.0, t)
    probs = p.probabilities(stats, enabled)
    assert probs == pytest.approx([eps / 3, 1 - eps + eps / 3, 0.0, eps / 3], rel=1e-13)
    assert probs.sum() == pytest.approx(1.0, abs=1e-15)


def test_batch_rows_decay_independently() -> None:
    p = EpsilonGreedy(epsilon=0.5, decay="exponential", rate=0.01)
    n = np.array([[0.0, 0.0], [50.0, 50.0], [500.0, 500.0]])
    s = np.array([[0.0, 0.0], [10.0, 40.0], [100.0, 400.0]])
    probs = p.probabilities(ArmStats.of(n, s))
    for row, t in zip(probs, [0, 100, 1000], strict=True):
        eps = 0.5 * math.exp(-0.01 * t)
        if t == 0:  # all tied
            assert row.tolist() == [0.5, 0.5]
        else:
            assert row == pytest.approx([eps / 2, 1 - eps / 2], rel=1e-13)


def test_selection_rates_match_the_decayed_propensities() -> None:
    """One state, many draws: the best arm comes out at rate 1 - ε(t) + ε(t)/K
    within 5 binomial standard errors, and each draw reports that probability."""
    rng = np.random.default_rng(31)
    p = EpsilonGreedy(epsilon=0.9, decay="inverse", rate=0.01)
    stats = ArmStats.of(n=[100, 100, 100], s=[20, 60, 40])  # t = 300, ε = 0.9 / 4
    eps = 0.9 / 4
    n = 200_000
    c = p.choose(stats, rng, size=n)
    for arm, prob in ((0, eps / 3), (1, 1 - eps + eps / 3), (2, eps / 3)):
        rate = float(np.mean(c.arms == arm))
        assert abs(rate - prob) <= Z * math.sqrt(prob * (1 - prob) / n)
        assert np.allclose(c.propensities[c.arms == arm], prob, rtol=1e-14)


def test_default_parameters_are_unchanged() -> None:
    p = EpsilonGreedy()
    assert (p.epsilon, p.initial_value, p.decay) == (0.1, 0.0, "none")
    assert p.params() == {"type": "epsilon_greedy", "epsilon": 0.1, "initial_value": 0.0}
    # no decay: ε does not depend on t
    assert p.epsilon_at([0, 10**9]).tolist() == [0.1, 0.1]


def test_schedule_parameters_round_trip_through_the_spec() -> None:
    spec = {
        "type": "epsilon_greedy",
        "epsilon": 0.3,
        "decay": "linear",
        "rate": 1e-4,
        "floor": 0.02,
    }
    p = make_policy(spec)
    assert p.params() == {**spec, "initial_value": 0.0}
    assert make_policy(p.params()).params() == p.params()


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"decay": "cosine"}, "policy.decay"),
        ({"decay": 1}, "policy.decay"),
        ({"decay": "inverse", "rate": -0.1}, "policy.rate"),
        ({"decay": "inverse", "rate": float("inf")}, "policy.rate"),
        ({"decay": "inverse", "rate": "fast"}, "policy.rate"),
        ({"decay": "inverse", "floor": -0.01}, "policy.floor"),
        ({"decay": "inverse", "epsilon": 0.1, "floor": 0.2}, "policy.floor"),
        ({"decay": "inverse", "floor": True}, "policy.floor"),
    ],
)
def test_schedule_parameters_are_validated(params: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInput) as err:
        make_policy({"type": "epsilon_greedy", **params})
    assert err.value.field == field
