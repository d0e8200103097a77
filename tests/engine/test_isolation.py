"""One bad experiment must not hurt the others: group commit and the snapshot tick."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
import pytest

from octobandit.api.app import create_app
from octobandit.api.errors import http_status
from octobandit.config import Settings
from octobandit.engine import Engine, lifecycle
from octobandit.engine.ops import DecideOp, RewardItem, RewardOp
from octobandit.errors import OctobanditError
from octobandit.policies.epsilon_greedy import EpsilonGreedy
from octobandit.storage import SQLiteStorage

GOOD = ("good1", "good2")


def _create(engine: Engine, exp_id: str, policy: str) -> None:
    engine.create_experiment(
        {"id": exp_id, "policy": {"type": policy}, "arms": [{"id": "a"}, {"id": "b"}]}
    )


@pytest.fixture
def poisoned(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Engine:
    """Two healthy Thompson experiments and one whose policy (ε-greedy) raises a bug."""
    for exp_id in GOOD:
        _create(engine, exp_id, "thompson")
    _create(engine, "bad", "epsilon_greedy")

    def boom(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("poisoned experiment")

    monkeypatch.setattr(EpsilonGreedy, "probabilities", boom)
    return engine


def _stats(path: str, exp_id: str) -> dict[str, Any]:
    """Statistics read through a fresh connection: what is durably in the file."""
    store = SQLiteStorage(path)
    try:
        return Engine(store).stats(exp_id)
    finally:
        store.close()


def test_a_failing_experiment_fails_only_its_requests(poisoned: Engine) -> None:
    engine = poisoned
    ops = [
        DecideOp("good1"),
        DecideOp("bad"),
        RewardOp("good2", [RewardItem(1.0, arm_id="a")]),
        RewardOp("bad", [RewardItem(1.0, arm_id="a")]),  # same experiment: undone too
        DecideOp("good2", n=3),
        DecideOp("bad", n=0),  # rejected by validation before the failure: keeps its 422
    ]
    results = engine.execute(ops)
    assert results[0]["experiment_id"] == "good1"
    assert isinstance(results[1], RuntimeError) and not isinstance(results[1], OctobanditError)
    assert results[2].accepted == 1
    assert isinstance(results[3], RuntimeError)
    assert len(results[4]["decisions"]) == 3
    assert isinstance(results[5], OctobanditError) and http_status(results[5]) == 422
    assert "bad" not in engine._live  # its cached state is dropped

    path = engine.storage.path  # type: ignore[attr-defined]
    assert _stats(path, "good1")["total_decisions"] == 1
    good2 = _stats(path, "good2")
    assert good2["total_decisions"] == 3 and good2["total_reward"] == 1.0
    bad = _stats(path, "bad")
    assert bad["total_decisions"] == 0 and bad["total_reward"] == 0.0
    assert [e.kind for e in engine.storage.events("bad")] == []
    kinds = [e.kind for e in engine.storage.events("good2")]
    assert kinds.count("decision") == 3 and kinds.count("reward") == 1


def test_the_experiment_works_again_once_the_fault_is_gone(
    poisoned: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = poisoned
    assert isinstance(engine.execute([DecideOp("bad")])[0], RuntimeError)
    monkeypatch.undo()
    (decision,) = engine.execute([DecideOp("bad")])
    assert decision["arm_id"] in {"a", "b"}
    assert engine.stats("bad")["total_decisions"] == 1


def test_http_group_answers_json_500_only_for_the_bad_experiment(poisoned: Engine) -> None:
    engine = poisoned
    groups: list[set[str]] = []
    execute = engine.execute

    def recording(ops: Any) -> Any:
        groups.append({op.experiment_id for op in ops})
        return execute(ops)

    engine.execute = recording  # type: ignore[method-assign]
    app = create_app(engine, Settings())

    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as c:
            return await asyncio.gather(
                *(
                    c.post(f"/v1/experiments/{exp_id}/decisions", json={})
                    for _ in range(10)
                    for exp_id in (*GOOD, "bad")
                )
            )

    responses = asyncio.run(run())
    app.backend.close()
    assert any(len(g) == 3 for g in groups), groups  # they did share a transaction
    for r in responses:
        exp_id = r.request.url.path.split("/")[3]
        if exp_id == "bad":
            assert r.status_code == 500
            assert r.json()["error"]["code"] == "internal"
        else:
            assert r.status_code == 200, r.text
            assert r.json()["experiment_id"] == exp_id
    path = engine.storage.path  # type: ignore[attr-defined]
    for exp_id in GOOD:
        assert _stats(path, exp_id)["total_decisions"] == 10
    assert _stats(path, "bad")["total_decisions"] == 0


def test_tick_goes_on_past_a_failing_experiment(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for exp_id in ("first", "bad", "last"):
        _create(engine, exp_id, "thompson")
    snapshot_data = lifecycle.snapshot_data

    def poisoned(record: Any) -> Any:
        if record.id == "bad":
            raise ZeroDivisionError("poisoned statistics")
        return snapshot_data(record)

    monkeypatch.setattr(lifecycle, "snapshot_data", poisoned)
    later = engine.get_experiment("first").created_at + 10_000
    with caplog.at_level(logging.ERROR, logger="octobandit.engine"):
        assert engine.tick(now=later) == 2
    assert "'bad'" in caplog.text

    def reasons(exp_id: str) -> list[str]:
        return [s.reason for s in engine.storage.snapshots(exp_id)]

    assert reasons("first") == reasons("last") == ["created", "interval"]
    assert reasons("bad") == ["created"]
    monkeypatch.undo()  # fixed: the next tick takes its snapshot
    assert engine.tick(now=later + 1) == 1
    assert reasons("bad") == ["created", "interval"]


def test_storage_wide_failure_still_fails_the_whole_group(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk is not one experiment's fault: the group is rolled back and raised."""
    import sqlite3

    from octobandit.errors import StorageFull
    from octobandit.storage.sqlite import SQLiteBatch

    for exp_id in GOOD:
        _create(engine, exp_id, "thompson")
    append = SQLiteBatch.append_decisions
    calls = 0

    def full(self: SQLiteBatch, events: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            error = sqlite3.OperationalError("database or disk is full")
            error.sqlite_errorcode = 13  # type: ignore[attr-defined]
            raise error
        append(self, events)

    monkeypatch.setattr(SQLiteBatch, "append_decisions", full)
    with pytest.raises(StorageFull):
        engine.execute([DecideOp("good1"), DecideOp("good2")])
    monkeypatch.undo()
    assert engine.stats("good1")["total_decisions"] == 0  # the first part was rolled back too
    health = engine.storage.health()
    assert health is not None and health["reason"] == "storage_full"
    engine.execute([DecideOp("good1")])  # the disk has room again: a write clears it
    assert engine.storage.health() is None
