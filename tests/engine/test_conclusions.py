"""Stopping rule, automatic conclusion and posterior snapshots through the engine."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from octobandit.engine import Engine, RewardItem
from octobandit.errors import InvalidInput
from octobandit.stats.posterior import beta_prob_best
from octobandit.storage import Snapshot, SQLiteStorage


class Clock:
    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def eng(tmp_path: Path, clock: Clock) -> Iterator[Engine]:
    storage = SQLiteStorage(str(tmp_path / "c.db"))
    yield Engine(storage, seed=3, clock=clock)
    storage.close()


def make(eng: Engine, **extra: object) -> None:
    eng.create_experiment(
        {
            "id": "ab",
            "policy": {"type": "epsilon_greedy", "epsilon": 1.0},
            "arms": [{"id": "a"}, {"id": "b"}],
            **extra,
        }
    )


def feed(eng: Engine, a: tuple[int, int], b: tuple[int, int]) -> None:
    """Give arm a ``a[0]`` successes in ``a[1]`` pulls, likewise b (as batch rewards)."""
    eng.reward(
        "ab",
        [
            RewardItem(a[0] / a[1], arm_id="a", count=a[1]),
            RewardItem(b[0] / b[1], arm_id="b", count=b[1]),
        ],
    )


def test_conclusion_reports_the_posterior_numbers(eng: Engine) -> None:
    make(eng)
    feed(eng, (200, 4000), (290, 4000))
    c = eng.conclusion("ab")
    expected = beta_prob_best(np.array([201.0, 291.0]), np.array([3801.0, 3711.0]))
    assert [arm["prob_best"] for arm in c["arms"]] == pytest.approx(expected.tolist(), abs=1e-12)
    assert c["met"] is True and c["winner"] == "b" and c["leader"] == "b"
    assert c["prob_best"] >= 0.999 and "b wins" in c["reason"]
    assert c["arms"][1]["mean"] == pytest.approx(291 / 4002)
    assert c["concluded"] is None and c["status"] == "running"


def test_conclusion_says_why_not(eng: Engine) -> None:
    make(eng)
    feed(eng, (50, 1000), (55, 1000))
    c = eng.conclusion("ab")
    assert c["met"] is False and c["winner"] is None
    assert "prob_best" in c["failed"] and "min_rewards_per_arm" in c["failed"]
    assert "No winner yet" in c["reason"] and "1000" in c["reason"].replace(",", "")


def test_stopping_rule_is_validated(eng: Engine) -> None:
    with pytest.raises(InvalidInput, match=r"stopping\.prob_best"):
        make(eng, stopping={"prob_best": 1.5})
    with pytest.raises(InvalidInput, match=r"stopping\.after_conclusion"):
        make(eng, stopping={"after_conclusion": "party"})
    with pytest.raises(InvalidInput, match="snapshot_interval"):
        make(eng, snapshot_interval=0.1)


def test_snapshots_follow_the_configured_cadence(eng: Engine, clock: Clock) -> None:
    make(eng, snapshot_interval=10)
    start = clock.t
    taken = []
    for dt in (1, 9.9, 10, 15, 19.9, 20.5, 31, 100):
        clock.t = start + dt
        feed(eng, (1, 10), (2, 10))
        taken.append(eng.tick())
    # due when 10 s have passed since the previous snapshot (creation counts as one)
    assert taken == [0, 0, 1, 0, 0, 1, 1, 1]
    h = eng.history("ab")
    assert h["reason"] == ["created"] + ["interval"] * 4 and h["snapshot_interval"] == 10
    assert h["arms"]["a"]["rewards"] == [0, 30, 60, 70, 80]
    assert all(0 < p < 1 for p in h["arms"]["b"]["prob_best"])
    assert len(eng.history("ab", limit=2)["at"]) == 2


def test_auto_conclusion_serves_the_winner(eng: Engine, clock: Clock) -> None:
    make(
        eng,
        stopping={"auto_conclude": True, "min_rewards_per_arm": 500, "prob_best": 0.99},
        snapshot_interval=5,
    )
    feed(eng, (25, 500), (60, 500))
    clock.t += 5
    assert eng.tick() == 1
    exp = eng.get_experiment("ab")
    assert exp.status == "concluded" and exp.conclusion is not None
    assert exp.conclusion["winner"] == "b" and "b wins" in exp.conclusion["reason"]
    assert eng.history("ab")["reason"] == ["created", "conclusion"]
    out = eng.decide("ab", n=200)["decisions"]
    assert {d["arm_id"] for d in out} == {"b"} and {d["propensity"] for d in out} == {1.0}
    # re-opening clears the conclusion and the policy serves again (ε = 1: both arms)
    eng.update_experiment("ab", {"status": "running"})
    assert eng.get_experiment("ab").conclusion is None
    assert {d["arm_id"] for d in eng.decide("ab", n=200)["decisions"]} == {"a", "b"}


def test_keep_learning_after_conclusion(eng: Engine, clock: Clock) -> None:
    make(
        eng,
        stopping={
            "auto_conclude": True,
            "min_rewards_per_arm": 500,
            "prob_best": 0.99,
            "after_conclusion": "keep_learning",
        },
        snapshot_interval=5,
    )
    feed(eng, (25, 500), (60, 500))
    clock.t += 5
    eng.tick()
    assert eng.get_experiment("ab").status == "concluded"
    assert {d["arm_id"] for d in eng.decide("ab", n=200)["decisions"]} == {"a", "b"}


def test_rule_not_met_keeps_running(eng: Engine, clock: Clock) -> None:
    make(eng, stopping={"auto_conclude": True}, snapshot_interval=5)
    feed(eng, (25, 500), (26, 500))
    clock.t += 5
    assert eng.tick() == 1
    assert eng.get_experiment("ab").status == "running"
    assert eng.history("ab")["reason"] == ["created", "interval"]


def test_reward_gain_against_an_equal_split(eng: Engine) -> None:
    make(eng)
    out = eng.decide("ab", n=1000)["decisions"]
    for d in out:  # arm b pays 0.9, arm a 0.1
        eng.reward(
            "ab", [RewardItem(0.9 if d["arm_id"] == "b" else 0.1, decision_id=d["decision_id"])]
        )
    gain = eng.stats("ab")["reward_gain_vs_equal_split"]
    # every reward observed: gain = Σ s_k − T · mean_k θ_k; the split is ε = 1, i.e.
    # already about equal, so the gain is near 0 (within its interval)
    assert gain["ci95"][0] <= 0 <= gain["ci95"][1] or abs(gain["estimate"]) < 3 * gain["se"]


def test_arm_priors_are_pseudo_observations(eng: Engine) -> None:
    eng.create_experiment(
        {
            "id": "warm",
            "policy": {"type": "thompson"},
            "arms": [
                {"id": "old", "prior": {"alpha": 31, "beta": 71}},  # 30 wins in 100 elsewhere
                {"id": "new"},
            ],
        }
    )
    exp = eng.get_experiment("warm")
    assert exp.arms[0].prior == {"rewards": 100.0, "reward_sum": 30.0, "reward_sq_sum": 30.0}
    # the posterior is Beta(31, 71) for the warm arm and Beta(1, 1) for the new one
    c = eng.conclusion("warm")
    assert c["arms"][0]["mean"] == pytest.approx(31 / 102)
    expected = beta_prob_best(np.array([31.0, 1.0]), np.array([71.0, 1.0]))
    assert [a["prob_best"] for a in c["arms"]] == pytest.approx(expected.tolist(), abs=1e-12)
    d = eng.decide("warm", n=1)["decisions"][0]
    assert d["propensity"] == pytest.approx(expected[0 if d["arm_id"] == "old" else 1])
    # observed statistics stay apart from the prior, and a reset keeps the prior
    assert eng.stats("warm")["arms"][0]["rewards"] == 0
    eng.reset("warm")
    assert eng.get_experiment("warm").arms[0].prior is not None
    # an arm added mid-experiment starts from its own prior
    eng.add_arm("warm", {"id": "late", "prior": {"rewards": 10, "reward_sum": 9}})
    assert eng.conclusion("warm")["arms"][2]["mean"] == pytest.approx(10 / 12)
    with pytest.raises(InvalidInput, match=r"prior\.alpha"):
        eng.add_arm("warm", {"id": "x", "prior": {"alpha": 0.5}})
    with pytest.raises(InvalidInput, match=r"prior\.reward_sum"):
        eng.add_arm("warm", {"id": "x", "prior": {"rewards": 3, "reward_sum": 4}})


def test_admin_sets_arm_statistics(eng: Engine) -> None:
    make(eng)
    eng.set_arm_stats("ab", "a", {"decisions": 120, "rewards": 100, "reward_sum": 12})
    a = eng.stats("ab")["arms"][0]
    assert (a["decisions"], a["rewards"], a["reward_sum"]) == (120, 100, 12)
    assert a["mean_reward"] == pytest.approx(0.12)
    kinds = [e.kind for e in eng.storage.events("ab")]
    assert kinds == ["set_stats"]
    with pytest.raises(InvalidInput, match="reward_sum"):
        eng.set_arm_stats("ab", "a", {"rewards": 10, "reward_sum": 11})
    with pytest.raises(InvalidInput, match="decisions"):
        eng.set_arm_stats("ab", "a", {"decisions": -1})


def _run_gain(tmp_path: Path, seed: int, means: tuple[float, float]) -> tuple[float, float, float]:
    """One adaptive experiment through the engine: (estimate, se, true expected gain)."""
    storage = SQLiteStorage(str(tmp_path / f"g{seed}.db"))
    eng = Engine(storage, seed=seed)
    eng.create_experiment(
        {"id": "g", "policy": {"type": "epsilon_greedy", "epsilon": 0.2},
         "arms": [{"id": "a"}, {"id": "b"}]}
    )  # fmt: skip
    rng = np.random.default_rng(10_000 + seed)  # independent of the engine's own stream
    truth = 0.0
    for d in eng.decide("g", n=50)["decisions"]:  # a first batch, then one at a time
        mu = means["ab".index(d["arm_id"])]
        truth += mu - sum(means) / 2
        eng.reward("g", [RewardItem(float(rng.random() < mu), decision_id=d["decision_id"])])
    for _ in range(250):
        d = eng.decide("g")
        mu = means["ab".index(d["arm_id"])]
        truth += mu - sum(means) / 2
        eng.reward("g", [RewardItem(float(rng.random() < mu), decision_id=d["decision_id"])])
    gain = eng.stats("g")["reward_gain_vs_equal_split"]
    storage.close()
    assert gain["method"] == "ips"
    return gain["estimate"], gain["se"], truth


@pytest.mark.parametrize("means", [(0.3, 0.3), (0.2, 0.5)])
def test_reward_gain_is_unbiased_under_adaptive_allocation(
    tmp_path: Path, means: tuple[float, float]
) -> None:
    """Inverse-propensity weighting keeps the gain estimate unbiased although ε-greedy
    adapts its allocation: over 30 experiments the z-scores of (estimate − truth) have
    mean within 3/√30 of 0 and cover the truth at about the nominal 95% (≥ 80% here:
    3 binomial SE below 95% for 30 experiments)."""
    z = []
    for seed in range(30):
        estimate, se, truth = _run_gain(tmp_path, seed, means)
        z.append((estimate - truth) / se)
    z_arr = np.array(z)
    assert abs(z_arr.mean()) <= 3 / np.sqrt(30)
    assert np.mean(np.abs(z_arr) <= 1.96) >= 0.8


def test_reward_gain_falls_back_to_the_model_without_propensities(eng: Engine) -> None:
    make(eng)
    feed(eng, (30, 100), (60, 100))  # batch rewards carry no propensity
    gain = eng.stats("ab")["reward_gain_vs_equal_split"]
    assert gain["method"] == "model"


def test_two_workers_ticking_take_one_snapshot(eng: Engine, clock: Clock, tmp_path: Path) -> None:
    make(eng, snapshot_interval=10)
    other = SQLiteStorage(str(tmp_path / "c.db"))  # a second worker's connection
    clock.t += 10
    assert [r.id for r in other.due_for_snapshot(clock.t)] == ["ab"]  # it sees it due ...
    assert eng.tick() == 1  # ... but this worker takes it first
    assert other.add_snapshot(Snapshot("ab", clock.t, "interval", {"arms": []})) is False
    assert eng.history("ab")["reason"] == ["created", "interval"]
    other.close()


def test_concluding_by_hand_records_the_leader_or_the_winner_given(
    eng: Engine, clock: Clock
) -> None:
    make(eng)
    feed(eng, (50, 1000), (58, 1000))  # the rule (P(best) 0.999, 2000 rewards) is not met
    expected = beta_prob_best(np.array([51.0, 59.0]), np.array([951.0, 943.0]))
    leader = "ab"[int(np.argmax(expected))]
    clock.t += 7
    exp = eng.update_experiment("ab", {"status": "concluded"})
    assert exp.status == "concluded" and exp.conclusion is not None
    c = exp.conclusion
    assert c["winner"] == leader and c["manual"] is True and c["rule_met"] is False
    assert c["prob_best"] == pytest.approx(expected["ab".index(leader)], abs=1e-12)
    assert c["after_conclusion"] == "serve_winner" and "Concluded by hand" in c["reason"]
    assert eng.history("ab")["reason"] == ["created", "conclusion"]
    assert eng.conclusion("ab")["concluded"] == c
    out = eng.decide("ab", n=100)["decisions"]
    assert {d["arm_id"] for d in out} == {leader} and {d["propensity"] for d in out} == {1.0}
    # another winner, named: recorded with its own P(best)
    other = "b" if leader == "a" else "a"
    c2 = eng.update_experiment("ab", {"status": "concluded", "winner": other}).conclusion
    assert c2 is not None and c2["winner"] == other
    assert c2["prob_best"] == pytest.approx(expected["ab".index(other)], abs=1e-12)
    # re-opened as for an automatic conclusion
    eng.update_experiment("ab", {"status": "running"})
    assert eng.get_experiment("ab").conclusion is None


def test_a_refused_conclusion_writes_nothing(eng: Engine) -> None:
    make(eng)
    before = eng.get_experiment("ab")
    with pytest.raises(InvalidInput) as bad:
        eng.update_experiment("ab", {"status": "concluded", "winner": "zzz"})
    assert bad.value.field == "winner"
    with pytest.raises(InvalidInput, match="goes alone"):
        eng.update_experiment("ab", {"status": "concluded", "name": "x"})
    with pytest.raises(InvalidInput, match="winner"):  # a winner only with concluded
        eng.update_experiment("ab", {"status": "paused", "winner": "a"})
    eng.delete_arm("ab", "a")
    with pytest.raises(InvalidInput):  # a deleted arm cannot win
        eng.update_experiment("ab", {"status": "concluded", "winner": "a"})
    after = eng.get_experiment("ab")
    assert after.status == "running" and after.conclusion is None
    assert after.version == before.version + 1  # only the deletion
    assert eng.history("ab")["reason"] == ["created"]
