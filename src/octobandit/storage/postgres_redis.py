"""PostgreSQL for the log and the experiments, Redis for the hot per-arm state.

:class:`PostgresRedisStorage` is a :class:`PostgresStorage` whose per-arm
statistics and sticky assignments live in a :class:`RedisState`:

* A write transaction logs its events in PostgreSQL and commits; only then are
  its statistics increments and assignments applied to Redis, by one atomic
  script per experiment. Writers are serialised by a PostgreSQL session lock
  held from before the transaction until after that apply, so the next writer,
  on any replica, sees Redis up to date.
* Redis keeps a marker: the store version it was last brought up to. A writer
  that finds it different from the version committed before its own (Redis
  flushed or restarted empty, or a replica died between its commit and its
  apply) rebuilds every experiment's state from the log first. An experiment
  whose hashes are gone (a cluster shard restarted empty) is rebuilt when it is
  next read. A rebuild folds the log (see ``storage.fold``) under the writers'
  lock, so it never counts anything twice.
* If Redis fails after a commit, the events are logged and acknowledged; the
  marker is then stale and the next writer rebuilds. If Redis is down when a
  write begins, the write is refused (``state_unavailable``), nothing written.

The arms table keeps each arm's statistics as created or last set (by a reset
or an admin overwrite): the seed the log is folded onto. A store opened later
without Redis folds the log back into the arms table (``stats_in``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg

from octobandit.errors import StorageUnavailable
from octobandit.model import (
    ArmStatsDelta,
    ArmStatsRow,
    ExperimentRecord,
)
from octobandit.storage.postgres import PostgresBatch, PostgresStorage, _fold_log
from octobandit.storage.redis_state import RedisState

log = logging.getLogger("octobandit.storage")


class PostgresRedisBatch(PostgresBatch):
    """A data-plane transaction: events to PostgreSQL now, state to Redis after the commit."""

    _store: PostgresRedisStorage

    def load_experiment(self, experiment_id: str) -> ExperimentRecord | None:
        record = super().load_experiment(experiment_id)
        if record is not None:
            self._store._overlay(self._conn, [record])
        return record

    def find_assignments(
        self, experiment_id: str, unit_ids: Sequence[str]
    ) -> dict[str, tuple[str, float]]:
        found = self._store.state.find_assignments(experiment_id, unit_ids)
        if found is None:  # lost (a flush, an emptied shard): rebuilt from the log first
            self._store._rebuild(self._conn, [experiment_id])
            found = self._store.state.find_assignments(experiment_id, unit_ids) or {}
        pending = self._store._units.get(experiment_id)
        if pending:  # this transaction's own, not applied yet
            found.update((u, pending[u]) for u in unit_ids if u in pending)
        return found

    def save_assignments(self, experiment_id: str, rows: Any) -> None:
        units = self._store._units.setdefault(experiment_id, {})
        for unit, arm, p in rows:  # the last one wins
            units[unit] = (arm, float(p))
        self._store._touched(experiment_id)

    def add_arm_stats(self, experiment_id: str, deltas: Sequence[ArmStatsDelta]) -> None:
        self._store._deltas.setdefault(experiment_id, []).extend(deltas)
        self._store._touched(experiment_id)

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """As :meth:`PostgresBatch.savepoint`; an undone block's state changes are dropped."""
        deltas = {e: list(d) for e, d in self._store._deltas.items()}
        units = {e: dict(u) for e, u in self._store._units.items()}
        try:
            with super().savepoint():
                yield
        except BaseException:
            self._store._deltas, self._store._units = deltas, units
            raise


class PostgresRedisStorage(PostgresStorage):
    """See the module docstring; ``state`` is the Redis state store it owns."""

    hold_after_commit = True
    stats_in = "state"

    def __init__(self, url: str, state: RedisState, **options: Any) -> None:
        self.state = state
        #: what the current write applies to Redis after its commit, per experiment
        self._deltas: dict[str, list[ArmStatsDelta]] = {}
        self._units: dict[str, dict[str, tuple[str, float]]] = {}
        self._changes: dict[str, list[str | ArmStatsRow]] = {}
        self._order: list[str] = []
        try:
            super().__init__(url, **options)
            with self._write():  # brings Redis up to the log now, not at the first write
                pass
        except BaseException:
            state.close()
            raise

    def _touched(self, experiment_id: str) -> None:
        if experiment_id not in self._order:
            self._order.append(experiment_id)

    def _clear(self) -> None:
        self._deltas, self._units, self._changes, self._order = {}, {}, {}, []

    # -- the write hooks -------------------------------------------------------
    def _began(self, conn: psycopg.Connection[Any], version: int) -> None:
        self._clear()
        if self.state.marker() != version - 1:
            rebuilt = self._rebuild(conn, None)
            self.state.set_marker(version - 1)
            if rebuilt:  # a new, empty store needs no word
                log.warning(
                    "state store %s did not match the event log (flushed, restarted or it"
                    " missed a write): rebuilt %d experiments from the log",
                    self.state.where,
                    rebuilt,
                )

    def _aborted(self) -> None:
        self._clear()

    def _state_changed(self, experiment_id: str, change: str | ArmStatsRow) -> None:
        self._changes.setdefault(experiment_id, []).append(change)
        self._touched(experiment_id)

    def _committed(self, conn: psycopg.Connection[Any], version: int) -> None:
        try:
            rebuild: list[str] = []
            marked = False
            last = self._order[-1] if self._order else None
            for experiment_id in self._order:
                for change in self._changes.get(experiment_id, ()):
                    if change == "delete":
                        self.state.delete([experiment_id])
                    elif change == "empty":
                        self.state.replace(experiment_id, [], {})
                    elif isinstance(change, ArmStatsRow):
                        applied = self.state.set_arm(experiment_id, change)
                        if not applied:  # its state was lost: the log has it all
                            rebuild.append(experiment_id)
                    else:  # "rebuild": from the arms' seed (as created) and the log
                        rebuild.append(experiment_id)
                deltas = self._deltas.get(experiment_id, [])
                units = self._units.get(experiment_id, {})
                if deltas or units:
                    # the marker goes with the last apply (one round trip on one Redis)
                    marker = version if experiment_id == last and not rebuild else None
                    if self.state.apply(experiment_id, deltas, units, marker):
                        marked = marker is not None
                    else:
                        rebuild.append(experiment_id)  # its state was lost: the log has it
            if rebuild:
                self._rebuild(conn, rebuild)
            if not marked:
                self.state.set_marker(version)
        except (StorageUnavailable, psycopg.Error) as exc:
            # the events are committed; the stale marker makes the next writer rebuild
            log.warning("state store: applying a committed write failed (%s)", exc)
        finally:
            self._clear()

    def _rebuild(self, conn: psycopg.Connection[Any], experiment_ids: Sequence[str] | None) -> int:
        """Make Redis the fold of the committed log (every experiment, or these);
        returns how many experiments were rebuilt."""
        if experiment_ids is None:
            ids = [r[0] for r in conn.execute("SELECT id FROM experiments")]
        else:
            ids = list(dict.fromkeys(experiment_ids))
        if not ids:
            return 0
        folded = _fold_log(conn, ids)
        for experiment_id in ids:
            self.state.replace(
                experiment_id,
                folded.arms.get(experiment_id, {}).values(),
                folded.assignments.get(experiment_id, {}),
            )
        return len(ids)

    # -- reads -----------------------------------------------------------------
    def _overlay(
        self, conn: psycopg.Connection[Any] | None, records: list[ExperimentRecord]
    ) -> None:
        """Put each record's state from Redis on its arms (rebuilding a lost one)."""
        stored = self.state.arms([r.id for r in records])
        lost = [experiment_id for experiment_id, arms in stored.items() if arms is None]
        if lost:
            if conn is not None:  # inside a write, before it logs anything of these
                self._rebuild(conn, lost)
            else:
                with self._write() as write:
                    again = self.state.arms(lost)
                    self._rebuild(write, [e for e, arms in again.items() if arms is None])
            stored.update(self.state.arms(lost))
        for record in records:
            self.state.overlay(record.arms, stored.get(record.id) or {})

    def get_experiment(self, experiment_id: str) -> ExperimentRecord | None:
        record = super().get_experiment(experiment_id)
        if record is not None:
            self._overlay(None, [record])
        return record

    def list_experiments(self) -> list[ExperimentRecord]:
        records = super().list_experiments()
        self._overlay(None, records)
        return records

    def due_for_snapshot(self, now: float) -> list[ExperimentRecord]:
        records = super().due_for_snapshot(now)
        self._overlay(None, records)
        return records

    @contextmanager
    def batch(self) -> Iterator[PostgresRedisBatch]:
        with self._write() as conn:
            yield PostgresRedisBatch(self, conn)

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.state.close()
