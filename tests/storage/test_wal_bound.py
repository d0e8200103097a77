"""The WAL stays under its documented bound during sustained writes.

Bound: ``wal_max`` plus the transactions that were already past their check
when the WAL reached it, at most one group per writing process (a writer
checks the WAL before each transaction and waits for a ``TRUNCATE``
checkpoint above ``wal_max``).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path

from octobandit.engine import Engine
from octobandit.engine.ops import DecideOp, RewardItem, RewardOp
from octobandit.storage import SQLiteStorage

SOFT_MB, MAX_MB = 0.25, 1.0
GROUP = 100  # decisions per group commit
PAGE = 4096
#: bytes of one stored decision event, its index entries and its share of a page's slack
EVENT_BYTES = 400


def group_bound() -> int:
    """WAL bytes one group can add: its new rows (table + 2 indexes, pages at least half
    full, so twice the bytes) plus a fixed set of touched pages (arms, experiment, tree
    interior pages), each page written once per transaction with a 24-byte frame header."""
    pages = 2 * GROUP * EVENT_BYTES // PAGE + 40
    return pages * (PAGE + 24)


def _writer(engine: Engine, exp_id: str, stop: threading.Event, errors: list[object]) -> None:
    try:
        while not stop.is_set():
            results = engine.execute(
                [
                    DecideOp(exp_id, n=GROUP // 2),
                    DecideOp(exp_id, n=GROUP // 2),
                    RewardOp(exp_id, [RewardItem(1.0, arm_id="a", count=3)]),
                ]
            )
            errors.extend(r for r in results if isinstance(r, BaseException))
    except Exception as exc:
        errors.append(exc)


def _sustained(
    path: Path, writers: int, volume: int, soft_mb: float = SOFT_MB, max_mb: float = MAX_MB
) -> tuple[int, int]:
    """``writers`` stores (as separate processes would) writing until the database file
    has grown past ``volume`` bytes (at most 60 s); returns (largest sampled WAL size,
    database size)."""
    stores = [
        SQLiteStorage(str(path), wal_soft_mb=soft_mb, wal_max_mb=max_mb) for _ in range(writers)
    ]
    engines = [Engine(s, seed=i) for i, s in enumerate(stores)]
    for i, engine in enumerate(engines):
        engine.create_experiment(
            {"id": f"e{i}", "policy": {"type": "thompson"}, "arms": [{"id": "a"}, {"id": "b"}]}
        )
    wal = Path(str(path) + "-wal")
    largest = 0
    stop = threading.Event()
    errors: list[object] = []
    threads = [
        threading.Thread(target=_writer, args=(e, f"e{i}", stop, errors))
        for i, e in enumerate(engines)
    ]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while os.path.getsize(path) <= volume and time.monotonic() < deadline and not errors:
        with contextlib.suppress(FileNotFoundError):
            largest = max(largest, wal.stat().st_size)
        time.sleep(0.002)
    stop.set()
    for t in threads:
        t.join()
    for s in stores:
        s.close()
    assert not errors, errors[:3]
    return largest, os.path.getsize(path)


def bound(writers: int) -> int:
    return int(MAX_MB * (1 << 20)) + writers * group_bound()


def _check(tmp_path: Path, writers: int) -> None:
    limit = bound(writers)
    largest, db_size = _sustained(tmp_path / "wal.db", writers, volume=4 * limit)
    # the load wrote several times the bound through the WAL: an unbounded WAL would exceed it
    assert db_size > 4 * limit, (db_size, limit)
    assert largest <= limit, (largest, limit)


def test_wal_stays_bounded_under_sustained_writes(tmp_path: Path) -> None:
    _check(tmp_path, writers=1)


def test_wal_stays_bounded_with_two_writers_on_one_file(tmp_path: Path) -> None:
    _check(tmp_path, writers=2)


def test_without_the_limits_the_same_load_exceeds_the_bound(tmp_path: Path) -> None:
    """The control: limits far above the load, as before, and the WAL outgrows the bound."""
    limit = bound(1)
    largest, _ = _sustained(tmp_path / "wal.db", 1, volume=4 * limit, soft_mb=1e4, max_mb=1e4)
    assert largest > limit
