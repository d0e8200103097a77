"""Stateful (and contextual) policies in the engine: state persisted, replayable, grown, reset."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from octobandit.engine import Engine, RewardItem
from octobandit.engine.state import decode_state
from octobandit.errors import InvalidInput
from octobandit.policies import POLICIES, ArmStats
from octobandit.policies.base import FloatArray, IntArray, Policy
from octobandit.storage import SQLiteStorage


@dataclass(frozen=True, slots=True)
class ToyContextual(Policy):
    """Keeps Σ c·r·x and Σ c·r/p per arm; chooses by a softmax of x·(Σ r x)."""

    type = "toy_contextual"
    stateful = True
    contextual = True
    reward: str = "binary"

    def probabilities(self, stats: ArmStats, enabled: Any = None) -> FloatArray:
        raise AssertionError("a contextual policy is asked through state_probabilities")

    def init_state(self, batch: int, k: int, dim: int = 0) -> dict[str, FloatArray]:
        return {"xr": np.zeros((batch, k, dim)), "ips": np.zeros((batch, k))}

    def update_state(
        self,
        state: dict[str, FloatArray],
        arms: IntArray,
        rewards: FloatArray,
        counts: FloatArray,
        *,
        propensities: FloatArray,
        contexts: FloatArray | None,
        times: FloatArray,
    ) -> None:
        assert contexts is not None
        rows = np.arange(len(arms))
        state["xr"][rows, arms] += (counts * rewards)[:, None] * contexts
        state["ips"][rows, arms] += counts * rewards / propensities

    def state_probabilities(
        self,
        stats: ArmStats,
        enabled: Any,
        state: dict[str, FloatArray],
        *,
        contexts: FloatArray | None = None,
        time: float = 0.0,
    ) -> FloatArray:
        assert contexts is not None
        scores = np.einsum("md,kd->mk", contexts, state["xr"][0]) * 0.05
        scores = np.where(enabled, scores, -np.inf)
        w = np.exp(scores - scores.max(axis=1, keepdims=True))
        return np.asarray(w / w.sum(axis=1, keepdims=True), dtype=np.float64)


@pytest.fixture
def eng(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    monkeypatch.setitem(POLICIES, ToyContextual.type, ToyContextual)
    storage = SQLiteStorage(str(tmp_path / "s.db"))
    yield Engine(storage, seed=11)
    storage.close()


def make(eng: Engine) -> None:
    eng.create_experiment(
        {
            "id": "ctx",
            "policy": {"type": "toy_contextual"},
            "context": {"features": ["x0", "x1"]},
            "arms": [{"id": "a"}, {"id": "b"}, {"id": "c"}],
        }
    )


def replay(eng: Engine, policy: Policy, k: int, dim: int) -> dict[str, FloatArray]:
    """Fold the event log through the policy's own update (since the last reset)."""
    state = policy.init_state(1, k, dim)
    decisions: dict[str, Any] = {}
    arms = [a.arm_id for a in eng.get_experiment("ctx").arms]
    for e in eng.storage.events("ctx"):
        if e.kind == "reset":
            state = policy.init_state(1, k, dim)
        elif e.kind == "decision":
            decisions[e.decision_id or ""] = e
        elif e.kind == "reward" and e.decision_id is not None:
            d = decisions[e.decision_id]
            policy.update_state(
                state,
                np.array([arms.index(e.arm_id or "")]),
                np.array([e.reward]),
                np.array([e.count]),
                propensities=np.array([d.propensity]),
                contexts=np.array([d.context], dtype=float),
                times=np.array([e.ts]),
            )
    return state


def test_state_is_persisted_replayable_grown_and_reset(eng: Engine, tmp_path: Path) -> None:
    make(eng)
    rng = np.random.default_rng(0)
    for step in range(300):
        x = rng.normal(size=2).round(3).tolist()
        d = eng.decide("ctx", context={"x0": x[0], "x1": x[1]})
        assert 0 < d["propensity"] <= 1
        good = {"a": x[0] > 0, "b": x[1] > 0, "c": False, "d": True}[d["arm_id"]]
        eng.reward("ctx", [RewardItem(float(good), decision_id=d["decision_id"])])
        if step == 100:
            eng.add_arm("ctx", {"id": "d"})
    policy = ToyContextual()
    stored = decode_state(eng.storage.get_experiment("ctx").policy_state or b"")
    assert stored["xr"].shape == (1, 4, 2)
    expected = replay(eng, policy, 4, 2)
    for name in stored:
        assert np.array_equal(stored[name], expected[name]), name  # bit for bit
    # a new engine on the same database picks the state up
    again = Engine(SQLiteStorage(str(tmp_path / "s.db")), seed=1)
    d = again.decide("ctx", context=[1.0, -1.0])
    assert d["arm_id"] in {"a", "b", "c", "d"}
    # reset: state back to its initial value
    eng.reset("ctx")
    eng.decide("ctx", context=[0.5, 0.5])
    assert eng.storage.get_experiment("ctx").policy_state is None


def test_contextual_rules(eng: Engine) -> None:
    with pytest.raises(InvalidInput, match=r"context\.features"):
        eng.create_experiment({"id": "nope", "policy": {"type": "toy_contextual"}})
    make(eng)
    with pytest.raises(InvalidInput, match="arm_id"):
        eng.reward("ctx", [RewardItem(1.0, arm_id="a")])
    with pytest.raises(InvalidInput, match="context"):
        eng.decide("ctx")
