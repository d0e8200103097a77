"""The client's typed results: the server's own wire types (:mod:`octobandit.wire`).

They are msgspec Structs: attributes (``decision.arm_id``), equality, and
``msgspec.structs.asdict(x)`` or ``msgspec.to_builtins(x)`` for plain data.
Nested settings the server keeps free-form (a policy's parameters, a stopping
rule, a recorded conclusion, an arm's prior) are dicts.
"""

from __future__ import annotations

from octobandit.client._buffer import BufferStats
from octobandit.wire import (
    Arm,
    ArmPosterior,
    ArmSeries,
    ArmStats,
    Conclusion,
    ContextSpec,
    Decision,
    Experiment,
    Health,
    History,
    Reward,
    RewardAnswer,
    RewardGain,
    RewardSpec,
    Stats,
)

__all__ = [
    "Arm",
    "ArmPosterior",
    "ArmSeries",
    "ArmStats",
    "BufferStats",
    "Conclusion",
    "ContextSpec",
    "Decision",
    "Experiment",
    "Health",
    "History",
    "Reward",
    "RewardAnswer",
    "RewardGain",
    "RewardSpec",
    "Stats",
]
