"""SQLiteBatch.savepoint: a failing part undoes only its own writes; storage-wide errors."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from octobandit.errors import StorageFull, StorageUnavailable
from octobandit.storage import ExperimentRecord, SQLiteStorage
from octobandit.storage.base import ArmRecord, DecisionEvent
from octobandit.storage.sqlite import storage_error


def _event(exp: str, n: int) -> DecisionEvent:
    return DecisionEvent(1.0, exp, f"{exp}-{n}", "a", 0.5)


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStorage:
    store = SQLiteStorage(str(tmp_path / "sp.db"))
    for exp in ("x", "y"):
        store.create_experiment(
            ExperimentRecord(exp, exp, {"type": "ucb1"}, "binary", arms=[ArmRecord("a")])
        )
    return store


def test_a_failing_part_is_undone_and_the_rest_commits(store: SQLiteStorage) -> None:
    with store.batch() as tx:
        with tx.savepoint():
            tx.append_decisions([_event("x", 1)])
        with pytest.raises(ZeroDivisionError), tx.savepoint():
            tx.append_decisions([_event("y", 1)])
            raise ZeroDivisionError
        with tx.savepoint():
            tx.append_decisions([_event("x", 2)])
    assert [e.decision_id for e in store.events()] == ["x-1", "x-2"]
    store.close()


def test_an_sqlite_error_of_one_part_stays_local(store: SQLiteStorage) -> None:
    """A constraint violation (a duplicate decision id) is the part's fault, not the disk's."""
    with store.batch() as tx:
        tx.append_decisions([_event("x", 1)])
        with pytest.raises(sqlite3.IntegrityError), tx.savepoint():
            tx.append_decisions([_event("y", 1), _event("x", 1)])
    assert [e.decision_id for e in store.events()] == ["x-1"]
    store.close()


def _error(code: int) -> sqlite3.Error:
    error = sqlite3.OperationalError("simulated")
    error.sqlite_errorcode = code  # type: ignore[attr-defined]
    return error


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (13, StorageFull),  # SQLITE_FULL
        (10 | (4 << 8), StorageFull),  # SQLITE_IOERR_WRITE
        (11, StorageUnavailable),  # SQLITE_CORRUPT
        (5, StorageUnavailable),  # SQLITE_BUSY
        (19, None),  # SQLITE_CONSTRAINT: a request's fault
        (1, None),  # SQLITE_ERROR
    ],
)
def test_storage_wide_errors_are_recognised(code: int, kind: type | None) -> None:
    error = storage_error(_error(code))
    assert (None if error is None else type(error)) is kind


def test_a_storage_wide_error_in_a_part_fails_the_transaction(store: SQLiteStorage) -> None:
    with pytest.raises(StorageFull), store.batch() as tx:
        tx.append_decisions([_event("x", 1)])
        with tx.savepoint():
            raise _error(13)
    assert list(store.events()) == []
    health = store.health()
    assert health is not None and health["reason"] == "storage_full"
    store.close()
