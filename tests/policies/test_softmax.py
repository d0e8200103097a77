"""Softmax (Boltzmann) exploration: closed-form probabilities, annealing schedules,
sampling rates within binomial bounds."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from octobandit.errors import InvalidInput
from octobandit.policies import ArmStats, Softmax, make_policy

Z = 5.0


def softmax_closed_form(values: list[float], tau: float) -> list[float]:
    w = [math.exp(v / tau) for v in values]
    return [x / sum(w) for x in w]


@pytest.mark.parametrize("tau", [0.05, 0.1, 0.5, 2.0])
def test_probabilities_are_the_softmax_of_the_means(tau: float) -> None:
    stats = ArmStats.of(n=[10, 20, 40, 5], s=[3, 9, 24, 1])
    means = [0.3, 0.45, 0.6, 0.2]
    probs = Softmax(temperature=tau).probabilities(stats)
    assert probs == pytest.approx(softmax_closed_form(means, tau), rel=1e-12)


def test_large_rewards_do_not_overflow() -> None:
    # exp(1000 / 0.01) overflows; the shift by the largest mean makes it exact
    stats = ArmStats.of(n=[1, 1, 1], s=[1000.0, 1000.01, 999.0], ss=[1e6, 1e6, 1e6])
    probs = Softmax(temperature=0.01, reward="continuous").probabilities(stats)
    assert np.isfinite(probs).all()
    e = math.exp(-1.0)
    # 1000.01 - 1000 carries an absolute error of ~1e-13, i.e. ~1e-11 in the exponent
    assert probs == pytest.approx([e / (1 + e), 1 / (1 + e), 0.0], rel=1e-10, abs=1e-40)


def test_limits_greedy_and_uniform() -> None:
    stats = ArmStats.of(n=[10, 10, 10], s=[2, 5, 5])
    cold = Softmax(temperature=1e-4, min_temperature=1e-4).probabilities(stats)
    assert cold.tolist() == [0.0, 0.5, 0.5]  # e^-3000 underflows; ties share
    hot = Softmax(temperature=1e6).probabilities(stats)
    assert hot == pytest.approx([1 / 3] * 3, abs=1e-6)


def test_disabled_and_unobserved_arms() -> None:
    stats = ArmStats.of(n=[10, 0, 10], s=[9, 0, 2])
    probs = Softmax(temperature=0.5).probabilities(stats, [False, True, True])
    assert probs[0] == 0.0
    assert probs[1:] == pytest.approx(softmax_closed_form([0.0, 0.2], 0.5), rel=1e-12)
    probs = Softmax(temperature=0.5, initial_value=1.0).probabilities(stats)
    assert probs == pytest.approx(softmax_closed_form([0.9, 1.0, 0.2], 0.5), rel=1e-12)


@pytest.mark.parametrize(
    ("anneal", "g"),
    [
        ("none", lambda x: 1.0),
        ("exponential", lambda x: math.exp(-x)),
        ("inverse", lambda x: 1 / (1 + x)),
        ("linear", lambda x: 1 - x),
        ("log", lambda x: 1 / math.log(math.e + x)),
    ],
)
def test_annealed_temperature_closed_form(anneal: str, g: Callable[[float], float]) -> None:
    p = Softmax(temperature=0.8, anneal=anneal, rate=0.01, min_temperature=0.02)
    ts = [0, 1, 10, 50, 99, 100, 1000, 10**6]
    want = [0.8 if anneal == "none" else max(0.02, 0.8 * g(0.01 * t)) for t in ts]
    assert p.temperature_at(ts) == pytest.approx(want, rel=1e-14)
    # the probabilities use the temperature at t = observed rewards over enabled arms
    stats = ArmStats.of(n=[30, 20, 7], s=[12, 14, 7])
    tau = float(p.temperature_at(50))
    assert p.probabilities(stats, [True, True, False]) == pytest.approx(
        [*softmax_closed_form([0.4, 0.7], tau), 0.0], rel=1e-12
    )


def test_sampling_rates_match_the_probabilities() -> None:
    """The service path (one state, many draws) and the batch path (one draw per row)
    pick each arm at its softmax probability within 5 binomial standard errors."""
    rng = np.random.default_rng(4)
    p = Softmax(temperature=0.2)
    stats = ArmStats.of(n=[10, 10, 10], s=[3, 5, 6])
    probs = p.probabilities(stats)
    n = 200_000
    served = p.choose(stats, rng, size=n)
    batch = ArmStats(*(np.broadcast_to(a, (n, 3)) for a in (stats.n, stats.s, stats.ss)))
    sampled = p.choose(batch, rng).arms
    for arm in range(3):
        bound = Z * math.sqrt(probs[arm] * (1 - probs[arm]) / n)
        assert abs(float(np.mean(served.arms == arm)) - probs[arm]) <= bound
        assert abs(float(np.mean(sampled == arm)) - probs[arm]) <= bound
        assert np.all(served.propensities[served.arms == arm] == probs[arm])


def test_params_round_trip_and_validation() -> None:
    spec = {
        "type": "softmax",
        "temperature": 0.3,
        "initial_value": 0.5,
        "anneal": "log",
        "rate": 0.01,
        "min_temperature": 0.01,
    }
    assert make_policy(spec).params() == spec
    cases: list[tuple[dict[str, object], str]] = [
        ({"temperature": 0.0}, "policy.temperature"),
        ({"temperature": -1.0}, "policy.temperature"),
        ({"temperature": "hot"}, "policy.temperature"),
        ({"anneal": "cosine"}, "policy.anneal"),
        ({"rate": -1.0}, "policy.rate"),
        ({"min_temperature": 0.0}, "policy.min_temperature"),
        ({"temperature": 0.1, "min_temperature": 0.2}, "policy.min_temperature"),
        ({"initial_value": float("nan")}, "policy.initial_value"),
        ({"beta": 1.0}, "policy.beta"),
    ]
    for params, field in cases:
        with pytest.raises(InvalidInput) as err:
            make_policy({"type": "softmax", **params})
        assert err.value.field == field
