"""The engine's telemetry (for /metrics): group commits, storage errors, ticks, its report."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest

from octobandit.engine import Engine
from octobandit.engine.ops import DecideOp
from octobandit.engine.telemetry import COMMIT_SIZE_BUCKETS, Histogram
from octobandit.errors import StorageFull, StorageLost
from octobandit.storage import SQLiteStorage


@pytest.fixture
def engine(tmp_path: Path) -> Any:
    storage = SQLiteStorage(str(tmp_path / "t.db"))
    engine = Engine(storage, seed=5)
    engine.create_experiment({"id": "t1", "arms": [{"id": "a"}, {"id": "b"}]})
    yield engine
    storage.close()


def test_histogram_buckets_are_upper_bounds() -> None:
    h = Histogram((1.0, 2.0, 4.0))
    for v in (0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 9.0):
        h.observe(v)
    report = h.report()
    # a value equal to a bound falls in that bound's bucket (Prometheus: le)
    assert report["buckets"] == [2, 2, 2, 1]
    assert report["count"] == 7
    assert report["sum"] == pytest.approx(21.0)


def test_group_sizes_and_commits(engine: Engine) -> None:
    for size in (1, 3, 512):
        results = engine.execute([DecideOp("t1", None, None, None) for _ in range(size)])
        assert not any(isinstance(r, BaseException) for r in results)
    report = engine.metrics()
    sizes = report["commit_size"]
    assert sizes["count"] == 3 and sizes["sum"] == 516
    bounds = [*COMMIT_SIZE_BUCKETS, float("inf")]
    expected = [0] * len(bounds)
    for size in (1, 3, 512):
        expected[next(i for i, b in enumerate(bounds) if size <= b)] += 1
    assert sizes["buckets"] == expected
    assert report["commit_seconds"]["count"] == 3
    assert report["commit_seconds"]["sum"] > 0
    ((_, arms),) = report["experiments"]
    assert sum(d for _, d, _ in arms) == 516


def test_decisions_per_arm_match_the_stats(engine: Engine) -> None:
    for _ in range(40):
        engine.decide("t1")
    stats = {a["arm_id"]: (a["decisions"], a["rewards"]) for a in engine.stats("t1")["arms"]}
    ((experiment_id, arms),) = engine.metrics()["experiments"]
    assert experiment_id == "t1"
    assert {arm: (d, r) for arm, d, r in arms} == stats
    assert sum(d for _, d, _ in arms) == 40


def test_storage_errors_by_kind(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    errors = iter([StorageFull("full"), StorageFull("full"), StorageLost("lost")])

    def failing(*args: Any, **kwargs: Any) -> Any:
        raise next(errors)

    monkeypatch.setattr(engine.storage, "batch", failing)
    for _ in range(3):
        with pytest.raises((StorageFull, StorageLost)):
            engine.execute([DecideOp("t1", None, None, None)])
    report = engine.metrics()
    assert report["storage_errors"] == {"storage_full": 2, "storage_lost": 1}
    assert report["commit_size"]["count"] == 3  # failed groups are groups too


def test_ticks_and_snapshots(engine: Engine) -> None:
    later = engine._clock() + 3600  # past the experiment's snapshot interval (300 s)
    first = engine.tick(later)
    second = engine.tick(later)  # nothing due again at once
    report = engine.metrics()
    assert report["ticks"] == 2
    assert report["snapshots"] == first + second
    assert first >= 1 and second == 0


def test_wal_size_and_the_report_crosses_a_socket(engine: Engine) -> None:
    report = engine.metrics()
    assert isinstance(report["wal_bytes"], int) and report["wal_bytes"] >= 0
    assert pickle.loads(pickle.dumps(report)) == report


def test_a_store_without_a_wal_has_no_wal_size(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delattr(type(engine.storage), "wal_size")
    assert engine.metrics()["wal_bytes"] is None
