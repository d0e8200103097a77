"""Storage behind one interface: SQLite by default."""

from octobandit.storage.base import (
    ArmRecord,
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

__all__ = [
    "ArmRecord",
    "ArmStatsRow",
    "BatchTx",
    "DecisionEvent",
    "Event",
    "ExperimentRecord",
    "RewardEvent",
    "SQLiteStorage",
    "Snapshot",
    "Storage",
]
