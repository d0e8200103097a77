"""The state every part of the engine shares, and the look-up of a stored experiment.

The storage, the limits, the clock, the random streams and the live cache
(:mod:`octobandit.engine.live`), set by :class:`~octobandit.engine.core.Engine`.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import numpy as np

from octobandit.engine.live import _Live, _same_setup
from octobandit.engine.specs import Limits
from octobandit.engine.telemetry import Telemetry
from octobandit.errors import NotFound
from octobandit.model import ExperimentRecord
from octobandit.storage.base import BatchTx, Storage


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
    telemetry: Telemetry

    def _record(self, experiment_id: str) -> ExperimentRecord:
        record = self.storage.get_experiment(experiment_id)
        if record is None:
            raise NotFound(f"experiment {experiment_id!r} not found", code="experiment_not_found")
        return record

    def _changed(self, experiment_id: str) -> ExperimentRecord:
        self._live.pop(experiment_id, None)
        return self._record(experiment_id)

    def _load(self, tx: BatchTx, experiment_id: str) -> _Live:
        """The experiment's cached state, read (again) inside the group's transaction.

        After another engine wrote to the store, a cached experiment is re-read:
        when only its statistics moved (same version, arms and settings, and a
        stateless policy), they are refreshed in place and the selection
        distribution is kept until its refresh interval is up, like after this
        engine's own rewards; anything else rebuilds the cached state.
        """
        live = self._live.get(experiment_id)
        if live is not None and experiment_id in self._reread:
            self._reread.discard(experiment_id)
            record = tx.load_experiment(experiment_id)
            if record is not None and live.state is None and _same_setup(live.record, record):
                live.refresh(record)
                return live
            self._live.pop(experiment_id, None)
            live = None
        if live is None:
            self._reread.discard(experiment_id)
            record = tx.load_experiment(experiment_id)
            if record is None:
                raise NotFound(
                    f"experiment {experiment_id!r} not found", code="experiment_not_found"
                )
            live = self._live[experiment_id] = _Live.of(record)
        return live
