from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from octobandit.policies.base import ArmStats, FloatArray, Policy


@dataclass(frozen=True, slots=True)
class FixedArm(Policy):
    """A test policy that always chooses ``arm``: its regret is known in closed form."""

    type = "fixed_arm"

    arm: int = 0
    reward: str = "binary"

    def probabilities(self, stats: ArmStats, enabled: Any = None) -> FloatArray:
        p = np.zeros(stats.n.shape)
        p[..., self.arm] = 1.0
        return p


@pytest.fixture
def fixed_arm() -> Callable[..., Policy]:
    return FixedArm
