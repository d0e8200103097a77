"""The state every part of the engine shares, and the look-up of a stored experiment.

The storage, the limits, the clock, the random streams and the live cache
(:mod:`octobandit.engine.live`), set by :class:`~octobandit.engine.core.Engine`.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import numpy as np

from octobandit.engine.live import _Live
from octobandit.engine.specs import Limits
from octobandit.errors import NotFound
from octobandit.model import ExperimentRecord
from octobandit.storage.base import Storage


class EngineBase:
    """The state the parts of :class:`~octobandit.engine.core.Engine` share (set by its init)."""

    storage: Storage
    refresh_interval: float
    limits: Limits
    rng: np.random.Generator
    _ids: random.Random
    _clock: Callable[[], float]
    _live: dict[str, _Live]
    _reread: set[str]

    def _record(self, experiment_id: str) -> ExperimentRecord:
        record = self.storage.get_experiment(experiment_id)
        if record is None:
            raise NotFound(f"experiment {experiment_id!r} not found", code="experiment_not_found")
        return record

    def _changed(self, experiment_id: str) -> ExperimentRecord:
        self._live.pop(experiment_id, None)
        return self._record(experiment_id)
