"""Store selection by URL: one setting names the backend and where its data lives.

* a plain path, ``sqlite:///path`` or ``sqlite:///:memory:``: :class:`SQLiteStorage`
  (``sqlite:////abs/path`` for an absolute path, as in SQLAlchemy);
* ``postgresql://…`` or ``postgres://…``: :class:`PostgresStorage` (needs the
  ``postgres`` extra: ``pip install 'octobandit[postgres]'``).

``state``, a Redis URL (``redis://``, ``rediss://``, ``redis+cluster://``,
``rediss+cluster://``), keeps the per-arm statistics and sticky assignments in
Redis: :class:`PostgresRedisStorage`, for a PostgreSQL store only (needs the
``redis`` extra too).

>>> type(open_store("sqlite:///:memory:")).__name__
'SQLiteStorage'
"""

from __future__ import annotations

from typing import Any

from octobandit.errors import StorageUnusable
from octobandit.storage.base import Storage
from octobandit.storage.sqlite import SQLiteStorage

_POSTGRES = ("postgresql://", "postgres://")


def open_store(url: str, *, state: str | None = None, **sqlite_options: Any) -> Storage:
    """Open the store ``url`` names; ``sqlite_options`` apply to SQLite only.

    Raises :class:`StorageUnusable` (one line) for an unknown scheme, a
    missing driver or a store that cannot be opened.
    """
    if state:
        return _with_state(url, state)
    if url.startswith(_POSTGRES):
        try:
            from octobandit.storage.postgres import PostgresStorage
        except ImportError as exc:
            raise StorageUnusable(
                f"a PostgreSQL store needs psycopg ({exc.name} is missing):"
                " pip install 'octobandit[postgres]'"
            ) from None
        return PostgresStorage(url)
    if url.startswith("sqlite://"):
        if not url.startswith("sqlite:///"):
            raise StorageUnusable(
                f"{url!r}: an SQLite URL is sqlite:///relative/path, sqlite:////absolute/path"
                " or sqlite:///:memory:"
            )
        return SQLiteStorage(url[len("sqlite:///") :] or ":memory:", **sqlite_options)
    if "://" in url:
        scheme = url.split("://", 1)[0]
        raise StorageUnusable(
            f"unknown store {scheme}://: use a file path, sqlite:///path or postgresql://…"
        )
    return SQLiteStorage(url, **sqlite_options)


def _with_state(url: str, state: str) -> Storage:
    if not url.startswith(_POSTGRES):
        raise StorageUnusable(
            "a Redis state store (--state) goes with a PostgreSQL store (--store"
            " postgresql://…): the state is rebuilt from the store's log, which replicas share"
        )
    try:
        from octobandit.storage.postgres_redis import PostgresRedisStorage
        from octobandit.storage.redis_state import RedisState
    except ImportError as exc:
        raise StorageUnusable(
            f"a Redis state store needs redis-py and psycopg ({exc.name} is missing):"
            " pip install 'octobandit[postgres,redis]'"
        ) from None
    redis_state = RedisState(state)
    return PostgresRedisStorage(url, redis_state)
