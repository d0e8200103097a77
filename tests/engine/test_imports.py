"""``Engine.import_logged``: decisions made elsewhere with their outcomes, in batches (one
transaction each), idempotent by decision id, on every store."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from octobandit.engine import Engine
from octobandit.engine.imports import ImportedDecision, ImportedOutcome
from octobandit.engine.state import decode_state
from octobandit.errors import Conflict, InvalidInput
from octobandit.storage import Storage
from octobandit.storage.fold import fold

T0 = 1_600_000_000.0
ARMS = ["a", "b", "c"]


@pytest.fixture(params=["sqlite", "postgresql", "postgresql+redis"])
def engine(request: pytest.FixtureRequest, store_opener: Any) -> Engine:
    opener: Callable[[], Storage] = store_opener(request.param)
    return Engine(opener(), seed=1)


def _id(i: int) -> str:
    return f"{int((T0 + i) * 1000):012x}" + hashlib.sha256(str(i).encode()).hexdigest()[:20]


def _history(n: int, seed: int = 5) -> tuple[list[ImportedDecision], list[ImportedOutcome]]:
    """``n`` decisions of a uniform logger over three arms with contexts; every fourth
    without an outcome."""
    rng = np.random.default_rng(seed)
    decisions, outcomes = [], []
    for i in range(n):
        x = [float(rng.normal()), float(rng.normal())]
        arm = ARMS[int(rng.integers(3))]
        decisions.append(ImportedDecision(_id(i), arm, 1 / 3, T0 + i, {"x": x[0], "y": x[1]}))
        if i % 4:
            outcomes.append(ImportedOutcome(_id(i), float(rng.random() < 0.4), T0 + i + 0.5))
    return decisions, outcomes


def _create(engine: Engine, policy: dict[str, Any], context: bool = False) -> None:
    spec: dict[str, Any] = {"id": "imp", "policy": policy, "arms": [{"id": a} for a in ARMS]}
    if context:
        spec["context"] = {"features": ["x", "y"]}
    engine.create_experiment(spec)


def _stats(engine: Engine) -> dict[str, tuple[Any, ...]]:
    record = engine.storage.get_experiment("imp")
    assert record is not None
    return {
        a.arm_id: (a.decisions, a.rewards, a.reward_sum, a.reward_sq_sum, a.ips)
        for a in record.arms
    }


def test_a_batch_logs_decisions_at_their_time_and_counts_their_outcomes(engine: Engine) -> None:
    _create(engine, {"type": "epsilon_greedy"})
    decisions, outcomes = _history(40)
    # outcomes of the first batch's decisions may come in the second batch
    first = engine.import_logged("imp", decisions[:25], outcomes[:10])
    second = engine.import_logged("imp", decisions[25:], outcomes[10:])
    assert (first.decisions, first.outcomes, first.orphans) == (25, 10, 0)
    assert (second.decisions, second.outcomes) == (15, len(outcomes) - 10)
    log = list(engine.storage.events("imp"))
    logged = {e.decision_id: e for e in log if e.kind == "decision"}
    assert set(logged) == {d.decision_id for d in decisions}
    for d in decisions:
        e = logged[d.decision_id]
        assert (e.ts, e.arm_id, e.propensity, e.context) == (
            d.ts,
            d.arm_id,
            d.propensity,
            d.context,
        )
    rewards = {e.decision_id: e for e in log if e.kind == "reward"}
    assert {k: (e.reward, e.ts) for k, e in rewards.items()} == {
        o.decision_id: (o.reward, o.ts) for o in outcomes
    }
    # the stored statistics are the fold of the log (bit for bit, as the service's own)
    folded = fold(log).arms["imp"]
    for arm, row in _stats(engine).items():
        f = folded[arm]
        assert row == (f.decisions, f.rewards, f.reward_sum, f.reward_sq_sum, f.ips)
    assert sum(row[0] for row in _stats(engine).values()) == 40


def test_importing_again_adds_nothing(engine: Engine) -> None:
    _create(engine, {"type": "thompson"})
    decisions, outcomes = _history(30)
    engine.import_logged("imp", decisions, outcomes)
    before, log = _stats(engine), len(list(engine.storage.events("imp")))
    again = engine.import_logged("imp", decisions, outcomes)
    assert (again.decisions, again.outcomes) == (0, 0)
    assert (again.duplicate_decisions, again.duplicate_outcomes) == (30, len(outcomes))
    assert _stats(engine) == before
    assert len(list(engine.storage.events("imp"))) == log


def test_a_refused_batch_writes_nothing(engine: Engine) -> None:
    _create(engine, {"type": "thompson"})
    decisions, outcomes = _history(10)
    bad = [*decisions[:5], ImportedDecision(_id(99), "a", 1.5, T0), *decisions[5:]]
    with pytest.raises(InvalidInput) as info:
        engine.import_logged("imp", bad, outcomes)
    assert info.value.field == "decisions[5].propensity"
    with pytest.raises(InvalidInput) as info:
        engine.import_logged("imp", decisions, [ImportedOutcome(_id(1), 2.0, T0)])
    assert info.value.field == "outcomes[0].reward"  # a binary experiment
    with pytest.raises(InvalidInput) as info:
        engine.import_logged("imp", [ImportedDecision(_id(1), "zz", 0.5, T0)])
    assert info.value.field == "decisions[0].arm_id"
    assert list(engine.storage.events("imp")) == []
    assert all(row[:4] == (0, 0.0, 0.0, 0.0) for row in _stats(engine).values())
    engine.import_logged("imp", decisions, outcomes)  # the cache was not left dirty
    assert sum(row[0] for row in _stats(engine).values()) == 10


def test_a_decision_id_of_another_experiment_is_a_conflict(engine: Engine) -> None:
    _create(engine, {"type": "thompson"})
    engine.create_experiment({"id": "other", "arms": [{"id": a} for a in ARMS]})
    decisions, outcomes = _history(6)
    engine.import_logged("other", decisions[:1])
    with pytest.raises(Conflict) as info:
        engine.import_logged("imp", decisions, outcomes)
    assert info.value.code == "decision_elsewhere"
    assert list(engine.storage.events("imp")) == []


def test_a_contextual_policy_learns_from_the_imported_contexts(engine: Engine) -> None:
    ridge = 1.0
    _create(engine, {"type": "linucb", "alpha": 1.0, "ridge": ridge}, context=True)
    decisions, outcomes = _history(60)
    engine.import_logged("imp", decisions[:30], outcomes[:20])
    engine.import_logged("imp", decisions[30:], outcomes[20:])
    record = engine.storage.get_experiment("imp")
    assert record is not None and record.policy_state is not None
    state = decode_state(record.policy_state)
    by_id = {d.decision_id: d for d in decisions}
    for k, arm in enumerate(ARMS):
        a = ridge * np.eye(2)
        b = np.zeros(2)
        for o in outcomes:
            d = by_id[o.decision_id]
            if d.arm_id == arm:
                x = np.array([d.context["x"], d.context["y"]])
                a += np.outer(x, x)
                b += o.reward * x
        # sums of at most 60 products of O(1) numbers: a few ulps of the largest term
        scale = 60 * np.abs(a).max() * np.finfo(float).eps * 8
        np.testing.assert_allclose(state["A"][0, k], a, rtol=0, atol=scale)
        np.testing.assert_allclose(state["b"][0, k], b, rtol=0, atol=scale)
        assert np.abs(state["A"][0, k] - ridge * np.eye(2)).sum() > 0  # it did learn
