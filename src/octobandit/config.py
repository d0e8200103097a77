"""Service settings, read from ``OCTOBANDIT_*`` environment variables.

| variable | default | meaning |
| --- | --- | --- |
| ``OCTOBANDIT_HOST`` | ``127.0.0.1`` | address to listen on |
| ``OCTOBANDIT_PORT`` | ``8000`` | port |
| ``OCTOBANDIT_DB`` | ``octobandit.db`` | SQLite file |
| ``OCTOBANDIT_WORKERS`` | ``1`` | worker processes sharing the database |
| ``OCTOBANDIT_SQLITE_SYNCHRONOUS`` | ``NORMAL`` | ``FULL`` also survives power loss |
| ``OCTOBANDIT_SEED`` | unset | fixed random seed (tests only) |
| ``OCTOBANDIT_LOG_LEVEL`` | ``info`` | server log level |
| ``OCTOBANDIT_TICK_SECONDS`` | ``1`` | how often due snapshots are looked for |
| ``OCTOBANDIT_WAL_SOFT_MB`` | ``16`` | WAL size above which a writer checkpoints and truncates it |
| ``OCTOBANDIT_WAL_MAX_MB`` | ``64`` | WAL size at which writers wait for a checkpoint (the bound) |
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    db: str = "octobandit.db"
    workers: int = 1
    sqlite_synchronous: str = "NORMAL"
    seed: int | None = None
    log_level: str = "info"
    tick_seconds: float = 1.0
    wal_soft_mb: float = 16.0
    wal_max_mb: float = 64.0

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        seed = env.get("OCTOBANDIT_SEED")
        return cls(
            host=env.get("OCTOBANDIT_HOST", cls.host),
            port=int(env.get("OCTOBANDIT_PORT", cls.port)),
            db=env.get("OCTOBANDIT_DB", cls.db),
            workers=int(env.get("OCTOBANDIT_WORKERS", cls.workers)),
            sqlite_synchronous=env.get("OCTOBANDIT_SQLITE_SYNCHRONOUS", cls.sqlite_synchronous),
            seed=int(seed) if seed else None,
            log_level=env.get("OCTOBANDIT_LOG_LEVEL", cls.log_level),
            tick_seconds=float(env.get("OCTOBANDIT_TICK_SECONDS", cls.tick_seconds)),
            wal_soft_mb=float(env.get("OCTOBANDIT_WAL_SOFT_MB", cls.wal_soft_mb)),
            wal_max_mb=float(env.get("OCTOBANDIT_WAL_MAX_MB", cls.wal_max_mb)),
        )
