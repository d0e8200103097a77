"""Every call of the client against the real service, with the sync and the async client."""

from __future__ import annotations

import time
from typing import Any

import msgspec
import pytest

from octobandit.client import (
    Arm,
    BufferStats,
    Conclusion,
    ConflictError,
    Decision,
    Experiment,
    Health,
    History,
    InvalidInputError,
    NotFoundError,
    Reward,
    RewardAnswer,
    Stats,
)


def test_health(api: Any) -> None:
    assert api.health() == Health("ok")


def test_create_get_list_and_update_an_experiment(api: Any, exp_id: str) -> None:
    exp = api.create_experiment(
        exp_id,
        name="Buttons",
        policy={"type": "epsilon_greedy", "epsilon": 0.2},
        arms=["buy", {"id": "get", "payload": {"text": "Get it"}}],
        reward="continuous",
        stopping={"min_rewards_per_arm": 10},
        snapshot_interval=60,
    )
    assert isinstance(exp, Experiment)
    assert (exp.id, exp.name, exp.status, exp.reward.type) == (
        exp_id,
        "Buttons",
        "running",
        "continuous",
    )
    assert exp.policy["epsilon"] == 0.2 and exp.snapshot_interval == 60
    assert exp.stopping is not None and exp.stopping["min_rewards_per_arm"] == 10
    assert [a.id for a in exp.arms] == ["buy", "get"]
    assert exp.arms[1].payload == {"text": "Get it"} and exp.arms[1].enabled
    assert api.get_experiment(exp_id) == exp
    assert exp_id in [e.id for e in api.list_experiments()]

    paused = api.update_experiment(exp_id, status="paused", name="Renamed", policy={"epsilon": 0.3})
    assert (paused.status, paused.name, paused.policy["epsilon"]) == ("paused", "Renamed", 0.3)
    assert paused.version > exp.version
    switched = api.update_experiment(exp_id, policy="ucb1", stopping={"prob_best": 0.99})
    assert switched.policy["type"] == "ucb1" and switched.stopping is not None
    assert switched.stopping["prob_best"] == 0.99 and switched.stopping["min_rewards_per_arm"] == 10


def test_a_policy_by_name_and_a_contextual_experiment(api: Any, exp_id: str) -> None:
    exp = api.create_experiment(exp_id, policy="linucb", arms=["a", "b"], context=["age", "mobile"])
    assert exp.context is not None and exp.context.features == ["age", "mobile"]
    by_object = api.decide(exp_id, context={"age": 0.3, "mobile": 1})
    by_vector = api.decide(exp_id, unit_id="u", context=[0.5, 0.0])
    assert {by_object.arm_id, by_vector.arm_id} <= {"a", "b"}
    assert api.reward(exp_id, by_vector.decision_id, 0.5) == RewardAnswer(1, 0)


def test_decisions_single_batch_and_sticky(api: Any, exp_id: str) -> None:
    api.create_experiment(exp_id, arms=["a", {"id": "b", "payload": [1, 2]}])
    d = api.decide(exp_id)
    assert isinstance(d, Decision) and d.experiment_id == exp_id
    assert d.arm_id in {"a", "b"} and 0 < d.propensity <= 1 and len(d.decision_id) > 8
    assert d.payload == ([1, 2] if d.arm_id == "b" else None)
    batch = api.decide_batch(exp_id, 5)
    assert len(batch) == 5 and len({x.decision_id for x in batch}) == 5
    first = api.decide(exp_id, unit_id="user-1")
    again = [api.decide(exp_id, unit_id="user-1") for _ in range(5)]
    assert {x.arm_id for x in again} == {first.arm_id}
    assert {x.propensity for x in again} == {first.propensity}


def test_rewards_by_decision_by_arm_and_in_bulk(api: Any, exp_id: str) -> None:
    api.create_experiment(exp_id, arms=["a", "b"])
    d1, d2, d3 = api.decide_batch(exp_id, 3)
    assert api.reward(exp_id, d1.decision_id, 1.0) == RewardAnswer(accepted=1, duplicates=0)
    assert api.reward(exp_id, d1.decision_id, 1.0) == RewardAnswer(accepted=0, duplicates=1)
    assert api.reward_arm(exp_id, "a", 0.4, count=10) == RewardAnswer(1, 0)
    answer = api.rewards(
        exp_id,
        [
            Reward(reward=1.0, decision_id=d2.decision_id),
            {"decision_id": d3.decision_id, "reward": 0},
            {"arm_id": "b", "reward": 0.5, "count": 4},
            Reward(reward=1.0, decision_id=d1.decision_id),
        ],
    )
    assert answer == RewardAnswer(accepted=3, duplicates=1)
    stats = api.stats(exp_id)
    assert isinstance(stats, Stats)
    assert stats.total_decisions == 3
    assert stats.total_reward == pytest.approx(1 + 4 + 1 + 0 + 2)
    by_arm = {a.arm_id: a for a in stats.arms}
    assert by_arm["a"].rewards + by_arm["b"].rewards == 1 + 10 + 1 + 1 + 4


def test_arms_add_patch_delete_and_admin_stats(api: Any, exp_id: str) -> None:
    api.create_experiment(exp_id, policy="thompson", arms=["a"])
    arm = api.add_arm(exp_id, "b", payload={"k": 1}, prior={"alpha": 2, "beta": 5})
    assert isinstance(arm, Arm) and arm == Arm(
        "b", {"k": 1}, True, False, api.get_experiment(exp_id).arms[1].prior
    )
    assert arm.prior is not None
    assert api.add_arm(exp_id, "c", enabled=False).enabled is False
    patched = api.update_arm(exp_id, "c", enabled=True, payload="new")
    assert (patched.enabled, patched.payload) == (True, "new")
    api.delete_arm(exp_id, "c")
    c = api.get_experiment(exp_id).arms[2]
    assert (c.id, c.deleted, c.enabled) == ("c", True, False)
    stats = api.set_arm_stats(exp_id, "a", decisions=10, rewards=8, reward_sum=6)
    assert isinstance(stats, Stats)
    a = stats.arms[0]
    assert (a.decisions, a.rewards, a.reward_sum, a.mean_reward) == (10, 8.0, 6.0, 0.75)
    assert a.ci95 is not None and a.ci95[0] < 0.75 < a.ci95[1]


def test_reset_conclusion_and_history(api: Any, exp_id: str) -> None:
    api.create_experiment(exp_id, arms=["a", "b"], stopping={"min_rewards_per_arm": 1})
    api.set_arm_stats(exp_id, "a", decisions=500, rewards=500, reward_sum=450)
    api.set_arm_stats(exp_id, "b", decisions=500, rewards=500, reward_sum=50)
    conclusion = api.conclusion(exp_id)
    assert isinstance(conclusion, Conclusion)
    assert conclusion.met and conclusion.winner == "a" and conclusion.leader == "a"
    assert conclusion.prob_best is not None and conclusion.prob_best > 0.999
    assert [x.arm_id for x in conclusion.arms] == ["a", "b"] and conclusion.failed == []
    history = api.history(exp_id, limit=10)
    assert isinstance(history, History)
    assert history.reason[0] == "created" and len(history.at) == len(history.reason)
    assert set(history.arms) == {"a", "b"} and history.arms["a"].decisions[0] == 0
    before = api.get_experiment(exp_id).version
    reset = api.reset_experiment(exp_id)
    assert isinstance(reset, Experiment) and reset.version > before
    assert api.stats(exp_id).total_decisions == 0


def test_conclude_by_hand_and_reopen(api: Any, exp_id: str) -> None:
    api.create_experiment(exp_id, arms=["a", "b"])
    api.set_arm_stats(exp_id, "a", decisions=40, rewards=40, reward_sum=30)
    api.set_arm_stats(exp_id, "b", decisions=40, rewards=40, reward_sum=10)
    done = api.conclude(exp_id)  # the rule is not met (2000 rewards per arm): the leader
    assert isinstance(done, Experiment) and done.status == "concluded"
    assert done.conclusion is not None and done.conclusion["winner"] == "a"
    assert done.conclusion["manual"] is True and done.conclusion["rule_met"] is False
    assert api.conclude(exp_id, winner="b").conclusion["winner"] == "b"
    with pytest.raises(InvalidInputError) as bad:
        api.conclude(exp_id, winner="zzz")
    assert bad.value.field == "winner"
    assert api.get_experiment(exp_id).conclusion["winner"] == "b"  # the refusal wrote nothing
    with pytest.raises(NotFoundError):
        api.conclude(exp_id + "-missing")
    reopened = api.update_experiment(exp_id, status="running")
    assert reopened.status == "running" and reopened.conclusion is None


def test_delete_an_experiment(api: Any, exp_id: str) -> None:
    api.create_experiment(exp_id, arms=["a"])
    assert api.delete_experiment(exp_id) is None
    with pytest.raises(NotFoundError):
        api.get_experiment(exp_id)
    with pytest.raises(NotFoundError):
        api.delete_experiment(exp_id)


def test_delete_every_experiment(make_client: Any, server_factory: Any, tmp_path: Any) -> None:
    api = make_client(server_factory(tmp_path / "own.db").start().url)
    api.create_experiment("one", arms=["a"])
    api.create_experiment("two", arms=["a"])
    with pytest.raises(ValueError, match="confirm=True"):
        api.delete_all_experiments(confirm=False)
    assert api.delete_all_experiments(confirm=True) == 2
    assert api.list_experiments() == []


def test_a_second_create_is_a_conflict_and_results_are_plain_data(api: Any, exp_id: str) -> None:
    exp = api.create_experiment(exp_id, arms=["a"])
    with pytest.raises(ConflictError) as info:
        api.create_experiment(exp_id, arms=["b"])
    assert info.value.code == "already_exists"
    plain = msgspec.to_builtins(exp)
    assert plain["id"] == exp_id and plain["arms"] == [
        {"id": "a", "payload": None, "enabled": True, "deleted": False, "prior": None}
    ]
    assert api.buffer_stats() == BufferStats(queued=0, accepted=0, duplicates=0, failed=0)


def test_numpy_contexts_and_rewards_are_sent_as_numbers(api: Any, exp_id: str) -> None:
    np = pytest.importorskip("numpy")
    api.create_experiment(exp_id, policy="linear_thompson", arms=["a", "b"], context=["x", "y"])
    d = api.decide(exp_id, context=np.array([0.1, 0.2]))
    assert api.reward(exp_id, d.decision_id, np.float64(1.0)) == RewardAnswer(1, 0)
    d = api.decide(exp_id, context={"x": np.float32(0.5), "y": np.int64(1)})
    assert d.arm_id in {"a", "b"}


def test_late_rewards_are_reported_by_the_answer_and_the_buffer(api: Any, exp_id: str) -> None:
    exp = api.create_experiment(exp_id, arms=["a"], reward={"attribution_window": 0.2})
    assert (exp.reward.attribution_window, exp.reward.default) == (0.2, 0.0)
    assert exp.reward.aggregation == "first"
    on_time = api.decide(exp_id)
    assert api.reward(exp_id, on_time.decision_id, 1.0) == RewardAnswer(1, 0, 0)
    d = api.decide(exp_id)
    time.sleep(0.3)  # its window has closed
    assert api.reward(exp_id, d.decision_id, 1.0) == RewardAnswer(0, 0, 1)
    api.reward(exp_id, d.decision_id, 1.0, buffered=True)
    api.flush()
    assert api.buffer_stats().late == 1
