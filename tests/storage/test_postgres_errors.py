"""PostgreSQL failures surface as the storage errors the service answers 503 with."""

from __future__ import annotations

import pytest

from octobandit.errors import StorageUnavailable, StorageUnusable
from octobandit.storage import ExperimentRecord, open_store


def test_an_unknown_scheme_is_refused_in_one_line() -> None:
    with pytest.raises(StorageUnusable) as caught:
        open_store("mysql://localhost/x")
    assert "\n" not in caught.value.message and "mysql://" in caught.value.message


def test_an_unreachable_server_is_unusable_in_one_line() -> None:
    pytest.importorskip("psycopg")
    with pytest.raises(StorageUnusable) as caught:
        open_store("postgresql://nobody:secret@127.0.0.1:1/none")
    message = caught.value.message
    assert "\n" not in message and "127.0.0.1:1" in message
    assert "secret" not in message  # no credentials in logs


def test_a_lost_connection_is_unavailable_then_recovers(postgres_url: str) -> None:
    import psycopg

    store = open_store(postgres_url)
    try:
        store.create_experiment(ExperimentRecord("e1", "E", {"type": "ucb1"}, "binary"))
        dbname = postgres_url.rsplit("/", 1)[1]
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                (dbname,),
            )
        with pytest.raises(StorageUnavailable), store.batch() as tx:
            tx.load_experiment("e1")
        health = store.health()
        assert health is not None and health["reason"] == "storage_unavailable"
        for _ in range(5):  # the pool replaces its dead connections
            try:
                store.update_experiment("e1", {"name": "again"}, 1.0)
                break
            except StorageUnavailable:
                continue
        assert store.health() is None
        got = store.get_experiment("e1")
        assert got is not None and got.name == "again"
    finally:
        store.close()
