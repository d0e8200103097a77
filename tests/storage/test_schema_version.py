"""The SQLite schema is numbered and migrated when a store opens."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from octobandit.errors import StorageUnusable
from octobandit.storage import SQLiteStorage
from octobandit.storage.sqlite import SCHEMA, SCHEMA_VERSION


def _earlier_release(path: Path, *, with_shift: bool) -> None:
    """A file as an earlier release left it: schema unnumbered, one experiment, one arm
    with statistics (the release before last had no ``shift`` column)."""
    db = sqlite3.connect(path)
    schema = SCHEMA if with_shift else SCHEMA.replace("    shift REAL NOT NULL DEFAULT 0,\n", "")
    db.executescript(schema)
    db.execute(
        "INSERT INTO experiments (id, name, policy, reward_type, status, version, created_at,"
        " updated_at) VALUES ('e', 'E', '{\"type\": \"thompson\"}', 'binary', 'running', 1, 0, 0)"
    )
    db.execute(
        "INSERT INTO arms (experiment_id, arm_id, position, enabled, deleted, created_at,"
        " decisions, rewards, reward_sum, reward_sq_sum) VALUES ('e', 'a', 0, 1, 0, 0, 7, 5, 3, 3)"
    )
    db.commit()
    db.close()


@pytest.mark.parametrize("with_shift", [True, False])
def test_a_database_of_an_earlier_release_opens_and_is_upgraded(
    tmp_path: Path, with_shift: bool
) -> None:
    path = tmp_path / "old.db"
    _earlier_release(path, with_shift=with_shift)
    store = SQLiteStorage(str(path))
    arm = store.get_experiment("e").arms[0]  # type: ignore[union-attr]
    assert (arm.decisions, arm.rewards, arm.reward_sum, arm.reward_sq_sum, arm.shift) == (
        7, 5.0, 3.0, 3.0, 0.0,
    )  # fmt: skip
    store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_a_database_of_a_newer_release_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    SQLiteStorage(str(path)).close()
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    with pytest.raises(StorageUnusable, match="newer octobandit"):
        SQLiteStorage(str(path))


def test_several_processes_opening_one_new_file_at_once_migrate_it_once(tmp_path: Path) -> None:
    path = tmp_path / "race.db"
    code = (
        "import sys; from octobandit.storage import SQLiteStorage;"
        "SQLiteStorage(sys.argv[1]).close()"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, str(path)]) for _ in range(6)]
    assert [p.wait(timeout=60) for p in procs] == [0] * 6
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_postgresql_database_of_schema_1_opens_and_is_upgraded(postgres_url: str) -> None:
    """Schema 1 (the previous release: no ``stats_in``) opens, is upgraded to the current
    version, and keeps its experiments and statistics."""
    import psycopg

    from octobandit.storage import open_store
    from octobandit.storage.postgres import SCHEMA as PG_SCHEMA
    from octobandit.storage.postgres import SCHEMA_VERSION as PG_VERSION

    with psycopg.connect(postgres_url, autocommit=True) as db:
        db.execute("CREATE TABLE octobandit_schema (version INTEGER NOT NULL)")
        for statement in PG_SCHEMA.split(";"):
            if statement.strip():
                db.execute(statement)  # type: ignore[call-overload]
        db.execute("INSERT INTO octobandit_schema VALUES (1)")
        db.execute(
            "INSERT INTO experiments (id, name, policy, reward_type, status, version,"
            " created_at, updated_at) VALUES ('e', 'E', '{\"type\": \"thompson\"}', 'binary',"
            " 'running', 1, 0, 0)"
        )
        db.execute(
            "INSERT INTO arms (experiment_id, arm_id, position, enabled, deleted, created_at,"
            " decisions, rewards, reward_sum, reward_sq_sum) VALUES"
            " ('e', 'a', 0, true, false, 0, 7, 5, 3, 3)"
        )
    store = open_store(postgres_url)
    try:
        record = store.get_experiment("e")
        assert record is not None
        arm = record.arms[0]
        assert (arm.decisions, arm.rewards, arm.reward_sum) == (7, 5.0, 3.0)
    finally:
        store.close()
    with psycopg.connect(postgres_url, autocommit=True) as db:
        assert db.execute("SELECT version FROM octobandit_schema").fetchall() == [(PG_VERSION,)]
        assert db.execute("SELECT stats_in FROM octobandit_store").fetchone() == ("store",)
