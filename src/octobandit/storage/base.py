"""The storage interface the engine is written against.

Two kinds of work reach storage:

* the control plane (create, patch, delete, reset experiments and arms): one
  short transaction per call, through :class:`Storage`'s methods;
* the data plane (decisions and rewards): many requests are grouped into one
  transaction (group commit) through :meth:`Storage.batch`, which yields a
  :class:`BatchTx`. The engine decides inside that transaction, so a decision
  always sees the arms and status committed before it, also across processes.

Every decision and reward is appended to the event log in the same transaction
that updates the per-arm sufficient statistics (with a Redis state store: right
after it, under the writers' lock, and rebuilt from the log if missed).

Both protocols are unions of smaller ones, one per responsibility: the event
log, the arm state, sticky assignments (inside a batch); experiments, reading
the log, snapshots (on the store). A backend may put each where it belongs.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

# The records live in ``octobandit.model``; re-exported here, where they used to be.
from octobandit.model import (
    ApiKeyRecord,
    ArmRecord,
    ArmStatsDelta,
    ArmStatsRow,
    DecisionEvent,
    DecisionRef,
    Event,
    ExperimentRecord,
    OpenDecision,
    RewardEvent,
    Snapshot,
    add_ips,
    decode_json,
)

__all__ = [
    "ApiKeyRecord",
    "ApiKeys",
    "ArmRecord",
    "ArmStateTx",
    "ArmStatsDelta",
    "ArmStatsRow",
    "AssignmentsTx",
    "BatchTx",
    "DecisionEvent",
    "DecisionRef",
    "Event",
    "EventLog",
    "EventLogTx",
    "ExperimentRecord",
    "Experiments",
    "OpenDecision",
    "RewardEvent",
    "SettlementTx",
    "Snapshot",
    "Snapshots",
    "Storage",
    "add_ips",
    "decode_json",
]


# -- inside a data-plane transaction, by responsibility ------------------------
class EventLogTx(Protocol):
    """The event log: the source of truth, idempotent by decision id."""

    def append_decisions(self, events: Sequence[DecisionEvent]) -> None: ...

    def append_new_decisions(self, events: Sequence[DecisionEvent]) -> set[str]:
        """Append the decisions whose id is not logged yet (in any experiment; the first
        of repeated ids in ``events``) and return the ids appended: an import's
        idempotence (``octobandit import``)."""

    def find_decisions(
        self, experiment_id: str, decision_ids: Sequence[str], *, parts: bool = False
    ) -> dict[str, DecisionRef]:
        """Map each known decision id of the experiment to its :class:`DecisionRef`
        (``rewarded``: it has an outcome, or with ``parts`` also a ``part``)."""

    def append_rewards(self, events: Sequence[RewardEvent]) -> None:
        """Append reward-side events, each of its ``kind`` (see ``OUTCOME_KINDS``)."""


class SettlementTx(Protocol):
    """Attribution windows: which decisions are settled (given their outcome or the
    default), tracked by a per-experiment watermark on the event log.

    A decision is settled once the watermark reaches its ``seq``. The tick moves
    the watermark inside a data-plane transaction, so several engines settle each
    decision once; a reset moves it to the log's end (what came before is not
    settled into the fresh statistics).
    """

    def settled_through(self, experiment_id: str) -> int:
        """The watermark: every decision with ``seq`` up to it is settled (0: none)."""

    def open_decisions(
        self, experiment_id: str, after: int, before_ts: float, limit: int
    ) -> list[OpenDecision]:
        """Decisions with ``seq > after`` in log order, stopping before the first one
        made at or after ``before_ts`` (its window is still open), at most ``limit``."""

    def settle_through(self, experiment_id: str, seq: int) -> None:
        """Move the watermark to ``seq``."""


class ArmStateTx(Protocol):
    """The hot per-arm state: additive statistics, and a stateful policy's state
    (written whole, under the single-writer rule)."""

    def add_arm_stats(self, experiment_id: str, deltas: Sequence[ArmStatsDelta]) -> None:
        """Add each delta to its arm's stored statistics (see :class:`ArmStatsDelta`)."""

    def write_policy_state(self, experiment_id: str, state: bytes | None) -> None: ...


class AssignmentsTx(Protocol):
    """Sticky assignments: a unit's first arm, the same from every replica."""

    def find_assignments(
        self, experiment_id: str, unit_ids: Sequence[str]
    ) -> dict[str, tuple[str, float]]: ...

    def save_assignments(
        self, experiment_id: str, rows: Iterable[tuple[str, str, float]]
    ) -> None: ...


class BatchTx(EventLogTx, SettlementTx, ArmStateTx, AssignmentsTx, Protocol):
    """One data-plane transaction; commits when the context exits cleanly.

    SQLite and PostgreSQL keep all three parts in their database; with a Redis
    state store (``storage.postgres_redis``) the arm state and the assignments
    live in Redis and the event log stays in PostgreSQL.
    """

    def savepoint(self) -> AbstractContextManager[None]:
        """A nested part of the transaction: if the block raises, only its writes are undone.

        Storage-wide failures inside it are raised as
        :class:`~octobandit.errors.StorageUnavailable` and fail the whole transaction.
        """

    def others_wrote(self) -> bool:
        """True if another process committed since this store's previous batch."""

    def load_experiment(self, experiment_id: str) -> ExperimentRecord | None: ...


# -- the store, by responsibility ------------------------------------------------
class Experiments(Protocol):
    """Experiments and arms (the control plane), each call one short transaction."""

    def create_experiment(self, record: ExperimentRecord) -> None:
        """Insert an experiment and its arms (:class:`~octobandit.errors.Conflict` if it exists)."""

    def get_experiment(self, experiment_id: str) -> ExperimentRecord | None: ...

    def list_experiments(self) -> list[ExperimentRecord]: ...

    def due_for_settlement(self, now: float) -> list[str]:
        """Ids of the experiments with an attribution window whose oldest unsettled
        decision's window has closed by ``now`` (a read: no write lock, no arms read)."""

    def update_experiment(self, experiment_id: str, changes: Mapping[str, Any], ts: float) -> None:
        """Change ``name``, ``status``, ``policy``, ``options``, ``conclusion`` or
        ``policy_state``; bumps the version."""

    def delete_experiment(self, experiment_id: str) -> bool: ...

    def delete_all(self) -> int: ...

    def reset_experiment(self, experiment_id: str, ts: float) -> None:
        """Zero the statistics and append a reset marker to the event log."""

    def add_arm(self, experiment_id: str, arm: ArmRecord, ts: float) -> None: ...

    def update_arm(
        self, experiment_id: str, arm_id: str, changes: Mapping[str, Any], ts: float
    ) -> None: ...

    def set_arm_stats(self, experiment_id: str, row: ArmStatsRow, ts: float) -> None:
        """Overwrite one arm's statistics (admin) and log a ``set_stats`` event."""

    def conclude(self, experiment_id: str, conclusion: Mapping[str, Any], ts: float) -> None:
        """Set status ``concluded`` and record the conclusion; bumps the version."""


class EventLog(Protocol):
    """Reading the event log back."""

    def pending_rewards(self, experiment_id: str) -> dict[str, float]:
        """Per arm, the sum of the rewards (``part`` events) received so far for the
        decisions whose attribution window is not settled yet (read from the log: its
        cost grows with the traffic of one window)."""

    def events(self, experiment_id: str | None = None) -> Iterator[Event]:
        """The event log in commit order."""

    def events_page(
        self,
        experiment_id: str,
        *,
        after: int = 0,
        limit: int,
        kinds: Sequence[str] | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> list[Event]:
        """One page of the experiment's log: at most ``limit`` events with ``seq > after``
        in ``seq`` order, of the given ``kinds`` (``None``: all; empty: none) and with
        ``since <= ts < until`` when given. Read along the ``(experiment_id, seq)`` index,
        so a page costs its own size plus the events the filters skip; the next page
        starts after the last ``seq`` returned (a short page is the last one)."""


class Snapshots(Protocol):
    """Posterior snapshots, taken once per interval however many processes tick."""

    def due_for_snapshot(self, now: float) -> list[ExperimentRecord]:
        """Experiments whose snapshot interval has elapsed since their last snapshot."""

    def add_snapshot(self, snapshot: Snapshot) -> bool:
        """Store a snapshot and mark the experiment's last snapshot time.

        An ``"interval"`` snapshot is stored only if it is still due (several
        workers tick); returns whether it was stored.
        """

    def snapshots(self, experiment_id: str, limit: int | None = None) -> list[Snapshot]:
        """The experiment's snapshots, oldest first (the most recent ``limit``)."""


class ApiKeys(Protocol):
    """API keys (``octobandit keys``), kept hashed; read whole by the HTTP workers'
    key cache, so a store holds few of them (hundreds, not millions)."""

    def add_api_key(self, key: ApiKeyRecord) -> None:
        """Insert a key (:class:`~octobandit.errors.Conflict` if its id or hash exists)."""

    def api_keys(self) -> list[ApiKeyRecord]:
        """Every key, revoked and expired ones included, oldest first."""

    def revoke_api_key(self, key_id: str, ts: float) -> bool:
        """Mark the key revoked at ``ts`` (kept for the record); ``False`` if there is no
        such key. Revoking a revoked key keeps its first revocation time."""


class Storage(Experiments, EventLog, Snapshots, ApiKeys, Protocol):
    """A whole store: experiments, the event log, snapshots and data-plane batches."""

    def batch(self) -> AbstractContextManager[BatchTx]: ...

    def health(self) -> dict[str, str] | None:
        """``None`` while writes work, else ``{"reason": code, "message": ...}``.

        Cheap and lock-free: ``/healthz`` calls it on the event loop.
        """

    def close(self) -> None: ...
