"""The engine's reports carry exactly the fields of their wire types (``octobandit.wire``).

The HTTP door encodes every control-plane answer through its wire type, and the
Python client decodes with the same types: a field the engine adds without
adding it to the wire type would silently vanish from the answer, so this
compares the two, nested levels included.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec

from octobandit import wire
from octobandit.api.views import experiment_view
from octobandit.engine import Engine, RewardItem
from octobandit.engine.ops import answer_body


def _fields(kind: type[msgspec.Struct]) -> set[str]:
    return set(kind.__struct_fields__)


def _same(report: dict[str, Any], kind: type[msgspec.Struct]) -> None:
    assert set(report) == _fields(kind), kind.__name__
    assert msgspec.convert(report, kind) is not None  # strict: every value has its type


def _experiment(engine: Engine) -> None:
    engine.create_experiment(
        {
            "id": "e",
            "policy": {"type": "thompson"},
            "arms": [
                {"id": "a", "payload": {"x": 1}},
                {"id": "b", "prior": {"alpha": 2, "beta": 3}},
            ],
            "stopping": {"min_rewards_per_arm": 1},
            "snapshot_interval": 1,
        }
    )
    for _ in range(20):
        d = engine.decide("e")
        _same(d, wire.Decision)
        engine.reward(
            "e", [RewardItem(reward=float(d["arm_id"] == "a"), decision_id=d["decision_id"])]
        )


def test_stats_conclusion_and_history_have_the_wire_fields(engine: Engine) -> None:
    _experiment(engine)
    engine.tick(time.time() + 2)  # a second snapshot
    stats = engine.stats("e")
    _same(stats, wire.Stats)
    _same(stats["reward_gain_vs_equal_split"], wire.RewardGain)
    for arm in stats["arms"]:
        _same(arm, wire.ArmStats)
    conclusion = engine.conclusion("e")
    _same(conclusion, wire.Conclusion)
    for arm in conclusion["arms"]:
        _same(arm, wire.ArmPosterior)
    history = engine.history("e")
    _same(history, wire.History)
    assert len(history["at"]) >= 2
    for series in history["arms"].values():
        _same(series, wire.ArmSeries)


def test_batches_and_reward_answers_have_the_wire_fields(engine: Engine) -> None:
    _experiment(engine)
    batch = engine.decide("e", n=3)
    _same(batch, wire.DecisionBatch)
    answer = engine.reward("e", [RewardItem(reward=1.0, arm_id="a", count=2)])
    body = msgspec.json.decode(answer_body(answer))  # as the door sends it
    assert "late" not in body  # only for an experiment with an attribution window
    _same({**body, "late": None}, wire.RewardAnswer)
    engine.create_experiment(
        {"id": "w", "arms": [{"id": "a"}], "reward": {"attribution_window": 60}}
    )
    d = engine.decide("w")
    answer = engine.reward("w", [RewardItem(reward=1.0, decision_id=d["decision_id"])])
    _same(msgspec.json.decode(answer_body(answer)), wire.RewardAnswer)


def test_an_experiment_answer_round_trips(engine: Engine) -> None:
    _experiment(engine)
    view = experiment_view(engine.get_experiment("e"))
    again = msgspec.json.decode(msgspec.json.encode(view), type=wire.Experiment)
    assert again == view and again.arms[1].prior is not None
