"""VDBE ε-greedy: the value and ε updates against Tokic's formulas, exact probabilities,
a grown state."""

from __future__ import annotations

import math

import numpy as np
import pytest

from octobandit.errors import InvalidInput
from octobandit.policies import VDBE, ArmStats, make_policy


def update(p: VDBE, state: dict[str, np.ndarray], arm: int, r: float, count: float = 1.0) -> None:
    p.update_state(
        state,
        np.array([arm]),
        np.array([r]),
        np.array([count]),
        propensities=np.array([np.nan]),
        contexts=None,
        times=np.zeros(1),
    )


def test_parameters_are_validated_and_round_trip() -> None:
    p = make_policy({"type": "vdbe"})
    assert p.params() == {
        "type": "vdbe", "sigma": 0.33, "delta": 0.1, "alpha": None, "initial_value": 0.0,
    }  # fmt: skip
    q = make_policy({"type": "vdbe", "sigma": 1, "delta": 0.5, "alpha": 0.2})
    assert make_policy(q.params()).params() == q.params()
    for bad, field in [
        ({"sigma": 0}, "policy.sigma"),
        ({"delta": 0}, "policy.delta"),
        ({"delta": 1.1}, "policy.delta"),
        ({"alpha": 0}, "policy.alpha"),
        ({"alpha": 2}, "policy.alpha"),
        ({"alpha": "x"}, "policy.alpha"),
        ({"initial_value": float("inf")}, "policy.initial_value"),
    ]:
        with pytest.raises(InvalidInput) as err:
            make_policy({"type": "vdbe", **bad})
        assert err.value.field == field


@pytest.mark.parametrize("alpha", [None, 0.3])
def test_updates_follow_tokics_formulas(alpha: float | None) -> None:
    """Q ← Q + step (r - Q) (step 1/n or α), f = (1 - e^(-|ΔQ|/σ)) / (1 + e^(-|ΔQ|/σ)),
    ε ← δ f + (1 - δ) ε from ε = 1, written into every arm's copy."""
    sigma, delta = 0.4, 0.25
    p = VDBE(sigma=sigma, delta=delta, alpha=alpha, initial_value=0.5)
    state = p.init_state(1, 3)
    rng = np.random.default_rng(8)
    q, n, eps = [0.5, 0.5, 0.5], [0, 0, 0], 1.0
    for _ in range(50):
        arm, r = int(rng.integers(0, 3)), float(rng.random() < 0.6)
        n[arm] += 1
        step = 1.0 / n[arm] if alpha is None else alpha
        dq = step * (r - q[arm])
        q[arm] += dq
        x = math.exp(-abs(dq) / sigma)
        eps = delta * (1 - x) / (1 + x) + (1 - delta) * eps
        update(p, state, arm, r)
        assert state["q"][0].tolist() == pytest.approx(q, rel=1e-12)
        assert state["epsilon"][0].tolist() == pytest.approx([eps] * 3, rel=1e-12)
    assert state["n"][0].tolist() == n


def test_a_report_of_count_rewards_moves_the_value_count_steps() -> None:
    p = VDBE(alpha=0.5)
    state = p.init_state(1, 2)
    update(p, state, 0, 1.0, count=3.0)  # three steps of 1/2 towards 1
    assert state["q"][0, 0] == pytest.approx(1 - 0.5**3)
    s = VDBE()
    state = s.init_state(1, 2)
    update(s, state, 1, 1.0)
    update(s, state, 1, 0.0, count=3.0)  # sample average of 1, 0, 0, 0
    assert state["q"][0, 1] == pytest.approx(0.25) and state["n"][0, 1] == 4.0


def test_probabilities_are_exact() -> None:
    p = VDBE()
    state = {
        "q": np.array([[0.2, 0.7, 0.7, 0.1], [0.9, 0.1, 0.2, 0.3]]),
        "n": np.ones((2, 4)),
        "epsilon": np.array([[0.2] * 4, [0.6] * 4]),
    }
    probs = p.state_probabilities(ArmStats.zeros(4), None, state)
    assert probs[0].tolist() == pytest.approx([0.05, 0.45, 0.45, 0.05], rel=1e-12)
    assert probs[1].tolist() == pytest.approx([0.55, 0.15, 0.15, 0.15], rel=1e-12)
    mask = np.array([[True, True, False, True], [False, True, True, True]])
    probs = p.state_probabilities(ArmStats.zeros(4), mask, state)
    e = 0.2 / 3
    assert probs[0].tolist() == pytest.approx([e, 0.8 + e, 0.0, e], rel=1e-12)
    assert probs[1].tolist() == pytest.approx([0.0, 0.2, 0.2, 0.6], rel=1e-12)


def test_a_new_arm_restarts_exploration() -> None:
    """A grown state is valid; the new arm's ε copy is 1, so the problem's ε (the largest
    copy) is 1 until the next update writes the updated ε into every copy."""
    p = VDBE(sigma=0.5, delta=0.2)
    state = p.init_state(1, 2)
    for arm, r in [(0, 1.0), (1, 0.0), (0, 1.0), (0, 1.0)]:
        update(p, state, arm, r)
    eps = float(state["epsilon"][0, 0])
    assert eps < 1.0
    extra = p.init_state(1, 1)
    grown = {name: np.concatenate([v, extra[name]], axis=1) for name, v in state.items()}
    assert float(p.epsilon_of(grown)[0, 0]) == 1.0
    probs = p.state_probabilities(ArmStats.zeros(3), None, grown)
    assert probs[0].tolist() == pytest.approx([1 / 3] * 3)
    update(p, grown, 2, 1.0)
    want = 0.2 * math.tanh(1.0 / (2 * 0.5)) + 0.8 * 1.0
    assert grown["epsilon"][0].tolist() == pytest.approx([want] * 3, rel=1e-12)
    assert grown["q"][0].tolist() == pytest.approx([1.0, 0.0, 1.0])


def test_epsilon_falls_as_the_values_settle() -> None:
    """Stationary arms, 100 problems at once: ε starts at 1 and falls below 0.05 once
    the sample averages settle, and the better arm is then served with probability > 0.9."""
    rng = np.random.default_rng(4)
    p = VDBE()
    b, k = 100, 2
    state = p.init_state(b, k)
    means = np.array([0.3, 0.7])
    for _ in range(1500):
        probs = p.state_probabilities(ArmStats.zeros(k), None, state)
        arms = (probs.cumsum(axis=1) < rng.random(b)[:, None]).sum(axis=1)
        x = (rng.random(b) < means[arms]).astype(float)
        p.update_state(
            state, arms, x, np.ones(b),
            propensities=np.full(b, np.nan), contexts=None, times=np.zeros(b),
        )  # fmt: skip
    assert float(np.median(p.epsilon_of(state))) < 0.05
    assert float(np.mean(p.state_probabilities(ArmStats.zeros(k), None, state)[:, 1])) > 0.9


def test_without_a_state_every_enabled_arm_is_equally_likely() -> None:
    p = VDBE()
    probs = p.probabilities(ArmStats.of(n=[50, 5, 0], s=[40, 1, 0]), [True, True, False])
    assert probs.tolist() == pytest.approx([0.5, 0.5, 0.0])
    assert p.probabilities(ArmStats.zeros(3, (2,))).shape == (2, 3)
