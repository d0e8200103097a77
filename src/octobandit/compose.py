"""The composition root: settings in, storage and engine out."""

from __future__ import annotations

from octobandit.config import Settings
from octobandit.engine import Engine
from octobandit.storage import SQLiteStorage


def build_engine(settings: Settings) -> Engine:
    """The engine on the store ``settings`` name (SQLite today)."""
    storage = SQLiteStorage(
        settings.db,
        synchronous=settings.sqlite_synchronous,
        wal_soft_mb=settings.wal_soft_mb,
        wal_max_mb=settings.wal_max_mb,
    )
    return Engine(storage, seed=settings.seed, refresh_interval=settings.refresh_seconds)
