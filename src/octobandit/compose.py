"""The composition root: settings in, storage and engine out."""

from __future__ import annotations

from octobandit.config import Settings
from octobandit.engine import Engine
from octobandit.storage import open_store


def build_engine(settings: Settings) -> Engine:
    """The engine on the store ``settings.store`` names (an SQLite file or a PostgreSQL URL),
    with its per-arm state in ``settings.state`` (a Redis URL) if given.

    The synchronous mode and WAL limits apply to SQLite only.
    """
    storage = open_store(
        settings.store,
        state=settings.state,
        synchronous=settings.sqlite_synchronous,
        wal_soft_mb=settings.wal_soft_mb,
        wal_max_mb=settings.wal_max_mb,
    )
    return Engine(storage, seed=settings.seed, refresh_interval=settings.refresh_seconds)
