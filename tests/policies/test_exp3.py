"""EXP3: closed-form probabilities, importance-weighted updates, a grown state."""

from __future__ import annotations

import math

import numpy as np
import pytest

from octobandit.errors import InvalidInput
from octobandit.policies import EXP3, ArmStats, make_policy


def update(p: EXP3, state: dict[str, np.ndarray], arm: int, r: float, prop: float) -> None:
    p.update_state(
        state,
        np.array([arm]),
        np.array([r]),
        np.array([1.0]),
        propensities=np.array([prop]),
        contexts=None,
        times=np.zeros(1),
    )


def closed_form(gamma: float, gains: list[float]) -> list[float]:
    k = len(gains)
    w = [math.exp(gamma * g / k) for g in gains]
    return [(1 - gamma) * x / sum(w) + gamma / k for x in w]


def test_parameters_are_validated_and_round_trip() -> None:
    p = make_policy({"type": "exp3", "gamma": 0.25})
    assert p.params() == {"type": "exp3", "gamma": 0.25}
    assert make_policy({"type": "exp3"}).params() == {"type": "exp3", "gamma": 0.1}
    for bad in (0, -0.1, 1.5, "0.1", float("nan")):
        with pytest.raises(InvalidInput) as err:
            make_policy({"type": "exp3", "gamma": bad})
        assert err.value.field == "policy.gamma"


def test_probabilities_closed_form_with_a_mask() -> None:
    p = EXP3(gamma=0.2)
    gains = np.array([[3.0, 10.0, 0.0, 7.0], [1.0, 1.0, 1.0, 1.0]])
    state = {"gain": gains}
    probs = p.state_probabilities(ArmStats.zeros(4), None, state)
    assert probs[0].tolist() == pytest.approx(closed_form(0.2, [3, 10, 0, 7]), rel=1e-12)
    assert probs[1].tolist() == pytest.approx([0.25] * 4, rel=1e-12)
    # a disabled arm gets 0 and K counts the enabled arms only
    mask = np.array([True, False, True, True])
    probs = p.state_probabilities(ArmStats.zeros(4), mask, state)
    assert probs[0, 1] == 0.0
    assert probs[0, mask].tolist() == pytest.approx(closed_form(0.2, [3, 0, 7]), rel=1e-12)
    assert probs.sum(axis=1) == pytest.approx([1.0, 1.0], abs=1e-12)


def test_huge_gains_do_not_overflow() -> None:
    p = EXP3(gamma=0.1)
    probs = p.state_probabilities(ArmStats.zeros(3), None, {"gain": np.array([[1e8, 2e8, 0.0]])})
    assert np.isfinite(probs).all()
    assert probs[0].tolist() == pytest.approx([0.1 / 3, 0.9 + 0.1 / 3, 0.1 / 3], rel=1e-12)


def test_updates_add_importance_weighted_rewards() -> None:
    """x / p with the logged propensity; the current probability when it is unknown (NaN);
    a report of ``count`` rewards adds count · x / p."""
    p = EXP3(gamma=0.3)
    state = p.init_state(1, 3)
    update(p, state, 1, 1.0, 0.25)
    assert state["gain"].tolist() == [[0.0, 4.0, 0.0]]
    current = closed_form(0.3, [0.0, 4.0, 0.0])
    update(p, state, 0, 0.5, np.nan)
    assert state["gain"][0, 0] == pytest.approx(0.5 / current[0], rel=1e-12)
    p.update_state(
        state, np.array([2]), np.array([0.5]), np.array([4.0]),
        propensities=np.array([0.5]), contexts=None, times=np.zeros(1),
    )  # fmt: skip
    assert state["gain"][0, 2] == pytest.approx(4.0, rel=1e-12)


def test_a_run_matches_the_exponential_weights_of_the_paper() -> None:
    """EXP3 as written by Auer et al.: weights w_i ← w_i exp(γ x̂_i / K), p = (1 - γ) w / Σ w + γ/K,
    drawing from p each round; the state-based policy reproduces every p."""
    rng = np.random.default_rng(11)
    gamma, k = 0.15, 4
    p = EXP3(gamma=gamma)
    state = p.init_state(1, k)
    w = np.ones(k)
    means = np.array([0.2, 0.5, 0.8, 0.4])
    for _ in range(300):
        ref = (1 - gamma) * w / w.sum() + gamma / k
        probs = p.state_probabilities(ArmStats.zeros(k), None, state)[0]
        np.testing.assert_allclose(probs, ref, rtol=1e-9)
        arm = int(rng.choice(k, p=probs))
        x = float(rng.random() < means[arm])
        w[arm] *= math.exp(gamma * (x / probs[arm]) / k)
        update(p, state, arm, x, float(probs[arm]))


def test_probabilities_stay_above_the_exploration_floor_and_follow_the_best_arm() -> None:
    """Vectorised over 200 problems: every arm keeps at least γ/K, and after 2,000 rounds
    the best arm (mean 0.9 vs 0.1) has most of the mass in every problem."""
    rng = np.random.default_rng(2)
    p = EXP3(gamma=0.1)
    b, k = 200, 3
    state = p.init_state(b, k)
    means = np.array([0.1, 0.9, 0.1])
    for _ in range(2000):
        probs = p.state_probabilities(ArmStats.zeros(k), None, state)
        assert (probs >= 0.1 / k - 1e-15).all()
        cum = probs.cumsum(axis=1)
        arms = (cum < rng.random(b)[:, None]).sum(axis=1)
        x = (rng.random(b) < means[arms]).astype(float)
        p.update_state(
            state, arms, x, np.ones(b),
            propensities=probs[np.arange(b), arms], contexts=None, times=np.zeros(b),
        )  # fmt: skip
    assert (p.state_probabilities(ArmStats.zeros(k), None, state)[:, 1] > 0.9).all()


def test_a_grown_state_is_a_valid_state_with_one_more_arm() -> None:
    p = EXP3(gamma=0.2)
    k = 3
    state = p.init_state(1, k)
    for arm, r, prop in [(0, 1.0, 0.3), (2, 0.5, 0.4), (0, 1.0, 0.5)]:
        update(p, state, arm, r, prop)
    grown = {"gain": np.concatenate([state["gain"], p.init_state(1, 1)["gain"]], axis=1)}
    probs = p.state_probabilities(ArmStats.zeros(k + 1), None, grown)
    gains = [*state["gain"][0].tolist(), 0.0]
    assert probs[0].tolist() == pytest.approx(closed_form(0.2, gains), rel=1e-12)
    update(p, grown, k, 1.0, 0.5)
    assert grown["gain"][0, k] == 2.0


def test_without_a_state_every_enabled_arm_is_equally_likely() -> None:
    p = EXP3()
    probs = p.probabilities(ArmStats.of(n=[50, 5, 0], s=[40, 1, 0]), [True, False, True])
    assert probs.tolist() == pytest.approx([0.5, 0.0, 0.5])
