"""State that does not merge by addition (discounted sums, sliding windows, VDBE's
exploration rate) under several writers: the single-writer rule.

Every store serialises its writers (SQLite's write lock, PostgreSQL's store row and
session lock), and an engine re-reads a stateful experiment after another process
wrote, inside the write that updates it. So two engines taking turns on one store
end with exactly the state one engine reaches alone from the same rewards at the same
times; an engine that kept its cached state would overwrite the other's updates.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from octobandit.engine import Engine, RewardItem, RewardOp
from octobandit.storage import Storage, open_store

POLICIES = {
    "discounted": {"type": "discounted_thompson", "half_life": 10},
    "window": {"type": "sliding_window_ucb", "window": 25},
    "vdbe": {"type": "vdbe"},
}


@pytest.fixture(params=["sqlite", "postgresql", "postgresql+redis"])
def stores(request: pytest.FixtureRequest, store_opener: Any) -> Any:
    """Opens store objects on one fresh database of the backend."""
    return store_opener(request.param)


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def _rewards(step: int) -> list[Any]:
    arm = ["a", "b", "c"][step % 3]
    value = float((step * 7) % 5 < 2)
    return [RewardOp(exp, [RewardItem(value, arm_id=arm, count=1 + step % 2)]) for exp in POLICIES]


def _states(engine: Engine) -> dict[str, bytes | None]:
    return {exp: engine.storage.get_experiment(exp).policy_state for exp in POLICIES}  # type: ignore[union-attr]


def test_two_engines_taking_turns_reach_the_state_of_one(
    stores: Callable[[], Storage], tmp_path: Path
) -> None:
    clock = Clock()
    first, second = Engine(stores(), seed=1, clock=clock), Engine(stores(), seed=2, clock=clock)
    for exp, policy in POLICIES.items():
        first.create_experiment({"id": exp, "policy": policy, "arms": [{"id": a} for a in "abc"]})
    alone_clock = Clock()
    alone = Engine(open_store(str(tmp_path / "alone.db")), seed=3, clock=alone_clock)
    for exp, policy in POLICIES.items():
        alone.create_experiment({"id": exp, "policy": policy, "arms": [{"id": a} for a in "abc"]})
    alone_clock.now = clock.now
    for step in range(60):
        engine = first if step % 3 else second  # turns of uneven length
        for result in engine.execute(_rewards(step)):
            assert not isinstance(result, BaseException), result
        for result in alone.execute(_rewards(step)):
            assert not isinstance(result, BaseException), result
    together = _states(first)
    assert all(together.values())
    assert together == _states(second) == _states(alone)
    alone.storage.close()
