"""The adapter: decisions joined to their counted outcomes, as the estimators' arrays."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from octobandit.engine import Engine
from octobandit.engine.ops import RewardItem
from octobandit.evaluation import EvaluationError
from octobandit.offline import engine_rounds, rounds_from_pages
from octobandit.storage import SQLiteStorage


def _decision(seq: int, d: str, arm: str, p: Any = 0.5, ctx: Any = None) -> dict[str, Any]:
    return {
        "seq": seq, "ts": 100.0 + seq, "kind": "decision", "decision_id": d, "arm_id": arm,
        "propensity": p, "context": ctx, "reward": None,
    }  # fmt: skip


def _outcome(seq: int, d: str, r: float, kind: str = "reward") -> dict[str, Any]:
    return {"seq": seq, "ts": 100.0 + seq, "kind": kind, "decision_id": d, "reward": r}


def test_decisions_join_their_first_outcome_and_the_rest_is_counted() -> None:
    pages = [
        [_decision(1, "d1", "a", 0.25, [1, 2]), _decision(2, "d2", "b", 0.75, [3, 4])],
        [
            _outcome(3, "d2", 1.0),
            _outcome(4, "d2", 0.0),  # a second outcome: not counted
            _outcome(5, "gone", 1.0),  # no such decision
            _decision(6, "d3", "c", 1.0, [5, 6]),  # an arm the record does not know
            _decision(7, "d4", "a", 0.5, [7, 8]),  # no outcome yet
            _outcome(8, "d1", 0.0, "default"),
            _outcome(9, "d3", 2.5),
            {"seq": 10, "ts": 110.0, "kind": "part", "decision_id": "d4", "reward": 1.0},
        ],
    ]
    rounds = rounds_from_pages(["a", "b"], pages)
    assert rounds.arms == ["a", "b", "c"]
    assert rounds.decision_ids == ["d1", "d2", "d3"]  # decision order, not outcome order
    assert rounds.action.tolist() == [0, 1, 2]
    assert rounds.reward.tolist() == [0.0, 1.0, 2.5]
    assert rounds.pscore.tolist() == [0.25, 0.75, 1.0]
    assert rounds.seq.tolist() == [1, 2, 6] and rounds.outcome_seq.tolist() == [8, 3, 9]
    assert rounds.ts.tolist() == [101.0, 102.0, 106.0]
    assert rounds.context is not None and rounds.context.tolist() == [[1, 2], [3, 4], [5, 6]]
    assert (rounds.dropped, rounds.orphans, rounds.older) == (1, 2, 0)
    assert set(rounds.arrays()) == {"reward", "action", "pscore", "context"}


def test_limit_keeps_the_most_recent_decisions() -> None:
    events = []
    for i in range(10):
        events += [_decision(2 * i + 1, f"d{i}", "ab"[i % 2]), _outcome(2 * i + 2, f"d{i}", i)]
    rounds = rounds_from_pages(["a", "b"], [events], limit=3)
    assert rounds.decision_ids == ["d7", "d8", "d9"] and rounds.older == 7
    assert rounds.reward.tolist() == [7.0, 8.0, 9.0]


@pytest.mark.parametrize(
    ("contexts", "features", "expected"),
    [
        ([{"x": 1, "y": 2}, {"y": 4, "x": 3}], ["x", "y"], [[1, 2], [3, 4]]),
        ([{"x": 1}, {"x": 3}], None, None),  # objects without declared features
        ([[1, 2], [3]], None, None),  # sizes differ
        ([[1, 2], None], None, None),
        ([["a", 1], [2, 3]], None, None),
    ],
)
def test_contexts_are_vectors_only_when_every_one_is(
    contexts: list[Any], features: list[str] | None, expected: list[list[float]] | None
) -> None:
    events = []
    for i, c in enumerate(contexts):
        events += [_decision(2 * i + 1, f"d{i}", "a", ctx=c), _outcome(2 * i + 2, f"d{i}", 1.0)]
    rounds = rounds_from_pages(["a"], [events], features=features)
    got = None if rounds.context is None else rounds.context.tolist()
    assert got == expected


@pytest.mark.parametrize(("p", "what"), [(None, "missing"), (0.0, "zero"), (1.5, "not in")])
def test_a_bad_propensity_is_an_evaluation_error_naming_the_decision(p: Any, what: str) -> None:
    events = [_decision(1, "ok", "a"), _outcome(2, "ok", 1.0)]
    events += [_decision(3, "bad", "a", p), _outcome(4, "bad", 1.0)]
    with pytest.raises(EvaluationError, match=f"'bad'.*{what}") as info:
        rounds_from_pages(["a"], [events])
    assert info.value.array == "pscore" and info.value.index == 1


def test_a_log_without_outcomes_cannot_be_evaluated() -> None:
    with pytest.raises(EvaluationError, match="no decision with an outcome"):
        rounds_from_pages(["a"], [[_decision(1, "d", "a")]])


def test_engine_rounds_read_the_log_page_by_page() -> None:
    engine = Engine(SQLiteStorage(":memory:"), seed=3)
    engine.create_experiment(
        {"id": "e", "arms": [{"id": "a"}, {"id": "b"}], "policy": {"type": "epsilon_greedy"}}
    )
    made = []
    for i in range(30):
        d = engine.decide("e", context=[float(i), 1.0])
        made.append(d)
        if i < 25:
            engine.reward("e", [RewardItem(float(i % 3 == 0), decision_id=d["decision_id"])])
    rounds = engine_rounds(engine, "e")
    assert rounds.n == 25 and rounds.dropped == 5
    assert rounds.decision_ids == [d["decision_id"] for d in made[:25]]
    assert [rounds.arms[a] for a in rounds.action] == [d["arm_id"] for d in made[:25]]
    assert np.allclose(rounds.pscore, [d["propensity"] for d in made[:25]])
    assert rounds.reward.tolist() == [float(i % 3 == 0) for i in range(25)]
    assert rounds.context is not None and rounds.context[:, 0].tolist() == list(range(25))
    assert (rounds.outcome_seq > rounds.seq).all()
