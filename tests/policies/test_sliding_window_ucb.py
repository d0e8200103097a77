"""Sliding-window UCB: the window's sums against a brute-force window, the index formula,
forgetting, ties and a grown state."""

from __future__ import annotations

import math

import numpy as np
import pytest

from octobandit.errors import InvalidInput
from octobandit.policies import ArmStats, SlidingWindowUCB, make_policy


def feed(
    p: SlidingWindowUCB,
    state: dict[str, np.ndarray],
    arms: list[int] | np.ndarray,
    rewards: list[float] | np.ndarray,
    counts: list[float] | np.ndarray | None = None,
) -> None:
    b = len(arms)
    p.update_state(
        state,
        np.asarray(arms, dtype=np.intp),
        np.asarray(rewards, dtype=float),
        np.ones(b) if counts is None else np.asarray(counts, dtype=float),
        propensities=np.full(b, np.nan),
        contexts=None,
        times=np.zeros(b),
    )


def test_parameters_are_validated_and_round_trip() -> None:
    p = make_policy({"type": "sliding_window_ucb", "window": 50, "c": 0.5})
    assert p.params() == {"type": "sliding_window_ucb", "window": 50, "c": 0.5}
    assert isinstance(p.params()["window"], int)
    assert make_policy(p.params()).params() == p.params()
    assert make_policy({"type": "sliding_window_ucb"}).params()["c"] == pytest.approx(
        math.sqrt(0.6)
    )
    for bad, field in [
        ({"window": 0}, "policy.window"),
        ({"window": 2.5}, "policy.window"),
        ({"window": True}, "policy.window"),
        ({"c": -1}, "policy.c"),
    ]:
        with pytest.raises(InvalidInput) as err:
            make_policy({"type": "sliding_window_ucb", **bad})
        assert err.value.field == field


@pytest.mark.parametrize("window", [1, 4, 25])
def test_window_sums_match_a_brute_force_window(window: int) -> None:
    """Random reports (arm, reward, count) for 5 problems at once: after every report
    each arm's n and s are the sums over the problem's last ``window`` reports."""
    rng = np.random.default_rng(window)
    b, k, steps = 5, 4, 120
    p = SlidingWindowUCB(window=window)
    state = p.init_state(b, k)
    log_a = rng.integers(0, k, size=(steps, b))
    log_r = rng.normal(0.5, 1.0, size=(steps, b))
    log_c = rng.integers(1, 4, size=(steps, b)).astype(float)
    for t in range(steps):
        feed(p, state, log_a[t], log_r[t], log_c[t])
        lo = max(0, t + 1 - window)
        a, r, c = log_a[lo : t + 1], log_r[lo : t + 1], log_c[lo : t + 1]
        for arm in range(k):
            hit = a == arm
            np.testing.assert_allclose(state["n"][:, arm], (c * hit).sum(0), atol=1e-12)
            np.testing.assert_allclose(state["s"][:, arm], (c * r * hit).sum(0), atol=1e-9)
            assert (state["size"][:, arm] == hit.sum(0)).all()
        assert (state["clock"] == t + 1).all()


def test_index_formula() -> None:
    """index = windowed mean + c·sqrt(ln(min(t, W)) / N_W), inf for arms untried in the window."""
    c, w = 0.7, 6
    p = SlidingWindowUCB(window=w, c=c)
    state = p.init_state(1, 3)
    seq = [(0, 1.0), (1, 0.0), (0, 0.0), (1, 1.0), (1, 1.0), (0, 1.0), (1, 0.0), (0, 1.0)]
    for arm, r in seq:
        feed(p, state, [arm], [r])
    idx = p.indices(state)[0]
    window = seq[-w:]  # t = 8 > W: the last 6 reports
    for arm in (0, 1):
        rs = [r for a, r in window if a == arm]
        want = np.mean(rs) + c * math.sqrt(math.log(min(8, w)) / len(rs))
        assert idx[arm] == pytest.approx(want, rel=1e-12)
    assert idx[2] == math.inf
    assert p.state_probabilities(ArmStats.zeros(3), None, state).tolist() == [[0.0, 0.0, 1.0]]
    # before the window is full, t itself: ln(min(3, 6)) = ln 3
    early = p.init_state(1, 2)
    for arm, r in [(0, 1.0), (1, 0.0), (1, 1.0)]:
        feed(p, early, [arm], [r])
    assert p.indices(early)[0].tolist() == pytest.approx(
        [1.0 + c * math.sqrt(math.log(3)), 0.5 + c * math.sqrt(math.log(3) / 2)], rel=1e-12
    )


def test_an_arm_outside_the_window_is_tried_again() -> None:
    """Arm 0 paid 1 once, long ago; arm 1 has paid 0 for W reports since: arm 0's reward
    has left the window, so it is untried again and comes first."""
    p = SlidingWindowUCB(window=10, c=0.1)
    state = p.init_state(1, 2)
    feed(p, state, [0], [1.0])
    for i in range(9):
        feed(p, state, [1], [0.0])
        if i < 8:  # still in the window: arm 0's mean 1 beats arm 1's 0
            assert p.state_probabilities(ArmStats.zeros(2), None, state).tolist() == [[1.0, 0.0]]
    feed(p, state, [1], [0.0])
    assert state["n"].tolist() == [[0.0, 10.0]] and state["s"].tolist() == [[0.0, 0.0]]
    assert p.indices(state)[0, 0] == math.inf
    assert p.state_probabilities(ArmStats.zeros(2), None, state).tolist() == [[1.0, 0.0]]


def test_ties_share_the_propensity_and_disabled_arms_get_none() -> None:
    p = SlidingWindowUCB(window=5)
    state = p.init_state(2, 4)
    feed(p, state, [1, 0], [0.5, 0.5])
    probs = p.state_probabilities(ArmStats.zeros(4), [True, True, True, False], state)
    assert probs.tolist() == [[0.5, 0.0, 0.5, 0.0], [0.0, 0.5, 0.5, 0.0]]
    # without a state every enabled arm is untried: all tied
    assert p.probabilities(ArmStats.of(n=[9, 9, 9], s=[1, 5, 2])).tolist() == pytest.approx(
        [1 / 3] * 3
    )


def test_a_grown_state_is_a_valid_state_with_one_more_arm() -> None:
    """init_state(1, K) + init_state(1, 1) along axis 1: the new arm is untried; after the
    next report the state equals that of a K+1-arm problem from the start."""
    p = SlidingWindowUCB(window=4)
    k = 3
    grown, full = p.init_state(1, k), p.init_state(1, k + 1)
    for arm, r in [(0, 1.0), (2, 0.0), (1, 1.0), (0, 1.0), (2, 1.0)]:
        feed(p, grown, [arm], [r])
        feed(p, full, [arm], [r])
    extra = p.init_state(1, 1)
    grown = {name: np.concatenate([v, extra[name]], axis=1) for name, v in grown.items()}
    assert grown["rewards"].shape == (1, k + 1, 4) and grown["n"].shape == (1, k + 1)
    probs = p.state_probabilities(ArmStats.zeros(k + 1), None, grown)
    assert probs.tolist() == [[0.0, 0.0, 0.0, 1.0]]  # the new arm first
    for arm, r in [(k, 1.0), (1, 0.0), (k, 0.0)]:
        feed(p, grown, [arm], [r])
        feed(p, full, [arm], [r])
        for name in grown:
            np.testing.assert_array_equal(grown[name], full[name])


@pytest.mark.parametrize(("old", "new"), [(8, 3), (3, 8), (5, 5)])
def test_a_state_kept_across_a_window_change_is_repacked(old: int, new: int) -> None:
    """The engine keeps the state when only ``window`` changes: the state is re-packed to
    the new window, keeping the entries of the last ``new`` reports the old one still held,
    and from then on behaves as the brute-force window (once the new window has filled)."""
    rng = np.random.default_rng(old * 10 + new)
    k = 3
    log = [(int(rng.integers(0, k)), float(rng.random() < 0.5)) for _ in range(40)]
    p_old, p_new = SlidingWindowUCB(window=old), SlidingWindowUCB(window=new)
    state = p_old.init_state(1, k)
    for arm, r in log[:20]:
        feed(p_old, state, [arm], [r])
    held = log[20 - min(old, new) : 20]
    probe = p_new.repack(state)
    assert probe["rewards"].shape == (1, k, new)
    for arm in range(k):
        assert probe["n"][0, arm] == sum(1 for a, _ in held if a == arm)
        assert probe["s"][0, arm] == sum(r for a, r in held if a == arm)
    np.testing.assert_allclose(p_new.indices(state), p_new.indices(probe), rtol=1e-15)
    for t in range(20, 40):
        arm, r = log[t]
        feed(p_new, state, [arm], [r])
        window = log[max(0, t + 1 - new) : t + 1]
        if t + 1 - new >= 20:  # the new window holds only reports made after the change
            for a in range(k):
                assert state["n"][0, a] == sum(1 for b, _ in window if b == a)
                assert state["s"][0, a] == sum(x for b, x in window if b == a)
    assert state["steps"].shape == (1, k, new)
