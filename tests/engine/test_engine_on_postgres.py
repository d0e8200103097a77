"""The engine on every store (SQLite, PostgreSQL, PostgreSQL + Redis): a realistic
scenario leaves statistics equal to the fold of the event log, and two engines on one
database see each other's writes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from test_event_log import agrees_with_fold, fold, stored_row

from octobandit.engine import DecideOp, Engine, RewardItem, RewardOp
from octobandit.storage import Storage

EXPERIMENTS = {
    "ts": {"type": "thompson"},
    "eg": {"type": "epsilon_greedy", "epsilon": 0.2},
}


@pytest.fixture(params=["sqlite", "postgresql", "postgresql+redis"])
def stores(request: pytest.FixtureRequest, store_opener: Any) -> Any:
    """Opens store objects on one fresh database of the backend."""
    return store_opener(request.param)


def _results(engine: Engine, ops: list[Any]) -> list[Any]:
    results = engine.execute(ops)
    for r in results:
        assert not isinstance(r, BaseException), r
    return results


def test_a_scenario_leaves_the_fold_of_the_log(stores: Callable[[], Storage]) -> None:
    engine = Engine(stores(), seed=7)
    for exp_id, policy in EXPERIMENTS.items():
        engine.create_experiment(
            {"id": exp_id, "policy": policy, "arms": [{"id": f"arm{i}"} for i in range(3)]}
        )
    rng = np.random.default_rng(3)
    means = {"arm0": 0.2, "arm1": 0.5, "arm2": 0.7}
    pending: list[tuple[str, str, str]] = []  # (experiment, decision, arm) awaiting a reward
    sticky: set[str] = set()
    decided = 0
    while decided < 500:
        ops: list[Any] = []
        for _ in range(int(rng.integers(5, 25))):
            exp_id = "ts" if rng.random() < 0.5 else "eg"
            unit = "user-1" if rng.random() < 0.05 else None
            ops.append(DecideOp(exp_id, unit_id=unit))
        rewards, pending = pending[: len(pending) // 2], pending[len(pending) // 2 :]
        for exp_id, decision_id, arm in rewards:
            value = float(rng.random() < means[arm])
            ops.append(RewardOp(exp_id, [RewardItem(value, decision_id=decision_id)]))
        for op, result in zip(ops, _results(engine, ops), strict=True):
            if isinstance(op, DecideOp):
                decided += 1
                pending.append((op.experiment_id, result["decision_id"], result["arm_id"]))
                if op.unit_id is not None:
                    sticky.add(f"{op.experiment_id}:{result['arm_id']}")
        if decided >= 250 and not any(e.kind == "reset" for e in engine.storage.events("eg")):
            engine.reset("eg")
            pending = [p for p in pending if p[0] != "eg"]
    for exp_id in ("ts", "eg"):  # a sticky unit keeps its arm (until a reset)
        assert len({s for s in sticky if s.startswith(f"{exp_id}:")}) <= 2
    events = list(engine.storage.events())
    folded, sizes = fold(events), fold(events, magnitude=True)
    rewards = len([e for e in events if e.kind == "reward"])
    for exp_id in EXPERIMENTS:
        for arm in engine.get_experiment(exp_id).arms:
            key = (exp_id, arm.arm_id)
            assert agrees_with_fold(folded[key], sizes[key], stored_row(arm), rewards)
    assert sum(1 for e in engine.storage.events() if e.kind == "decision") == decided


def test_two_engines_on_one_database_see_each_others_writes(
    stores: Callable[[], Storage],
) -> None:
    first, second = Engine(stores(), seed=1), Engine(stores(), seed=2)
    first.create_experiment(
        {"id": "shared", "policy": {"type": "thompson"}, "arms": [{"id": "a"}, {"id": "b"}]}
    )
    sent = {"a": 0, "b": 0}
    for step in range(40):
        engine = first if step % 2 == 0 else second
        ops: list[Any] = [DecideOp("shared"), DecideOp("shared")]
        for arm in ("a", "b"):
            count = step % 5 + 1
            sent[arm] += count
            ops.append(RewardOp("shared", [RewardItem(1.0, arm_id=arm, count=count)]))
        _results(engine, ops)
    for engine in (first, second):
        arms = {a.arm_id: a for a in engine.get_experiment("shared").arms}
        assert {k: arms[k].rewards for k in sent} == {k: float(v) for k, v in sent.items()}
        assert sum(a.decisions for a in arms.values()) == 80
    folded = fold(list(first.storage.events()))
    for arm in first.get_experiment("shared").arms:
        assert folded[("shared", arm.arm_id)] == stored_row(arm)
