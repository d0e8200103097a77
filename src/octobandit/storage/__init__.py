"""Storage behind one interface: SQLite by default, PostgreSQL by URL (see ``open_store``)."""

from octobandit.storage.base import (
    ArmRecord,
    ArmStatsDelta,
    ArmStatsRow,
    BatchTx,
    DecisionEvent,
    Event,
    ExperimentRecord,
    RewardEvent,
    Snapshot,
    Storage,
)
from octobandit.storage.sqlite import SQLiteStorage
from octobandit.storage.urls import open_store

__all__ = [
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
