"""Storage behind one interface: SQLite by default, PostgreSQL by URL (see ``open_store``)."""

from octobandit.model import (
    ApiKeyRecord,
    ArmRecord,
    ArmStatsDelta,
    ArmStatsRow,
    DecisionEvent,
    Event,
    ExperimentRecord,
    RewardEvent,
    Snapshot,
)
from octobandit.storage.base import BatchTx, Storage
from octobandit.storage.sqlite import SQLiteStorage
from octobandit.storage.urls import open_store

__all__ = [
    "ApiKeyRecord",
    "ArmRecord",
    "ArmStatsDelta",
    "ArmStatsRow",
    "BatchTx",
    "DecisionEvent",
    "Event",
    "ExperimentRecord",
    "RewardEvent",
    "SQLiteStorage",
    "Snapshot",
    "Storage",
    "open_store",
]
