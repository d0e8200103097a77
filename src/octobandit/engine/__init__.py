"""The experiment engine, shared by every door."""

from octobandit.engine.batching import GroupCommitter
from octobandit.engine.core import Engine, Limits
from octobandit.engine.ops import DecideOp, RewardItem, RewardOp, RewardResult

__all__ = [
    "DecideOp",
    "Engine",
    "GroupCommitter",
    "Limits",
    "RewardItem",
    "RewardOp",
    "RewardResult",
]
