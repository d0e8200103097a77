"""PostgreSQL storage: the same records, errors and event log as the SQLite backend.

Tables mirror the SQLite schema (JSON columns as text encoded the same way,
floats as ``float8`` passed as binary parameters, so they round-trip exactly;
policy state as ``bytea``). The schema is created at start and versioned in
``octobandit_schema``, inside a transaction holding an advisory lock, so that
several replicas starting at once are safe.

Every write transaction first bumps the one row of ``octobandit_store``
(``UPDATE … SET version = version + 1 RETURNING version``). That row lock,
held until commit, serialises writers across processes the way SQLite's
``BEGIN IMMEDIATE`` does, so event ``seq`` values are allocated in commit
order; and the version tells a store whether another process wrote since its
own last write (:meth:`PostgresBatch.others_wrote`).

psycopg is imported here only: the rest of octobandit works without it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import errors as pgerrors
from psycopg_pool import ConnectionPool

from octobandit.errors import Conflict, NotFound, StorageFull, StorageUnavailable, StorageUnusable
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
from octobandit.storage.fold import Folded, fold
from octobandit.storage.rows import (
    API_KEY_COLUMNS,
    ARM_COLUMNS,
    api_key_record,
    api_key_row,
    arm_record,
    decision_meta,
    decision_text,
    json_text,
    open_rows,
)

SCHEMA_VERSION = 4
#: the advisory lock key guarding schema creation (any constant shared by all replicas)
_SCHEMA_LOCK = 0x6F63_746F_6261
#: the session lock serialising writers with :attr:`PostgresStorage.hold_after_commit`
_WRITE_LOCK = 0x6F63_746F_6262
#: what opens a write transaction: its version bump takes the store row's lock; the
#: first savepoint comes with it (see :meth:`PostgresBatch.savepoint`)
_BEGIN = (
    "BEGIN; UPDATE octobandit_store SET version = version + 1 RETURNING version; SAVEPOINT part"
)
_BEGIN_LOCKED = f"SELECT pg_advisory_lock({_WRITE_LOCK}); {_BEGIN}"

SCHEMA = """
CREATE TABLE experiments (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    policy TEXT NOT NULL,
    reward_type TEXT NOT NULL,
    status TEXT NOT NULL,
    version BIGINT NOT NULL,
    created_at FLOAT8 NOT NULL,
    updated_at FLOAT8 NOT NULL,
    options TEXT NOT NULL DEFAULT '{}',
    conclusion TEXT,
    last_snapshot FLOAT8 NOT NULL DEFAULT 0,
    policy_state BYTEA
);
CREATE TABLE snapshots (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    experiment_id TEXT NOT NULL,
    ts FLOAT8 NOT NULL,
    reason TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX snapshots_by_experiment ON snapshots (experiment_id, seq);
CREATE TABLE arms (
    experiment_id TEXT NOT NULL,
    arm_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    payload TEXT,
    enabled BOOLEAN NOT NULL,
    deleted BOOLEAN NOT NULL,
    created_at FLOAT8 NOT NULL,
    decisions BIGINT NOT NULL DEFAULT 0,
    rewards FLOAT8 NOT NULL DEFAULT 0,
    reward_sum FLOAT8 NOT NULL DEFAULT 0,
    reward_sq_sum FLOAT8 NOT NULL DEFAULT 0,
    prior TEXT,
    ips TEXT,
    shift FLOAT8 NOT NULL DEFAULT 0,
    PRIMARY KEY (experiment_id, arm_id)
);
CREATE TABLE events (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ts FLOAT8 NOT NULL,
    experiment_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    decision_id TEXT,
    arm_id TEXT,
    propensity FLOAT8,
    unit_id TEXT,
    context TEXT,
    reward FLOAT8,
    count FLOAT8,
    data TEXT
);
CREATE UNIQUE INDEX events_by_decision ON events (decision_id, kind)
    WHERE decision_id IS NOT NULL;
CREATE INDEX events_by_experiment ON events (experiment_id, seq);
CREATE TABLE assignments (
    experiment_id TEXT NOT NULL,
    unit_id TEXT NOT NULL,
    arm_id TEXT NOT NULL,
    propensity FLOAT8 NOT NULL,
    PRIMARY KEY (experiment_id, unit_id)
);
CREATE TABLE octobandit_store (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL
);
INSERT INTO octobandit_store VALUES (1, 0);
"""

#: what each schema version adds to the one before (applied in order, in one transaction)
MIGRATIONS = {
    # where the per-arm statistics and assignments are kept: "store" (these tables) or
    # "state" (a Redis state store; the arms' columns then hold what they were created
    # or last set with, and the log the rest)
    2: "ALTER TABLE octobandit_store ADD COLUMN stats_in TEXT NOT NULL DEFAULT 'store'",
    # attribution windows: each experiment's settlement watermark, and several
    # ``part`` and ``late`` events per decision, which the unique index on decision
    # ids leaves out (rebuilt once: on a long log this takes a while at upgrade)
    3: "ALTER TABLE experiments ADD COLUMN settled_seq BIGINT NOT NULL DEFAULT 0;"
    " DROP INDEX events_by_decision;"
    " CREATE UNIQUE INDEX events_decision_once ON events (decision_id, kind)"
    " WHERE decision_id IS NOT NULL AND kind IN ('decision', 'reward', 'default');"
    " CREATE INDEX events_parts ON events (decision_id) WHERE kind = 'part'",
    # API keys (``octobandit keys``): only their SHA-256 is stored
    4: "CREATE TABLE api_keys (id TEXT PRIMARY KEY, prefix TEXT NOT NULL,"
    " hash TEXT NOT NULL UNIQUE, name TEXT NOT NULL, scopes TEXT NOT NULL, experiments TEXT,"
    " created_at FLOAT8 NOT NULL, expires_at FLOAT8, revoked_at FLOAT8)",
}

#: an experiment's snapshot interval (seconds), as SQL
_INTERVAL = "coalesce((options::jsonb ->> 'snapshot_interval')::float8, 300)"
_EXPERIMENT_COLUMNS = (
    "id, name, policy, reward_type, status, version, created_at, updated_at,"
    " options, conclusion, last_snapshot, policy_state"
)
_TABLES = ("experiments", "arms", "events", "assignments", "snapshots")

FULL_MESSAGE = "disk full: nothing was written; retry once space is freed"

log = logging.getLogger("octobandit.storage")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def storage_error(exc: BaseException) -> StorageUnavailable | None:
    """The storage-wide failure behind a psycopg error, or ``None`` if it is not one.

    A full disk or an I/O error is :class:`StorageFull`; a lost connection, a
    server shutting down, a read-only server, an exhausted pool or a lock
    timeout is :class:`StorageUnavailable`. Anything else (a constraint, a bad
    value) is a request's or an experiment's own fault.
    """
    if isinstance(exc, pgerrors.DiskFull):
        return StorageFull(FULL_MESSAGE)
    if isinstance(exc, pgerrors.IoError):
        return StorageFull(f"I/O error ({_one_line(exc)}): nothing was written; retry later")
    if isinstance(
        exc, psycopg.OperationalError | psycopg.InterfaceError | pgerrors.ReadOnlySqlTransaction
    ):
        return StorageUnavailable(f"storage unavailable ({_one_line(exc)}): nothing was written")
    return None


def _where(url: str) -> str:
    """``host:port/dbname`` of a URL, without credentials (for messages)."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.Error:
        return "the PostgreSQL URL"
    host, port = info.get("host") or "localhost", info.get("port") or "5432"
    return f"postgresql://{host}:{port}/{info.get('dbname') or ''}"


def _record(row: Sequence[Any], arms: list[ArmRecord]) -> ExperimentRecord:
    return ExperimentRecord(
        id=row[0],
        name=row[1],
        policy=json.loads(row[2]),
        reward_type=row[3],
        status=row[4],
        version=row[5],
        created_at=row[6],
        updated_at=row[7],
        arms=arms,
        options=json.loads(row[8]),
        conclusion=decode_json(row[9]),
        last_snapshot=row[10],
        policy_state=row[11],
    )


def _records(
    conn: psycopg.Connection[Any], where: str, params: Sequence[Any]
) -> list[ExperimentRecord]:
    """The experiments selected by ``where`` with their arms, in two queries."""
    rows = conn.execute(
        f"SELECT {_EXPERIMENT_COLUMNS} FROM experiments {where} ORDER BY created_at, id", params
    ).fetchall()
    if not rows:
        return []
    arms: dict[str, list[ArmRecord]] = {r[0]: [] for r in rows}
    for r in conn.execute(
        f"SELECT experiment_id, {ARM_COLUMNS} FROM arms WHERE experiment_id = ANY(%s)"
        " ORDER BY experiment_id, position",
        (list(arms),),
    ):
        arms[r[0]].append(arm_record(r[1:]))
    return [_record(r, arms[r[0]]) for r in rows]


_EVENT_COLUMNS = (
    "seq, ts, experiment_id, kind, decision_id, arm_id, propensity, unit_id,"
    " context, reward, count, data"
)


def _event(r: Sequence[Any]) -> Event:
    return Event(
        r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], decode_json(r[8]), r[9], r[10],
        decode_json(r[11]),
    )  # fmt: skip


def _fold_log(conn: psycopg.Connection[Any], experiment_ids: Sequence[str] | None = None) -> Folded:
    """The statistics and assignments the log gives, each arm seeded with its row's
    statistics (see MIGRATIONS); read inside the caller's transaction, streamed."""
    where, params = (
        ("", ())
        if experiment_ids is None
        else ("WHERE experiment_id = ANY(%s)", (list(experiment_ids),))
    )
    seed: dict[str, list[ArmStatsRow]] = {}
    for r in conn.execute(
        "SELECT experiment_id, arm_id, decisions, rewards, reward_sum, reward_sq_sum, ips, shift"
        f" FROM arms {where}",
        params,
    ):
        seed.setdefault(r[0], []).append(
            ArmStatsRow(r[1], r[2], r[3], r[4], r[5], decode_json(r[6]), r[7])
        )
    in_transaction = conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE
    with (
        contextlib.nullcontext() if in_transaction else conn.transaction(),
        conn.cursor(name="octobandit_fold") as cur,
    ):
        cur.itersize = 5000
        cur.execute(f"SELECT {_EVENT_COLUMNS} FROM events {where} ORDER BY seq", params)
        return fold((_event(r) for r in cur), seed)


def _keep_seeds(conn: psycopg.Connection[Any]) -> None:
    """Turn each arm's row from its statistics into its seed (what the log does not
    tell: the statistics it was created with), before a state store takes over.

    The row holds seed + fold of the log; an arm the engine created was created empty,
    so its seed is zero (the counts agree with the log's). Otherwise the log's part is
    taken away: counts and sums by subtraction, squares by re-centring the log's part
    onto the row's shift (see ``ArmStatsDelta``)."""
    from_log = fold(
        _event(r) for r in conn.execute(f"SELECT {_EVENT_COLUMNS} FROM events ORDER BY seq")
    )
    rows = conn.execute(
        "SELECT experiment_id, arm_id, decisions, rewards, reward_sum, reward_sq_sum, ips, shift"
        " FROM arms"
    ).fetchall()
    for experiment_id, arm_id, d, n, s, ss, ips, c in rows:
        logged = from_log.arms.get(experiment_id, {}).get(arm_id)
        if logged is None:
            continue  # nothing logged: the row is its seed
        if (logged.decisions, logged.rewards) == (d, n):
            seed = ArmStatsRow(arm_id, 0, 0.0, 0.0, 0.0, None, 0.0)
        else:
            gap = logged.shift - c
            centred = logged.reward_sum - logged.rewards * logged.shift
            ss_log = logged.reward_sq_sum + 2 * gap * centred + logged.rewards * gap * gap
            seed_ips = add_ips(decode_json(ips), [-x for x in logged.ips or ()] or None)
            seed = ArmStatsRow(
                arm_id, d - logged.decisions, n - logged.rewards, s - logged.reward_sum,
                ss - ss_log, seed_ips, c,
            )  # fmt: skip
        conn.execute(
            "UPDATE arms SET decisions = %s, rewards = %s, reward_sum = %s, reward_sq_sum = %s,"
            " ips = %s, shift = %s WHERE experiment_id = %s AND arm_id = %s",
            (
                int(seed.decisions), float(seed.rewards), float(seed.reward_sum),
                float(seed.reward_sq_sum), json_text(seed.ips), float(seed.shift),
                experiment_id, arm_id,
            ),
        )  # fmt: skip


def _store_folded(conn: psycopg.Connection[Any], folded: Folded) -> None:
    """Write folded statistics and assignments into the arms and assignments tables."""
    conn.execute(
        "UPDATE arms SET decisions = 0, rewards = 0, reward_sum = 0, reward_sq_sum = 0,"
        " ips = NULL, shift = 0"
    )
    for experiment_id, rows in folded.arms.items():
        for r in rows.values():
            conn.execute(
                "UPDATE arms SET decisions = %s, rewards = %s, reward_sum = %s,"
                " reward_sq_sum = %s, ips = %s, shift = %s"
                " WHERE experiment_id = %s AND arm_id = %s",
                (
                    int(r.decisions), float(r.rewards), float(r.reward_sum),
                    float(r.reward_sq_sum), json_text(r.ips), float(r.shift),
                    experiment_id, r.arm_id,
                ),
            )  # fmt: skip
    conn.execute("DELETE FROM assignments")
    for experiment_id, units in folded.assignments.items():
        for unit, (arm, p) in units.items():
            conn.execute(
                "INSERT INTO assignments (experiment_id, unit_id, arm_id, propensity)"
                " VALUES (%s, %s, %s, %s)",
                (experiment_id, unit, arm, float(p)),
            )


def _insert_arm(conn: psycopg.Connection[Any], experiment_id: str, arm: ArmRecord) -> None:
    conn.execute(
        f"INSERT INTO arms (experiment_id, {ARM_COLUMNS})"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            experiment_id,
            arm.arm_id,
            json_text(arm.payload),
            bool(arm.enabled),
            bool(arm.deleted),
            arm.position,
            float(arm.created_at),
            int(arm.decisions),
            float(arm.rewards),
            float(arm.reward_sum),
            float(arm.reward_sq_sum),
            json_text(arm.prior),
            json_text(arm.ips),
            float(arm.shift),
        ),
    )


def _bump(conn: psycopg.Connection[Any], experiment_id: str, ts: float) -> None:
    cur = conn.execute(
        "UPDATE experiments SET version = version + 1, updated_at = %s WHERE id = %s",
        (ts, experiment_id),
    )
    if cur.rowcount == 0:
        raise NotFound(f"experiment {experiment_id!r} not found", code="experiment_not_found")


class PostgresBatch:
    """A data-plane transaction on one pooled connection (see :class:`BatchTx`)."""

    def __init__(self, store: PostgresStorage, conn: psycopg.Connection[Any]) -> None:
        self._store = store
        self._conn = conn
        #: the transaction opened with a savepoint, not used yet
        self._premade = True
        #: the last savepoint's block succeeded and it is not released yet
        self._unreleased = False

    def _execute(self, query: str, params: Sequence[Any] | None = None) -> psycopg.Cursor[Any]:
        """Run one statement; storage-wide failures become :class:`StorageUnavailable`."""
        self._premade = False  # a block from here on needs a savepoint of its own
        try:
            return self._conn.execute(query, params)
        except psycopg.Error as exc:
            error = storage_error(exc)
            if error is None:
                raise
            raise error from exc

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """Undo only this block's writes if it raises (the transaction goes on).

        Storage-wide failures are raised as :class:`StorageUnavailable` (the whole
        group fails), as is a failure to roll back to the savepoint.

        Round trips are saved: the first savepoint was opened with the transaction,
        and a block that succeeds leaves its savepoint to be released with the next
        one's creation (or by the commit).
        """
        if self._premade:  # nothing ran since it was made: it marks this block's start
            self._premade = False
        elif self._unreleased:
            self._execute("RELEASE SAVEPOINT part; SAVEPOINT part")
        else:
            self._execute("SAVEPOINT part")
        self._unreleased = False
        try:
            yield
        except BaseException as exc:
            error = storage_error(exc) if isinstance(exc, psycopg.Error) else None
            if error is not None:
                raise error from exc
            if isinstance(exc, StorageUnavailable):
                raise
            try:
                self._conn.execute("ROLLBACK TO SAVEPOINT part")
                self._conn.execute("RELEASE SAVEPOINT part")
            except psycopg.Error as undo:
                raise storage_error(undo) or StorageUnavailable(
                    f"storage failure ({_one_line(undo)}): nothing was written"
                ) from exc
            raise
        self._unreleased = True

    def others_wrote(self) -> bool:
        return self._store._take_others_wrote()

    def load_experiment(self, experiment_id: str) -> ExperimentRecord | None:
        try:
            found = _records(self._conn, "WHERE id = %s", (experiment_id,))
        except psycopg.Error as exc:
            error = storage_error(exc)
            if error is None:
                raise
            raise error from exc
        return found[0] if found else None

    def find_assignments(
        self, experiment_id: str, unit_ids: Sequence[str]
    ) -> dict[str, tuple[str, float]]:
        rows = self._execute(
            "SELECT unit_id, arm_id, propensity FROM assignments"
            " WHERE experiment_id = %s AND unit_id = ANY(%s)",
            (experiment_id, list(dict.fromkeys(unit_ids))),
        )
        return {unit: (arm, p) for unit, arm, p in rows}

    def save_assignments(self, experiment_id: str, rows: Iterable[tuple[str, str, float]]) -> None:
        latest = {unit: (arm, float(p)) for unit, arm, p in rows}  # the last one wins
        if not latest:
            return
        self._execute(
            "INSERT INTO assignments (experiment_id, unit_id, arm_id, propensity)"
            " SELECT %s, u, a, p FROM unnest(%s::text[], %s::text[], %b::float8[]) AS t(u, a, p)"
            " ON CONFLICT (experiment_id, unit_id)"
            " DO UPDATE SET arm_id = EXCLUDED.arm_id, propensity = EXCLUDED.propensity",
            (
                experiment_id,
                list(latest),
                [a for a, _ in latest.values()],
                [p for _, p in latest.values()],
            ),
        )

    def append_decisions(self, events: Sequence[DecisionEvent]) -> None:
        if not events:
            return
        # one statement for the group; floats travel as binary float8 (exact)
        self._execute(
            "INSERT INTO events (ts, experiment_id, kind, decision_id, arm_id, propensity,"
            " unit_id, context, data) SELECT ts, e, 'decision', d, a, p, u, c, x FROM unnest("
            "%b::float8[], %s::text[], %s::text[], %s::text[], %b::float8[], %s::text[],"
            " %s::text[], %s::text[]) WITH ORDINALITY AS t(ts, e, d, a, p, u, c, x, i)"
            " ORDER BY i",
            (
                [float(e.ts) for e in events],
                [e.experiment_id for e in events],
                [e.decision_id for e in events],
                [e.arm_id for e in events],
                [float(e.propensity) for e in events],
                [e.unit_id for e in events],
                [json_text(e.context) for e in events],
                [decision_text(e.eligible, e.policy, e.version) for e in events],
            ),
        )

    def append_new_decisions(self, events: Sequence[DecisionEvent]) -> set[str]:
        ids = list(dict.fromkeys(e.decision_id for e in events))
        logged = {
            r[0]
            for r in self._execute(
                "SELECT decision_id FROM events WHERE decision_id = ANY(%s)"
                " AND kind IN ('decision', 'reward', 'default') AND kind = 'decision'",
                (ids,),
            )
        }
        fresh: dict[str, DecisionEvent] = {}
        for e in events:
            if e.decision_id not in logged and e.decision_id not in fresh:
                fresh[e.decision_id] = e
        if fresh:
            self.append_decisions(list(fresh.values()))
        return set(fresh)

    def find_decisions(
        self, experiment_id: str, decision_ids: Sequence[str], *, parts: bool = False
    ) -> dict[str, DecisionRef]:
        found: dict[str, DecisionRef] = {}
        rewarded: set[str] = set()
        ids = list(dict.fromkeys(decision_ids))
        if parts:
            rewarded.update(
                r[0]
                for r in self._execute(
                    "SELECT decision_id FROM events WHERE decision_id = ANY(%s) AND kind = 'part'",
                    (ids,),
                )
            )
        rows = self._execute(
            "SELECT decision_id, kind, arm_id, propensity, context, data, ts, seq FROM events"
            " WHERE decision_id = ANY(%s) AND kind IN ('decision', 'reward', 'default')"
            " AND experiment_id = %s",
            (ids, experiment_id),
        )
        for decision_id, kind, arm_id, propensity, context, data, ts, seq in rows:
            if kind == "decision":
                eligible, policy = decision_meta(data)
                found[decision_id] = DecisionRef(
                    arm_id, False, propensity, context, eligible, policy, ts, seq
                )
            else:
                rewarded.add(decision_id)
        for d in rewarded & found.keys():
            found[d] = found[d]._replace(rewarded=True)
        return found

    def append_rewards(self, events: Sequence[RewardEvent]) -> None:
        if not events:
            return
        self._execute(
            "INSERT INTO events (ts, experiment_id, kind, decision_id, arm_id, reward, count,"
            " data) SELECT ts, e, k, d, a, r, n, x FROM unnest(%b::float8[], %s::text[],"
            " %s::text[], %s::text[], %s::text[], %b::float8[], %b::float8[], %s::text[])"
            " WITH ORDINALITY AS t(ts, e, k, d, a, r, n, x, i) ORDER BY i",
            (
                [float(e.ts) for e in events],
                [e.experiment_id for e in events],
                [e.kind for e in events],
                [e.decision_id for e in events],
                [e.arm_id for e in events],
                [float(e.reward) for e in events],
                [float(e.count) for e in events],
                [json_text(e.data) for e in events],
            ),
        )

    def settled_through(self, experiment_id: str) -> int:
        row = self._execute(
            "SELECT settled_seq FROM experiments WHERE id = %s", (experiment_id,)
        ).fetchone()
        return int(row[0]) if row else 0

    def open_decisions(
        self, experiment_id: str, after: int, before_ts: float, limit: int
    ) -> list[OpenDecision]:
        rows = self._execute(
            "SELECT d.seq, d.ts, d.decision_id, d.arm_id, d.propensity, d.context, d.data,"
            " EXISTS (SELECT 1 FROM events r WHERE r.decision_id = d.decision_id"
            "   AND r.kind IN ('decision', 'reward', 'default') AND r.kind <> 'decision'),"
            " p.n, coalesce(p.total, 0)"
            " FROM events d LEFT JOIN LATERAL (SELECT count(*) AS n, sum(reward) AS total"
            "   FROM events x WHERE x.decision_id = d.decision_id AND x.kind = 'part') p ON true"
            " WHERE d.experiment_id = %s AND d.seq > %s AND d.kind = 'decision'"
            " ORDER BY d.seq LIMIT %s",
            (experiment_id, after, limit),
        ).fetchall()
        return open_rows(rows, before_ts)

    def settle_through(self, experiment_id: str, seq: int) -> None:
        self._execute(
            "UPDATE experiments SET settled_seq = greatest(settled_seq, %s) WHERE id = %s",
            (seq, experiment_id),
        )

    def write_policy_state(self, experiment_id: str, state: bytes | None) -> None:
        self._execute(
            "UPDATE experiments SET policy_state = %s WHERE id = %s", (state, experiment_id)
        )

    def add_arm_stats(self, experiment_id: str, deltas: Sequence[ArmStatsDelta]) -> None:
        if not deltas:
            return
        with_ips = [d for d in deltas if d.ips is not None]
        if with_ips:  # the sums' vector is added here; the store's write lock is held
            stored = dict(
                self._execute(
                    "SELECT arm_id, ips FROM arms WHERE experiment_id = %s"
                    " AND arm_id = ANY(%s::text[])",
                    (experiment_id, [d.arm_id for d in with_ips]),
                ).fetchall()
            )
            self._execute(
                "UPDATE arms SET ips = t.ips FROM unnest(%s::text[], %s::text[])"
                " AS t(arm_id, ips) WHERE arms.experiment_id = %s AND arms.arm_id = t.arm_id",
                (
                    [d.arm_id for d in with_ips],
                    [
                        json_text(add_ips(decode_json(stored.get(d.arm_id)), d.ips))
                        for d in with_ips
                    ],
                    experiment_id,
                ),
            )
        # SET expressions all read the row as it was; the squares are re-centred onto
        # the stored shift (see ArmStatsDelta)
        self._execute(
            "UPDATE arms SET"
            " reward_sq_sum = CASE WHEN arms.rewards = 0 THEN t.ss ELSE arms.reward_sq_sum"
            "   + t.ss + 2 * (t.c - arms.shift) * t.cs"
            "   + t.n * (t.c - arms.shift) * (t.c - arms.shift) END,"
            " shift = CASE WHEN arms.rewards = 0 THEN t.c ELSE arms.shift END,"
            " decisions = arms.decisions + t.d, rewards = arms.rewards + t.n,"
            " reward_sum = arms.reward_sum + t.s"
            " FROM unnest(%s::text[], %b::int8[], %b::float8[], %b::float8[], %b::float8[],"
            " %b::float8[], %b::float8[]) AS t(arm_id, d, n, s, ss, cs, c)"
            " WHERE arms.experiment_id = %s AND arms.arm_id = t.arm_id",
            (
                [d.arm_id for d in deltas],
                [int(d.decisions) for d in deltas],
                [float(d.rewards) for d in deltas],
                [float(d.reward_sum) for d in deltas],
                [float(d.reward_sq_sum) for d in deltas],
                [float(d.centred_sum) for d in deltas],
                [float(d.shift) for d in deltas],
                experiment_id,
            ),
        )


class PostgresStorage:
    """PostgreSQL implementation of :class:`~octobandit.storage.base.Storage`.

    ``url`` is a libpq URL (``postgresql://user@host:5432/db``); ``pool_min`` and
    ``pool_max`` bound the connection pool; ``timeout`` (seconds) bounds the wait
    for a pooled connection and for a lock (then ``StorageUnavailable``). An
    unreachable server or an unusable database at start raises :class:`StorageUnusable`.
    """

    def __init__(
        self, url: str, *, pool_min: int = 1, pool_max: int = 4, timeout: float = 10.0
    ) -> None:
        if not 0 < pool_min <= pool_max:
            raise ValueError("need 0 < pool_min <= pool_max")
        self.url = url
        self.timeout = timeout
        self._lock = threading.Lock()
        #: ``(code, message)`` after an operation failed with a storage-wide error
        self.problem: tuple[str, str] | None = None
        #: the store version this process's last write transaction committed
        self._last_version = self._prepare()
        self._others = False
        lock_ms = max(1, int(timeout * 1000))

        def configure(conn: psycopg.Connection[Any]) -> None:
            conn.execute(f"SET lock_timeout = {lock_ms}")

        self._pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            url,
            min_size=pool_min,
            max_size=pool_max,
            timeout=timeout,
            kwargs={"autocommit": True, "connect_timeout": max(1, int(timeout))},
            configure=configure,
            open=False,
            name="octobandit",
        )
        try:
            self._pool.open(wait=True, timeout=timeout)
        except psycopg.Error as exc:
            self._pool.close()
            raise StorageUnusable(f"cannot connect to {_where(url)}: {_one_line(exc)}") from exc

    def _prepare(self) -> int:
        """Connect once, create or check the schema; returns the store version."""
        try:
            conn = psycopg.connect(
                self.url, autocommit=True, connect_timeout=max(1, int(self.timeout))
            )
        except psycopg.Error as exc:
            raise StorageUnusable(
                f"cannot connect to {_where(self.url)}: {_one_line(exc)}"
            ) from exc
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS octobandit_schema (version INTEGER NOT NULL)"
                )
                row = conn.execute("SELECT max(version) FROM octobandit_schema").fetchone()
                version = row[0] if row else None
                if version is None:
                    for statement in SCHEMA.split(";"):
                        if statement.strip():
                            conn.execute(statement)
                    version = 1
                elif version > SCHEMA_VERSION:
                    raise StorageUnusable(
                        f"{_where(self.url)} has schema version {version}, newer than this"
                        f" release's {SCHEMA_VERSION}: upgrade octobandit"
                    )
                if version < SCHEMA_VERSION:
                    for step in range(version + 1, SCHEMA_VERSION + 1):
                        conn.execute(MIGRATIONS[step])
                    conn.execute("DELETE FROM octobandit_schema")
                    conn.execute("INSERT INTO octobandit_schema VALUES (%s)", (SCHEMA_VERSION,))
                row = conn.execute("SELECT stats_in FROM octobandit_store FOR UPDATE").fetchone()
                if row and row[0] != self.stats_in:
                    if self.stats_in == "store":  # they were kept in a state store: refold
                        _store_folded(conn, _fold_log(conn))
                    else:  # the rows hold the fold: keep only what the log does not tell
                        _keep_seeds(conn)
                    conn.execute(
                        "UPDATE octobandit_store SET stats_in = %s, version = version + 1",
                        (self.stats_in,),
                    )
                current = conn.execute("SELECT version FROM octobandit_store").fetchone()
            return int(current[0]) if current else 0
        except psycopg.Error as exc:
            raise StorageUnusable(f"cannot use {_where(self.url)}: {_one_line(exc)}") from exc
        finally:
            conn.close()

    #: where this store keeps the per-arm statistics and assignments (see MIGRATIONS)
    stats_in = "store"

    # -- health -------------------------------------------------------------
    def health(self) -> dict[str, str] | None:
        """``None`` when the last operation worked, else ``{"reason", "message"}`` (no I/O)."""
        problem = self.problem
        return None if problem is None else {"reason": problem[0], "message": problem[1]}

    def _failed(self, exc: psycopg.Error) -> StorageUnavailable | None:
        error = storage_error(exc)
        if error is not None:
            self._noted(error)
        return error

    def _noted(self, error: StorageUnavailable) -> None:
        if self.problem is None:
            log.warning("PostgreSQL store: %s", error.message)
        self.problem = (error.code, error.message)

    def _take_others_wrote(self) -> bool:
        others, self._others = self._others, False
        return others

    # -- transactions -------------------------------------------------------
    @contextmanager
    def _read(self) -> Iterator[psycopg.Connection[Any]]:
        """A read-only snapshot (repeatable read) on a pooled connection."""
        try:
            with self._pool.connection() as conn:
                conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                try:
                    yield conn
                finally:
                    with contextlib.suppress(psycopg.Error):
                        conn.execute("ROLLBACK")
        except psycopg.Error as exc:
            error = self._failed(exc)
            if error is None:
                raise
            raise error from exc

    @contextmanager
    def _write(self) -> Iterator[psycopg.Connection[Any]]:
        """One write transaction, serialised with every other writer on the database."""
        with self._lock:
            try:
                with self._pool.connection() as conn:
                    try:
                        try:
                            # one round trip (no parameters: the simple query protocol
                            # runs the statements in turn); the last result is the version
                            cur = conn.execute(_BEGIN_LOCKED if self.hold_after_commit else _BEGIN)
                            row = None
                            while True:
                                if cur.description and cur.description[0].name == "version":
                                    row = cur.fetchone()
                                if not cur.nextset():
                                    break
                            version = int(row[0]) if row else 0
                            if version - 1 != self._last_version:
                                self._others = True  # another process committed meanwhile
                            self._began(conn, version)
                            yield conn
                            conn.execute("COMMIT")
                        except BaseException:
                            self._aborted()
                            if not conn.closed:
                                with contextlib.suppress(psycopg.Error):
                                    conn.execute("ROLLBACK")
                            raise
                        self._last_version = version
                        self._committed(conn, version)
                    finally:
                        if self.hold_after_commit and not conn.closed:
                            with contextlib.suppress(psycopg.Error):
                                conn.execute("SELECT pg_advisory_unlock(%s)", (_WRITE_LOCK,))
            except psycopg.Error as exc:
                error = self._failed(exc)
                if error is None:
                    raise
                raise error from exc
            except StorageUnavailable as exc:  # raised inside the batch
                self._noted(exc)
                raise
            self.problem = None  # a write went through

    # -- hooks of a store that keeps part of its state elsewhere -------------
    #: hold a session lock from before a write's transaction until after
    #: :meth:`_committed`, so that what a subclass does after the commit is
    #: serialised with every other writer too
    hold_after_commit = False

    def _began(self, conn: psycopg.Connection[Any], version: int) -> None:
        """Inside a write transaction, after its version bump (``version``: its own)."""

    def _aborted(self) -> None:
        """The write transaction is rolled back."""

    def _committed(self, conn: psycopg.Connection[Any], version: int) -> None:
        """After the write transaction committed (the session lock still held)."""

    def _state_changed(self, experiment_id: str, change: str | ArmStatsRow) -> None:
        """A control-plane write changed an experiment's statistics or assignments
        (inside its transaction): ``"rebuild"`` (fold them from the arms' seed and the
        log), ``"empty"``, ``"delete"``, or one arm overwritten (an :class:`ArmStatsRow`)."""

    @contextmanager
    def batch(self) -> Iterator[PostgresBatch]:
        with self._write() as conn:
            yield PostgresBatch(self, conn)

    # -- reads --------------------------------------------------------------
    def get_experiment(self, experiment_id: str) -> ExperimentRecord | None:
        with self._read() as conn:
            found = _records(conn, "WHERE id = %s", (experiment_id,))
        return found[0] if found else None

    def list_experiments(self) -> list[ExperimentRecord]:
        with self._read() as conn:
            return _records(conn, "", ())

    def pending_rewards(self, experiment_id: str) -> dict[str, float]:
        with self._read() as conn:
            rows = conn.execute(
                "WITH w AS (SELECT settled_seq AS s FROM experiments WHERE id = %s)"
                " SELECT p.arm_id, sum(p.reward) FROM events p, w"
                " WHERE p.experiment_id = %s AND p.seq > w.s AND p.kind = 'part'"
                " AND (SELECT d.seq FROM events d WHERE d.decision_id = p.decision_id"
                "   AND d.kind IN ('decision', 'reward', 'default') AND d.kind = 'decision')"
                " > w.s GROUP BY p.arm_id",
                (experiment_id, experiment_id),
            ).fetchall()
        return {arm: float(total) for arm, total in rows}

    def due_for_settlement(self, now: float) -> list[str]:
        with self._read() as conn:
            rows = conn.execute(
                "SELECT id FROM experiments e"
                " WHERE options::jsonb -> 'reward' ? 'attribution_window'"
                " AND (SELECT d.ts FROM events d WHERE d.experiment_id = e.id"
                "   AND d.seq > e.settled_seq AND d.kind = 'decision' ORDER BY d.seq LIMIT 1)"
                " + (options::jsonb -> 'reward' ->> 'attribution_window')::float8 < %s"
                " ORDER BY id",
                (now,),
            ).fetchall()
        return [r[0] for r in rows]

    def events(self, experiment_id: str | None = None) -> Iterator[Event]:
        with self._read() as conn:
            if experiment_id is None:
                rows = conn.execute(f"SELECT {_EVENT_COLUMNS} FROM events ORDER BY seq").fetchall()
            else:
                rows = conn.execute(
                    f"SELECT {_EVENT_COLUMNS} FROM events WHERE experiment_id = %s ORDER BY seq",
                    (experiment_id,),
                ).fetchall()
        for r in rows:
            yield _event(r)

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
        if limit <= 0 or (kinds is not None and not kinds):
            return []
        sql = f"SELECT {_EVENT_COLUMNS} FROM events WHERE experiment_id = %s AND seq > %s"
        params: list[Any] = [experiment_id, after]
        if kinds is not None:
            sql += " AND kind = ANY(%s)"
            params.append(list(kinds))
        if since is not None:
            sql += " AND ts >= %s"
            params.append(since)
        if until is not None:
            sql += " AND ts < %s"
            params.append(until)
        params.append(limit)
        with self._read() as conn:
            rows = conn.execute(sql + " ORDER BY seq LIMIT %s", params).fetchall()
        return [_event(r) for r in rows]

    def due_for_snapshot(self, now: float) -> list[ExperimentRecord]:
        with self._read() as conn:
            return _records(conn, f"WHERE last_snapshot + {_INTERVAL} <= %s", (now,))

    def snapshots(self, experiment_id: str, limit: int | None = None) -> list[Snapshot]:
        with self._read() as conn:
            rows = conn.execute(
                "SELECT experiment_id, ts, reason, data FROM snapshots WHERE experiment_id = %s"
                " ORDER BY seq DESC LIMIT %s",
                (experiment_id, limit),
            ).fetchall()
        return [Snapshot(r[0], r[1], r[2], json.loads(r[3])) for r in reversed(rows)]

    # -- control plane ------------------------------------------------------
    # -- API keys -------------------------------------------------------------
    def add_api_key(self, key: ApiKeyRecord) -> None:
        with self._write() as conn:
            if conn.execute(
                "SELECT 1 FROM api_keys WHERE id = %s OR hash = %s", (key.id, key.hash)
            ).fetchone():
                raise Conflict(f"API key {key.id!r} already exists", code="already_exists")
            conn.execute(
                f"INSERT INTO api_keys ({API_KEY_COLUMNS})"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                api_key_row(key),
            )

    def api_keys(self) -> list[ApiKeyRecord]:
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT {API_KEY_COLUMNS} FROM api_keys ORDER BY created_at, id"
            ).fetchall()
        return [api_key_record(r) for r in rows]

    def revoke_api_key(self, key_id: str, ts: float) -> bool:
        with self._write() as conn:
            found = conn.execute("SELECT 1 FROM api_keys WHERE id = %s", (key_id,)).fetchone()
            conn.execute(
                "UPDATE api_keys SET revoked_at = %s WHERE id = %s AND revoked_at IS NULL",
                (ts, key_id),
            )
        return found is not None

    def create_experiment(self, record: ExperimentRecord) -> None:
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM experiments WHERE id = %s", (record.id,)).fetchone():
                raise Conflict(f"experiment {record.id!r} already exists", code="already_exists")
            conn.execute(
                f"INSERT INTO experiments ({_EXPERIMENT_COLUMNS})"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, NULL, %s, NULL)",
                (
                    record.id,
                    record.name,
                    json.dumps(record.policy),
                    record.reward_type,
                    record.status,
                    record.version,
                    float(record.created_at),
                    float(record.updated_at),
                    json.dumps(record.options),
                    float(record.created_at),
                ),
            )
            for arm in record.arms:
                _insert_arm(conn, record.id, arm)
            self._state_changed(record.id, "rebuild")

    def update_experiment(self, experiment_id: str, changes: Mapping[str, Any], ts: float) -> None:
        allowed = {"name", "status", "policy", "options", "conclusion", "policy_state"}
        unknown = set(changes) - allowed
        if unknown:
            raise ValueError(f"cannot change {sorted(unknown)}")
        with self._write() as conn:
            _bump(conn, experiment_id, ts)
            for key, value in changes.items():
                conn.execute(
                    f"UPDATE experiments SET {key} = %s WHERE id = %s",
                    (
                        json.dumps(value) if key in ("policy", "options", "conclusion") else value,
                        experiment_id,
                    ),
                )

    def delete_experiment(self, experiment_id: str) -> bool:
        with self._write() as conn:
            cur = conn.execute("DELETE FROM experiments WHERE id = %s", (experiment_id,))
            self._state_changed(experiment_id, "delete")
            for table in _TABLES[1:]:
                conn.execute(
                    f"DELETE FROM {table} WHERE experiment_id = %s",
                    (experiment_id,),
                )
            return cur.rowcount > 0

    def delete_all(self) -> int:
        with self._write() as conn:
            ids = [r[0] for r in conn.execute("SELECT id FROM experiments")]
            for experiment_id in ids:
                self._state_changed(experiment_id, "delete")
            for table in _TABLES:
                conn.execute(f"DELETE FROM {table}")
            return len(ids)

    def reset_experiment(self, experiment_id: str, ts: float) -> None:
        with self._write() as conn:
            _bump(conn, experiment_id, ts)
            conn.execute(
                "UPDATE arms SET decisions = 0, rewards = 0, reward_sum = 0, reward_sq_sum = 0,"
                " ips = NULL, shift = 0 WHERE experiment_id = %s",
                (experiment_id,),
            )
            conn.execute(
                "UPDATE experiments SET policy_state = NULL WHERE id = %s", (experiment_id,)
            )
            conn.execute("DELETE FROM assignments WHERE experiment_id = %s", (experiment_id,))
            # decisions before the reset are not settled into the fresh statistics
            conn.execute(
                "WITH r AS (INSERT INTO events (ts, experiment_id, kind)"
                " VALUES (%s, %s, 'reset') RETURNING seq)"
                " UPDATE experiments SET settled_seq = (SELECT seq FROM r) WHERE id = %s",
                (ts, experiment_id, experiment_id),
            )
            self._state_changed(experiment_id, "empty")

    def add_arm(self, experiment_id: str, arm: ArmRecord, ts: float) -> None:
        with self._write() as conn:
            _bump(conn, experiment_id, ts)
            if conn.execute(
                "SELECT 1 FROM arms WHERE experiment_id = %s AND arm_id = %s",
                (experiment_id, arm.arm_id),
            ).fetchone():
                raise Conflict(f"arm {arm.arm_id!r} already exists", code="already_exists")
            row = conn.execute(
                "SELECT coalesce(max(position) + 1, 0) FROM arms WHERE experiment_id = %s",
                (experiment_id,),
            ).fetchone()
            arm.position = int(row[0]) if row else 0
            _insert_arm(conn, experiment_id, arm)
            if arm.decisions or arm.rewards or arm.ips:
                self._state_changed(experiment_id, "rebuild")

    def update_arm(
        self, experiment_id: str, arm_id: str, changes: Mapping[str, Any], ts: float
    ) -> None:
        allowed = {"enabled", "deleted", "payload"}
        unknown = set(changes) - allowed
        if unknown:
            raise ValueError(f"cannot change {sorted(unknown)}")
        with self._write() as conn:
            _bump(conn, experiment_id, ts)
            if not conn.execute(
                "SELECT 1 FROM arms WHERE experiment_id = %s AND arm_id = %s",
                (experiment_id, arm_id),
            ).fetchone():
                raise NotFound(
                    f"arm {arm_id!r} not found in experiment {experiment_id!r}",
                    code="arm_not_found",
                )
            for key, value in changes.items():
                conn.execute(
                    f"UPDATE arms SET {key} = %s WHERE experiment_id = %s AND arm_id = %s",
                    (json_text(value) if key == "payload" else bool(value), experiment_id, arm_id),
                )

    def set_arm_stats(self, experiment_id: str, row: ArmStatsRow, ts: float) -> None:
        with self._write() as conn:
            _bump(conn, experiment_id, ts)
            cur = conn.execute(
                "UPDATE arms SET decisions = %s, rewards = %s, reward_sum = %s,"
                " reward_sq_sum = %s, ips = NULL, shift = %s"
                " WHERE experiment_id = %s AND arm_id = %s",
                (
                    int(row.decisions),
                    float(row.rewards),
                    float(row.reward_sum),
                    float(row.reward_sq_sum),
                    float(row.shift),
                    experiment_id,
                    row.arm_id,
                ),
            )
            if cur.rowcount == 0:
                raise NotFound(
                    f"arm {row.arm_id!r} not found in experiment {experiment_id!r}",
                    code="arm_not_found",
                )
            data = {
                "decisions": row.decisions,
                "rewards": row.rewards,
                "reward_sum": row.reward_sum,
                "reward_sq_sum": row.reward_sq_sum,
                "shift": row.shift,
            }
            conn.execute(
                "INSERT INTO events (ts, experiment_id, kind, arm_id, data)"
                " VALUES (%s, %s, 'set_stats', %s, %s)",
                (ts, experiment_id, row.arm_id, json.dumps(data)),
            )
            self._state_changed(experiment_id, row)

    def conclude(self, experiment_id: str, conclusion: Mapping[str, Any], ts: float) -> None:
        with self._write() as conn:
            _bump(conn, experiment_id, ts)
            conn.execute(
                "UPDATE experiments SET status = 'concluded', conclusion = %s WHERE id = %s",
                (json.dumps(conclusion), experiment_id),
            )

    def add_snapshot(self, snapshot: Snapshot) -> bool:
        with self._write() as conn:
            if snapshot.reason == "interval":  # another process may have taken it meanwhile
                due = conn.execute(
                    f"SELECT last_snapshot + {_INTERVAL} <= %s FROM experiments WHERE id = %s",
                    (snapshot.ts, snapshot.experiment_id),
                ).fetchone()
                if not due or not due[0]:
                    return False
            conn.execute(
                "INSERT INTO snapshots (experiment_id, ts, reason, data) VALUES (%s, %s, %s, %s)",
                (snapshot.experiment_id, snapshot.ts, snapshot.reason, json.dumps(snapshot.data)),
            )
            conn.execute(
                "UPDATE experiments SET last_snapshot = greatest(last_snapshot, %s) WHERE id = %s",
                (snapshot.ts, snapshot.experiment_id),
            )
            return True

    def close(self) -> None:
        self._pool.close()
