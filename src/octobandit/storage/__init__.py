"""Storage behind one interface: SQLite by default."""

from octobandit.storage.base import (
    ArmRecord,
    ArmStatsRow,
    BatchTx,
    DecisionEvent,
    Event,
    ExperimentRecord,
    RewardEvent,
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
    "Storage",
]
