"""Integrity at startup, an unusable --db path, and a database removed while serving."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from octobandit.engine import Engine
from octobandit.errors import StorageLost, StorageUnusable
from octobandit.storage import SQLiteStorage


def _filled(path: Path) -> Path:
    """A real database with a few dozen pages of events, cleanly closed (WAL checkpointed)."""
    store = SQLiteStorage(str(path))
    engine = Engine(store, seed=1)
    engine.create_experiment({"id": "x", "arms": [{"id": "a"}, {"id": "b"}]})
    for _ in range(20):
        engine.decide("x", n=100)
    store.close()
    return path


def _corrupt_pages(path: Path) -> None:
    """Overwrite every page but the first (the header) with random bytes."""
    size = path.stat().st_size
    with path.open("r+b") as f:
        for offset in range(4096, size, 4096):
            f.seek(offset)
            f.write(os.urandom(4096))


def _serve(db: Path | str) -> subprocess.CompletedProcess[str]:
    """``octobandit serve`` expected to refuse at once (it would serve forever otherwise)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCTOBANDIT_")}
    cmd = [sys.executable, "-m", "octobandit.cli", "serve", "--port", "1", "--db", str(db)]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)


def _refused(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr  # one line, no traceback
    assert lines[0].startswith("octobandit: ")
    for word in words:
        assert word in lines[0], lines[0]


def test_a_sound_database_opens(tmp_path: Path) -> None:
    store = SQLiteStorage(str(_filled(tmp_path / "ok.db")))
    assert Engine(store).stats("x")["total_decisions"] == 2000
    store.close()


def test_an_empty_file_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "empty.db"
    db.touch()
    with pytest.raises(StorageUnusable, match="0 bytes"):
        SQLiteStorage(str(db))
    _refused(_serve(db), "empty (0 bytes)", "move it away")
    assert db.stat().st_size == 0  # left as found


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "text.db"
    db.write_text("not a database\n" * 500)
    _refused(_serve(db), "not an SQLite database")


def test_a_corrupted_database_is_refused(tmp_path: Path) -> None:
    db = _filled(tmp_path / "corrupt.db")
    _corrupt_pages(db)
    with pytest.raises(StorageUnusable, match=r"integrity check|corrupted"):
        SQLiteStorage(str(db))
    _refused(_serve(db), str(db))


def test_a_missing_directory_is_refused(tmp_path: Path) -> None:
    _refused(_serve(tmp_path / "no" / "such" / "dir" / "x.db"), "directory is missing")


def test_a_directory_is_refused(tmp_path: Path) -> None:
    _refused(_serve(tmp_path), "is a directory")


@pytest.mark.parametrize("how", ["removed", "replaced"])
def test_a_removed_or_replaced_file_stops_writes(tmp_path: Path, how: str) -> None:
    db = tmp_path / "lost.db"
    store = SQLiteStorage(str(db))
    engine = Engine(store, seed=1)
    engine.create_experiment({"id": "x", "arms": [{"id": "a"}]})
    engine.decide("x")
    if how == "removed":
        db.unlink()
    else:
        shutil.copy(db, tmp_path / "copy.db")
        os.replace(tmp_path / "copy.db", db)
    with pytest.raises(StorageLost):
        engine.decide("x")
    with pytest.raises(StorageLost):  # and every later write, control plane too
        engine.update_experiment("x", {"name": "y"})
    health = store.health()
    assert health is not None and health["reason"] == "storage_lost"
    store.close()


@pytest.mark.slow
def test_server_notices_a_removed_database(server_factory: Any, tmp_path: Path) -> None:
    db = tmp_path / "served.db"
    server = server_factory(db).start()
    url = server.url
    r = httpx.post(url + "/v1/experiments", json={"id": "x", "arms": [{"id": "a"}]})
    assert r.status_code == 201
    assert httpx.post(url + "/v1/experiments/x/decisions").status_code == 200
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    r = httpx.post(url + "/v1/experiments/x/decisions")
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "storage_lost"
    r = httpx.post(url + "/v1/experiments", json={"id": "y"})
    assert r.status_code == 503 and r.json()["error"]["code"] == "storage_lost"
    r = httpx.get(url + "/healthz")
    assert r.status_code == 503
    assert r.json()["status"] == "degraded" and r.json()["reason"] == "storage_lost"
