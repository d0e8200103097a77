"""Data-plane requests the engine executes in groups (one transaction per group)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class DecideOp:
    """Ask for ``n`` decisions (``n=None``: one, answered as a single decision)."""

    experiment_id: str
    n: int | None = None
    unit_id: str | None = None
    context: Any = None


@dataclass(slots=True)
class RewardItem:
    """A reward for one decision, or the mean reward of ``count`` pulls of one arm."""

    reward: float
    decision_id: str | None = None
    arm_id: str | None = None
    count: int = 1


@dataclass(slots=True)
class RewardOp:
    """One reward request: all its items are accepted, or none."""

    experiment_id: str
    items: list[RewardItem]


@dataclass(slots=True)
class RewardResult:
    accepted: int
    duplicates: int


Op = DecideOp | RewardOp
