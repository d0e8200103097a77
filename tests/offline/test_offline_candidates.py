"""Candidates: parsing, the same-information action distribution, and the replay method."""

from __future__ import annotations

import numpy as np
import pytest

from octobandit.errors import InvalidInput
from octobandit.evaluation import EvaluationError
from octobandit.offline import LoggedRounds, parse_candidates, replay, same_info_action_dist
from octobandit.policies import make_policy
from octobandit.policies.base import ArmStats


def _rounds(action, reward, pscore, *, seq=None, outcome_seq=None, context=None) -> LoggedRounds:
    n = len(action)
    seq = np.arange(n) * 2 if seq is None else np.asarray(seq)
    return LoggedRounds(
        arms=[f"arm{i}" for i in range(int(np.max(action)) + 1)],
        action=np.asarray(action, dtype=np.intp),
        reward=np.asarray(reward, dtype=np.float64),
        pscore=np.asarray(pscore, dtype=np.float64),
        context=context,
        ts=np.arange(n, dtype=np.float64),
        seq=np.asarray(seq, dtype=np.intp),
        outcome_seq=np.asarray(seq + 1 if outcome_seq is None else outcome_seq, dtype=np.intp),
        decision_ids=[str(i) for i in range(n)],
    )


def _logged(logger: np.ndarray, mu: np.ndarray, n: int, seed: int) -> LoggedRounds:
    """n rounds of a fixed logger over Bernoulli arms, each outcome right after its decision."""
    rng = np.random.default_rng(seed)
    action = rng.choice(len(mu), size=n, p=logger)
    action[: len(mu)] = np.arange(len(mu))  # every arm at least once
    reward = (rng.random(n) < mu[action]).astype(float)
    return _rounds(action, reward, logger[action])


def test_parse_candidates_names_them_uniquely_and_refuses_bad_specs() -> None:
    got = parse_candidates(
        ["thompson", '{"type": "epsilon_greedy", "epsilon": 0.2}', "thompson",
         {"type": "ucb1", "name": "mine"}, '{"action_dist": [0.5, 0.5]}'],
        "binary",
    )  # fmt: skip
    assert [c.name for c in got] == [
        "thompson",
        "epsilon_greedy",
        "thompson#2",
        "mine",
        "action_dist",
    ]
    assert got[1].spec == {"type": "epsilon_greedy", "epsilon": 0.2, "initial_value": 0.0}
    assert got[4].policy is None and got[4].action_dist is not None
    for bad in ["nope", "{not json", "[1]", '{"type": "thompson", "name": 3}',
                '{"action_dist": [0.5], "type": "x"}', '{"action_dist": "x"}',
                '{"type": "epsilon_greedy", "epsilon": 7}']:  # fmt: skip
        with pytest.raises(InvalidInput):
            parse_candidates([bad], "binary")


def test_same_info_uses_exactly_the_outcomes_logged_before_each_decision() -> None:
    # two decisions share a state (a batch), then their outcomes come in reverse order
    action = [0, 1, 1, 0, 2, 2]
    reward = [1.0, 0.0, 1.0, 1.0, 0.0, 1.0]
    seq = [1, 2, 5, 6, 9, 10]
    outcome_seq = [4, 3, 8, 7, 11, 12]
    rounds = _rounds(action, reward, [0.5] * 6, seq=seq, outcome_seq=outcome_seq)
    for spec in (
        {"type": "epsilon_greedy", "epsilon": 0.3},
        {"type": "thompson"},
        {"type": "ucb1"},
    ):
        (c,) = parse_candidates([spec], "binary")
        dist = same_info_action_dist(c, rounds)
        policy = make_policy(spec, "binary")
        for i in range(6):  # the statistics of outcomes with a smaller seq, one by one
            stats = ArmStats.zeros(3)
            for j in range(6):
                if outcome_seq[j] < seq[i]:
                    stats = stats.observe(action[j], reward[j])
            assert np.allclose(dist[i], policy.probabilities(stats)), (spec, i)


def test_a_stateful_candidate_is_walked_through_the_log() -> None:
    rounds = _logged(np.full(3, 1 / 3), np.array([0.2, 0.5, 0.8]), 300, seed=1)
    (c,) = parse_candidates([{"type": "sliding_window_ucb", "window": 50}], "binary")
    dist = same_info_action_dist(c, rounds)
    assert dist.shape == (300, 3) and np.allclose(dist.sum(axis=1), 1.0)
    assert dist[-50:, 2].mean() > 0.5  # it has learned the best arm from the log


def test_a_contextual_candidate_needs_contexts() -> None:
    rounds = _rounds([0, 1], [1.0, 0.0], [0.5, 0.5])
    (c,) = parse_candidates(["linucb"], "binary")
    with pytest.raises(EvaluationError, match="contextual"):
        same_info_action_dist(c, rounds)


def test_a_fixed_action_dist_must_fit_the_log() -> None:
    rounds = _rounds([0, 1], [1.0, 0.0], [0.5, 0.5])
    for dist in ([1.0, 0.0, 0.0], [[1.0, 0.0]] * 3, [0.7, 0.7], [1.5, -0.5]):
        (c,) = parse_candidates([{"action_dist": dist}], "binary")
        with pytest.raises(EvaluationError, match="action_dist"):
            same_info_action_dist(c, rounds)


def _binomial_bound(value: float, truth: float, accepted: int, z: float = 4.0) -> bool:
    """|value − truth| within z standard errors of a mean of `accepted` Bernoulli(truth)."""
    return abs(value - truth) <= z * np.sqrt(truth * (1 - truth) / accepted)


@pytest.mark.parametrize("dist", [[0.7, 0.1, 0.1, 0.1], [0.0, 0.0, 1.0, 0.0]])
def test_replay_equals_the_on_policy_value_under_a_uniform_logger(dist: list[float]) -> None:
    mu = np.array([0.1, 0.3, 0.5, 0.7])
    rounds = _logged(np.full(4, 0.25), mu, 40_000, seed=2)
    (c,) = parse_candidates([{"action_dist": dist}], "binary")
    out = replay(c, rounds)
    truth = float(np.dot(dist, mu))
    # every match is accepted (p_min = 1/4 = pscore): about n/4 rounds
    assert out["p_min"] == 0.25 and abs(out["accepted"] - 10_000) < 4 * np.sqrt(40_000 * 0.1875)
    assert _binomial_bound(out["value"], truth, out["accepted"])
    lo, hi = out["ci95"]
    assert lo < out["value"] < hi


def test_replay_rejection_removes_a_skewed_loggers_bias_and_plain_replay_does_not() -> None:
    mu = np.array([0.1, 0.3, 0.5, 0.7])
    logger = np.array([0.1, 0.1, 0.1, 0.7])
    rounds = _logged(logger, mu, 40_000, seed=3)
    (c,) = parse_candidates([{"action_dist": [0.25] * 4}], "binary")
    truth = float(mu.mean())
    fair = replay(c, rounds)  # accepts a match with probability 0.1 / pscore
    assert fair["p_min"] == pytest.approx(0.1)
    assert _binomial_bound(fair["value"], truth, fair["accepted"])
    # accepting every match weights the arms by the logger: Σ logger·μ / Σ logger = 0.58
    plain = replay(c, rounds, p_min=1.0)
    assert not _binomial_bound(plain["value"], truth, plain["accepted"])
    assert _binomial_bound(plain["value"], float(logger @ mu), plain["accepted"])


def test_replay_curves_run_over_the_accepted_rounds() -> None:
    mu = np.array([0.2, 0.8])
    rounds = _logged(np.full(2, 0.5), mu, 2_000, seed=4)
    (c,) = parse_candidates(["thompson"], "binary")
    out = replay(c, rounds, arm_means=mu)
    curve = out["curve"]
    assert curve["t"][-1] == out["accepted"] and len(curve["t"]) <= 200
    assert curve["reward"][-1] == pytest.approx(out["value"])
    gaps = np.diff([0.0, *curve["regret"]])
    assert (gaps >= 0).all()
    # playing the worse arm a tenth of the time would cost 0.06 per round; Thompson's regret
    # grows as log t (Lai–Robbins: about ln T / KL(0.2, 0.8) ≈ 10 here)
    assert curve["regret"][-1] < 0.1 * 0.6 * out["accepted"]
    assert replay(c, rounds, arm_means=mu) == out  # seeded


@pytest.mark.parametrize(
    "spec",
    [
        {"type": "linucb"},
        {"type": "linear_thompson"},
        {"type": "exp3"},
        {"type": "sliding_window_ucb", "window": 100},
        {"type": "discounted_thompson"},
        {"type": "vdbe"},
    ],
)
def test_stateful_and_contextual_candidates_run_both_ways(spec: dict[str, object]) -> None:
    """Arm 1 pays when the context's first feature is positive, arm 0 otherwise: a
    contextual candidate learns it, and every candidate's output is a distribution."""
    rng = np.random.default_rng(5)
    n = 600
    context = rng.normal(size=(n, 2))
    action = rng.integers(0, 2, size=n)
    good = (context[:, 0] > 0).astype(np.intp)
    reward = ((action == good) & (rng.random(n) < 0.9)).astype(float)
    rounds = _rounds(action, reward, np.full(n, 0.5), context=context)
    (c,) = parse_candidates([spec], "binary")
    dist = same_info_action_dist(c, rounds)
    assert dist.shape == (n, 2) and np.allclose(dist.sum(axis=1), 1.0)
    out = replay(c, rounds)
    assert 0 < out["accepted"] < n and 0.0 <= out["value"] <= 1.0
    if spec["type"] in ("linucb", "linear_thompson"):
        # the last 200 rounds: P(the paying arm) well above the 1/2 of a blind policy
        assert dist[-200:][np.arange(200), good[-200:]].mean() > 0.75


def test_same_info_blocks_give_the_same_distributions(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of 7 decisions (outcomes arriving in batches, out of order) give what one
    block gives."""
    from octobandit.offline import candidates

    rng = np.random.default_rng(6)
    n = 300
    action = rng.integers(0, 3, size=n)
    reward = (rng.random(n) < [0.2, 0.5, 0.8][0] + 0.3 * action).astype(float)
    seq = np.arange(n) * 3 + 1
    outcome_seq = seq + rng.integers(1, 60, size=n) * 3 + 1  # a few rounds later
    rounds = _rounds(action, reward, np.full(n, 1 / 3), seq=seq, outcome_seq=outcome_seq)
    for spec in ("thompson", "ucb1", '{"type": "softmax", "temperature": 0.2}'):
        (c,) = parse_candidates([spec], "binary")
        whole = same_info_action_dist(c, rounds)
        monkeypatch.setattr(candidates, "SAME_INFO_BLOCK", 7)
        assert np.allclose(same_info_action_dist(c, rounds), whole, rtol=0, atol=1e-12), spec
        monkeypatch.setattr(candidates, "SAME_INFO_BLOCK", 4096)


def test_a_log_of_equal_rewards_still_has_a_reward_model() -> None:
    """Every reward 1: no classifier can be fitted, the ridge fallback predicts 1."""
    from octobandit.offline import evaluate_log

    rounds = _rounds([0, 1] * 20, [1.0] * 40, [0.5] * 40)
    (c,) = parse_candidates(["thompson"], "binary")
    out = evaluate_log(rounds, [c], n_bootstrap_samples=20)["candidates"]["thompson"]
    assert set(out["estimates"]) == {"ipw", "snipw", "dm", "dr", "sndr", "switch-dr", "replay"}
    for key in ("snipw", "dm", "dr", "sndr", "replay"):
        assert out["estimates"][key]["value"] == pytest.approx(1.0), key
