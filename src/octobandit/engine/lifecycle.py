"""The life cycle over time: closed attribution windows settled, snapshots when due,
conclusions when a stopping rule is met.

All are taken by :meth:`LifecycleMixin.tick`, which the service calls periodically.
"""

from __future__ import annotations

import logging

from octobandit.engine.base import EngineBase
from octobandit.engine.conclusions import assess, snapshot_data
from octobandit.errors import StorageUnavailable
from octobandit.model import ExperimentRecord, Snapshot, iso_time

log = logging.getLogger("octobandit.engine")


class LifecycleMixin(EngineBase):
    """Snapshots and conclusions over time: the engine's tick."""

    def settle(self, now: float | None = None) -> int:  # see SettlementMixin
        raise NotImplementedError

    def tick(self, now: float | None = None) -> int:
        """Settle closed attribution windows (see :mod:`.settlement`), then take the
        snapshots that are due and conclude experiments whose rule is met.

        The stopping rule of an experiment with ``auto_conclude`` is checked at
        each of its snapshots. Returns the number of snapshots taken. An
        experiment that fails is logged and skipped (it is retried at the next
        tick); the others still get their snapshots.
        """
        now = self._clock() if now is None else now
        taken = 0
        try:
            self.settle(now)
            taken = self._tick_all(now)
        finally:
            self.telemetry.tick(taken)
        return taken

    def _tick_all(self, now: float) -> int:
        taken = 0
        for record in self.storage.due_for_snapshot(now):
            try:
                taken += self._tick_one(record, now)
            except StorageUnavailable:
                raise
            except Exception:  # one experiment's failure must not starve the others
                log.exception("snapshot tick: experiment %r failed", record.id)
        return taken

    def _tick_one(self, record: ExperimentRecord, now: float) -> int:
        """Conclude ``record`` if its rule says so, and snapshot it; returns snapshots taken."""
        stopping = record.options.get("stopping") or {}
        if record.status == "running" and stopping.get("auto_conclude"):
            result, _ = assess(record)
            if result is not None and result.met and result.winner is not None:
                self.storage.conclude(
                    record.id,
                    {
                        "winner": record.arms[result.winner].arm_id,
                        "at": iso_time(now),
                        "reason": result.reason,
                        "prob_best": result.prob_best,
                        "expected_loss": result.expected_loss,
                        "after_conclusion": stopping.get("after_conclusion"),
                    },
                    now,
                )
                self._live.pop(record.id, None)
                record = self._record(record.id)
                self.storage.add_snapshot(
                    Snapshot(record.id, now, "conclusion", snapshot_data(record))
                )
                return 1
        return int(
            self.storage.add_snapshot(Snapshot(record.id, now, "interval", snapshot_data(record)))
        )
