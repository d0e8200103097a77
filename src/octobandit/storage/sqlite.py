"""SQLite storage: the zero-setup default (WAL mode, one file).

Durability: with the default ``synchronous=NORMAL`` in WAL mode a committed
transaction survives the process being killed (SIGKILL, OOM, crash); it may
be lost on power failure or an OS crash. ``synchronous="FULL"`` also survives
those, at the price of an fsync per group commit.

Several processes (``octobandit serve --workers N``) may share one file: data
plane batches take the write lock with ``BEGIN IMMEDIATE`` and each process
notices the others' commits through ``PRAGMA data_version``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from octobandit.errors import (
    Conflict,
    NotFound,
    StorageFull,
    StorageLost,
    StorageUnavailable,
    StorageUnusable,
)
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
from octobandit.storage.rows import (
    API_KEY_COLUMNS,
    ARM_COLUMNS,
    api_key_record,
    api_key_row,
    arm_record,
    decision_meta,
    decision_text,
    dumps,
    encode,
    json_text,
    open_rows,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS experiments (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    policy TEXT NOT NULL,
    reward_type TEXT NOT NULL,
    status TEXT NOT NULL,
    version INTEGER NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    options TEXT NOT NULL DEFAULT '{}',
    conclusion TEXT,
    last_snapshot REAL NOT NULL DEFAULT 0,
    policy_state BLOB,
    settled_seq INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS snapshots (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    experiment_id TEXT NOT NULL,
    ts REAL NOT NULL,
    reason TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS snapshots_by_experiment ON snapshots (experiment_id, seq);
CREATE TABLE IF NOT EXISTS arms (
    experiment_id TEXT NOT NULL,
    arm_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    payload TEXT,
    enabled INTEGER NOT NULL,
    deleted INTEGER NOT NULL,
    created_at REAL NOT NULL,
    decisions INTEGER NOT NULL DEFAULT 0,
    rewards REAL NOT NULL DEFAULT 0,
    reward_sum REAL NOT NULL DEFAULT 0,
    reward_sq_sum REAL NOT NULL DEFAULT 0,
    prior TEXT,
    ips TEXT,
    shift REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (experiment_id, arm_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    experiment_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    decision_id TEXT,
    arm_id TEXT,
    propensity REAL,
    unit_id TEXT,
    context TEXT,
    reward REAL,
    count REAL,
    data TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS events_decision_once ON events (decision_id, kind)
    WHERE decision_id IS NOT NULL AND kind IN ('decision', 'reward', 'default');
CREATE INDEX IF NOT EXISTS events_parts ON events (decision_id) WHERE kind = 'part';
CREATE INDEX IF NOT EXISTS events_by_experiment ON events (experiment_id, seq);
CREATE TABLE IF NOT EXISTS assignments (
    experiment_id TEXT NOT NULL,
    unit_id TEXT NOT NULL,
    arm_id TEXT NOT NULL,
    propensity REAL NOT NULL,
    PRIMARY KEY (experiment_id, unit_id)
) WITHOUT ROWID;
"""


def _stays_empty(path: str, wait: float = 2.0) -> bool:
    """A 0-byte file that stays so: not one that another process is creating right now
    (several workers or replicas starting at once on a new file)."""
    deadline = time.monotonic() + wait
    while os.path.getsize(path) == 0:
        if time.monotonic() > deadline:
            return True
        time.sleep(0.05)
    return False


#: the indexes on decision ids from schema 2 on (as in SCHEMA)
INDEXES_2 = tuple(
    stmt.strip()
    for stmt in SCHEMA.split(";")
    if "events_decision_once" in stmt or "events_parts" in stmt
)
assert len(INDEXES_2) == 2

#: schema 3: API keys (``octobandit keys``), only their SHA-256 stored
API_KEYS_TABLE = """
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    prefix TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    scopes TEXT NOT NULL,
    experiments TEXT,
    created_at REAL NOT NULL,
    expires_at REAL,
    revoked_at REAL
)
"""

#: the schema this release writes (``PRAGMA user_version``); see :func:`migrate`
SCHEMA_VERSION = 3


def migrate(db: sqlite3.Connection, path: str) -> None:
    """Bring the schema to :data:`SCHEMA_VERSION`, inside the caller's write transaction.

    Version 0 is a new file or one written before the schema was numbered (it may
    lack the arms' ``shift`` column: its squares are about 0). Version 2 adds the
    attribution watermark (``experiments.settled_seq``) and lets a decision have
    several ``part`` and ``late`` events (the unique index on decision ids leaves
    them out; parts have their own). Version 3 adds the ``api_keys`` table. A file
    from a newer release is refused
    rather than misread.
    """
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise StorageUnusable(
            f"{path} was written by a newer octobandit (schema {version}, this release"
            f" reads up to {SCHEMA_VERSION}): upgrade octobandit"
        )
    if version < 1:
        for statement in SCHEMA.split(";"):
            if statement.strip():
                db.execute(statement)
        columns = {r[1] for r in db.execute("PRAGMA table_info(arms)")}
        if "shift" not in columns:
            db.execute("ALTER TABLE arms ADD COLUMN shift REAL NOT NULL DEFAULT 0")
    if version < 2:
        db.execute("DROP INDEX IF EXISTS events_by_decision")
        db.execute(INDEXES_2[0])
        db.execute(INDEXES_2[1])
        columns = {r[1] for r in db.execute("PRAGMA table_info(experiments)")}
        if "settled_seq" not in columns:
            db.execute("ALTER TABLE experiments ADD COLUMN settled_seq INTEGER NOT NULL DEFAULT 0")
    if version < 3:
        db.execute(API_KEYS_TABLE)
    if version != SCHEMA_VERSION:
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")


#: the term (exactly as in the unique index's WHERE) that lets SQLite use that index
_ONCE = "kind IN ('decision', 'reward', 'default')"
_ARM_COLUMNS = ARM_COLUMNS
_encode = encode
_dumps = dumps
_loads = decode_json


def _event(r: Sequence[Any]) -> Event:
    """An :class:`Event` from a ``SELECT * FROM events`` row."""
    return Event(
        r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], _loads(r[8]), r[9], r[10],
        _loads(r[11]),
    )  # fmt: skip


_decision_text = decision_text
_json_text = json_text
_decision_meta = decision_meta
_arm = arm_record


# SQLite primary result codes (https://sqlite.org/rescode.html)
_IOERR, _FULL = 10, 13
_NOTADB, _CORRUPT, _CANTOPEN, _READONLY = 26, 11, 14, 8
#: busy, locked, nomem, readonly, corrupt, cantopen, protocol, notadb: the store, not a request
_UNAVAILABLE = {5, 6, 7, _READONLY, _CORRUPT, _CANTOPEN, 15, _NOTADB}

FULL_MESSAGE = "disk full: nothing was written; retry once space is freed"
LOST_MESSAGE = (
    "the database file was removed or replaced while serving: nothing was written;"
    " writes are refused until the service restarts"
)
#: free space below which the disk counts as full (``/healthz`` degraded)
RESERVE_BYTES = 1 << 20

log = logging.getLogger("octobandit.storage")


def storage_error(exc: sqlite3.Error) -> StorageUnavailable | None:
    """The storage-wide failure behind an SQLite error, or ``None`` if it is not one.

    A full disk or an I/O error on write is :class:`StorageFull`; a busy,
    read-only, corrupted or vanished database is :class:`StorageUnavailable`.
    Anything else (a constraint, a value SQLite cannot store) is a request's
    or an experiment's own fault.
    """
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None:
        return None
    primary = code & 0xFF
    if primary == _FULL:
        return StorageFull(FULL_MESSAGE)
    if primary == _IOERR:
        return StorageFull(f"disk full or I/O error ({exc}): nothing was written; retry later")
    if primary in _UNAVAILABLE:
        return StorageUnavailable(f"storage unavailable ({exc}): nothing was written")
    return None


def _open_failure(path: str, exc: BaseException) -> str:
    """One line saying why the database at ``path`` cannot be used."""
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    if code == _NOTADB:
        return f"{path} is not an SQLite database: restore a backup or move it away"
    if code == _CORRUPT:
        return f"{path} is corrupted ({exc}): restore a backup or move it away"
    if code == _CANTOPEN:
        return f"cannot open {path}: its directory is missing or not writable"
    if code == _READONLY:
        return f"{path} is read-only: the database file and its directory must be writable"
    return f"cannot use {path}: {exc}"


class _Monitor:
    """A daemon thread with its own connection that looks after the file.

    Every ``interval`` seconds it checks that the path still names the opened
    file, retries a full disk (see :meth:`SQLiteStorage.try_recover`) and runs
    a passive WAL checkpoint: it copies committed pages into the database
    without ever blocking writers (SQLite releases the GIL meanwhile). Under
    steady writes a passive checkpoint never catches the log's end, so the
    WAL is only rewound by a writer: see :meth:`SQLiteStorage._catch_up`.
    """

    def __init__(self, store: SQLiteStorage, interval: float = 0.25) -> None:
        self._store = store
        self._db: sqlite3.Connection | None = None
        self._stop = threading.Event()
        self._interval = interval
        self._thread = threading.Thread(target=self._run, name="octobandit-monitor", daemon=True)
        self._thread.start()

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            store = self._store
            db = sqlite3.connect(store.path, timeout=store.timeout, check_same_thread=False)
            db.execute(f"PRAGMA journal_size_limit={store.wal_soft}")
            self._db = db
        return self._db

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.step()
            except Exception:  # the monitor never dies; the next round retries
                log.exception("storage monitor")
        if self._db is not None:
            self._db.close()

    def step(self) -> None:
        store = self._store
        if not store.check_identity():
            return
        if store.problem is not None and not store.try_recover():
            return
        try:
            self._connection().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error:  # busy, or no space to grow the database: next round
            if self._db is not None:
                self._db.close()
                self._db = None

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


class SQLiteBatch:
    """A data-plane transaction on an open connection (see :class:`BatchTx`)."""

    def __init__(self, store: SQLiteStorage) -> None:
        self._store = store
        self._db = store._db

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """Undo only this block's writes if it raises (the transaction goes on).

        A storage-wide SQLite failure is raised as
        :class:`~octobandit.errors.StorageUnavailable` (the whole group fails); so
        is any failure after which SQLite has dropped the transaction.
        """
        self._db.execute("SAVEPOINT part")
        try:
            yield
        except BaseException as exc:
            error = storage_error(exc) if isinstance(exc, sqlite3.Error) else None
            if error is None and not self._db.in_transaction:
                error = StorageUnavailable(f"storage failure ({exc}): nothing was written")
            if error is not None:
                raise error from exc
            try:
                self._db.execute("ROLLBACK TO part")
                self._db.execute("RELEASE part")
            except sqlite3.Error as undo:
                raise storage_error(undo) or StorageUnavailable(str(undo)) from exc
            raise
        self._db.execute("RELEASE part")

    def others_wrote(self) -> bool:
        version = self._db.execute("PRAGMA data_version").fetchone()[0]
        changed: bool = version != self._store._data_version
        self._store._data_version = version
        return changed

    def load_experiment(self, experiment_id: str) -> ExperimentRecord | None:
        return self._store._load(experiment_id)

    def find_assignments(
        self, experiment_id: str, unit_ids: Sequence[str]
    ) -> dict[str, tuple[str, float]]:
        out: dict[str, tuple[str, float]] = {}
        units = list(dict.fromkeys(unit_ids))
        for start in range(0, len(units), 500):  # one look-up per 500 units of the group
            chunk = units[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for unit, arm_id, propensity in self._db.execute(
                "SELECT unit_id, arm_id, propensity FROM assignments"
                f" WHERE experiment_id=? AND unit_id IN ({marks})",
                [experiment_id, *chunk],
            ):
                out[unit] = (arm_id, propensity)
        return out

    def save_assignments(self, experiment_id: str, rows: Iterable[tuple[str, str, float]]) -> None:
        self._db.executemany(
            "INSERT OR REPLACE INTO assignments (experiment_id, unit_id, arm_id, propensity)"
            " VALUES (?, ?, ?, ?)",
            ((experiment_id, unit, arm, p) for unit, arm, p in rows),
        )

    def append_decisions(self, events: Sequence[DecisionEvent]) -> None:
        # bound rows with executemany: in the engine process (one thread, no other
        # thread wanting the interpreter lock) this is about a quarter faster than
        # one INSERT … SELECT FROM json_each(?) over the group's rows
        self._db.executemany(
            "INSERT INTO events (ts, experiment_id, kind, decision_id, arm_id, propensity,"
            " unit_id, context, data) VALUES (?, ?, 'decision', ?, ?, ?, ?, ?, ?)",
            [
                (
                    e.ts,
                    e.experiment_id,
                    e.decision_id,
                    e.arm_id,
                    e.propensity,
                    e.unit_id,
                    _json_text(e.context),
                    _decision_text(e.eligible, e.policy, e.version),
                )
                for e in events
            ],
        )

    def append_new_decisions(self, events: Sequence[DecisionEvent]) -> set[str]:
        ids = list(dict.fromkeys(e.decision_id for e in events))
        logged: set[str] = set()
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            logged.update(
                r[0]
                for r in self._db.execute(
                    f"SELECT decision_id FROM events WHERE decision_id IN ({marks})"
                    f" AND {_ONCE} AND kind = 'decision'",
                    chunk,
                )
            )
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
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT decision_id, kind, arm_id, experiment_id, propensity, context, data,"
                f" ts, seq FROM events WHERE decision_id IN ({marks})"
                f" AND {_ONCE}",
                chunk,
            )
            for decision_id, kind, arm_id, exp, propensity, context, data, ts, seq in rows:
                if exp != experiment_id:
                    continue
                if kind == "decision":
                    eligible, policy = _decision_meta(data)
                    found[decision_id] = DecisionRef(
                        arm_id, False, propensity, context, eligible, policy, ts, seq
                    )
                else:
                    rewarded.add(decision_id)
            if parts:
                rewarded.update(
                    r[0]
                    for r in self._db.execute(
                        f"SELECT decision_id FROM events WHERE decision_id IN ({marks})"
                        " AND kind = 'part'",
                        chunk,
                    )
                )
        for d in rewarded & found.keys():
            found[d] = found[d]._replace(rewarded=True)
        return found

    def append_rewards(self, events: Sequence[RewardEvent]) -> None:
        self._db.executemany(  # as in append_decisions
            "INSERT INTO events (ts, experiment_id, kind, decision_id, arm_id, reward, count,"
            " data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    e.ts,
                    e.experiment_id,
                    e.kind,
                    e.decision_id,
                    e.arm_id,
                    e.reward,
                    e.count,
                    _json_text(e.data),
                )
                for e in events
            ],
        )

    def settled_through(self, experiment_id: str) -> int:
        row = self._db.execute(
            "SELECT settled_seq FROM experiments WHERE id=?", (experiment_id,)
        ).fetchone()
        return int(row[0]) if row else 0

    def open_decisions(
        self, experiment_id: str, after: int, before_ts: float, limit: int
    ) -> list[OpenDecision]:
        rows = self._db.execute(
            "SELECT d.seq, d.ts, d.decision_id, d.arm_id, d.propensity, d.context, d.data,"
            " EXISTS (SELECT 1 FROM events r WHERE r.decision_id = d.decision_id"
            "   AND r.kind IN ('decision', 'reward', 'default') AND r.kind <> 'decision'),"
            " (SELECT count(*) FROM events p WHERE p.decision_id = d.decision_id"
            "   AND p.kind = 'part'),"
            " (SELECT total(p.reward) FROM events p WHERE p.decision_id = d.decision_id"
            "   AND p.kind = 'part')"
            " FROM events d WHERE d.experiment_id=? AND d.seq>? AND d.kind='decision'"
            " ORDER BY d.seq LIMIT ?",
            (experiment_id, after, limit),
        ).fetchall()
        return open_rows(rows, before_ts)

    def settle_through(self, experiment_id: str, seq: int) -> None:
        self._db.execute(
            "UPDATE experiments SET settled_seq=max(settled_seq, ?) WHERE id=?",
            (seq, experiment_id),
        )

    def write_policy_state(self, experiment_id: str, state: bytes | None) -> None:
        self._db.execute("UPDATE experiments SET policy_state=? WHERE id=?", (state, experiment_id))

    def add_arm_stats(self, experiment_id: str, deltas: Sequence[ArmStatsDelta]) -> None:
        for d in deltas:
            if d.ips is not None:  # the sums' vector is added here, under the write lock
                row = self._db.execute(
                    "SELECT ips FROM arms WHERE experiment_id=? AND arm_id=?",
                    (experiment_id, d.arm_id),
                ).fetchone()
                stored = decode_json(row[0]) if row is not None else None
                self._db.execute(
                    "UPDATE arms SET ips=? WHERE experiment_id=? AND arm_id=?",
                    (_dumps(add_ips(stored, d.ips)), experiment_id, d.arm_id),
                )
        # one statement per arm; SET expressions all read the row as it was
        self._db.executemany(
            "UPDATE arms SET"
            " reward_sq_sum = CASE WHEN rewards = 0 THEN :ss ELSE reward_sq_sum + :ss"
            "   + 2 * (:c - shift) * :cs + :n * (:c - shift) * (:c - shift) END,"
            " shift = CASE WHEN rewards = 0 THEN :c ELSE shift END,"
            " decisions = decisions + :d, rewards = rewards + :n, reward_sum = reward_sum + :s"
            " WHERE experiment_id = :e AND arm_id = :a",
            [
                {
                    "ss": d.reward_sq_sum,
                    "c": d.shift,
                    "cs": d.centred_sum,
                    "s": d.reward_sum,
                    "n": d.rewards,
                    "d": d.decisions,
                    "e": experiment_id,
                    "a": d.arm_id,
                }
                for d in deltas
            ],
        )


class SQLiteStorage:
    """SQLite implementation of :class:`~octobandit.storage.base.Storage`.

    >>> store = SQLiteStorage(":memory:")
    >>> store.create_experiment(ExperimentRecord("demo", "Demo", {"type": "ucb1"}, "binary"))
    >>> [e.id for e in store.list_experiments()]
    ['demo']
    """

    def __init__(
        self,
        path: str = "octobandit.db",
        *,
        synchronous: str = "NORMAL",
        timeout: float = 10.0,
        wal_soft_mb: float = 16.0,
        wal_max_mb: float = 64.0,
    ) -> None:
        if synchronous.upper() not in {"NORMAL", "FULL", "EXTRA"}:
            raise ValueError("synchronous must be NORMAL, FULL or EXTRA")
        if not 0 < wal_soft_mb <= wal_max_mb:
            raise ValueError("need 0 < wal_soft_mb <= wal_max_mb")
        self.path = path
        self.timeout = timeout
        self.synchronous = synchronous.upper()
        #: WAL size (bytes) above which checkpoints truncate it, and at which writers wait
        self.wal_soft = int(wal_soft_mb * (1 << 20))
        self.wal_max = int(wal_max_mb * (1 << 20))
        self._lock = threading.RLock()
        self._lost = False
        self._readonly = False  # opened read-only because the disk was full
        self._wal = False
        self._ident: tuple[int, int] | None = None
        self._monitor: _Monitor | None = None
        #: ``(code, message)`` while the disk is full, else None
        self.problem: tuple[str, str] | None = None
        memory = path in ("", ":memory:")
        existed = not memory and os.path.exists(path)
        if existed:
            if os.path.isdir(path):
                raise StorageUnusable(f"{path} is a directory, not a database file")
            if _stays_empty(path):
                raise StorageUnusable(
                    f"{path} is empty (0 bytes): a truncated database? move it away to start afresh"
                )
        try:
            self._db = self._connect()
        except sqlite3.Error as exc:
            if not (existed and isinstance(storage_error(exc), StorageFull)):
                raise StorageUnusable(_open_failure(path, exc)) from exc
            # a full disk cannot even hold the shared-memory file: serve reads from the
            # (checkpointed) database file until space returns
            self._db = self._connect_readonly()
            self._readonly = True
            self.problem = ("storage_full", FULL_MESSAGE)
            log.warning(
                "disk full: %s opened read-only; writes answer 503 until space returns", path
            )
        try:
            self._quick_check()
            if not self._readonly:
                try:
                    with self._write():  # one process at a time: the write lock is held
                        migrate(self._db, path)
                except StorageFull:
                    if not existed:
                        raise
            self._data_version: int | None = self._db.execute("PRAGMA data_version").fetchone()[0]
        except sqlite3.Error as exc:
            self._db.close()
            raise StorageUnusable(_open_failure(path, exc)) from exc
        except StorageUnavailable as exc:  # e.g. a new database on a full disk
            self._db.close()
            raise StorageUnusable(f"cannot use {path}: {exc.message}") from exc
        except BaseException:
            self._db.close()
            raise
        if not memory:
            st = os.stat(path)
            self._ident = (st.st_dev, st.st_ino)
            if self._free_bytes() < RESERVE_BYTES:
                self.problem = ("storage_full", FULL_MESSAGE)
            if self._wal or self._readonly:
                # checkpoints copy the log into the database and fsync: keep them off
                # the request path, in a thread with its own connection
                self._monitor = _Monitor(self)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(
            self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False
        )
        try:
            self._wal = db.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
            db.execute(f"PRAGMA synchronous={self.synchronous}")
            db.execute("PRAGMA foreign_keys=OFF")
            if self._wal:
                db.execute("PRAGMA wal_autocheckpoint=0")  # the monitor checkpoints
                db.execute(f"PRAGMA journal_size_limit={self.wal_soft}")
        except BaseException:
            db.close()
            raise
        return db

    def _connect_readonly(self) -> sqlite3.Connection:
        uri = "file:" + urllib.parse.quote(os.path.abspath(self.path)) + "?immutable=1"
        try:
            db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.Error as exc:
            raise StorageUnusable(_open_failure(self.path, exc)) from exc
        return db

    def _quick_check(self) -> None:
        """Refuse a damaged database (``PRAGMA quick_check``: every page, no index cross-check)."""
        rows = self._db.execute("PRAGMA quick_check(1)").fetchall()
        if rows != [("ok",)]:
            problem = " ".join(str(rows[0][0] if rows else "?").split())  # on one line
            raise StorageUnusable(
                f"{self.path} failed its integrity check ({problem}):"
                " restore a backup or move it away"
            )

    # -- health -------------------------------------------------------------
    def health(self) -> dict[str, str] | None:
        """``None`` when writes work, else ``{"reason", "message"}`` (read without locks)."""
        if self._lost:
            return {"reason": "storage_lost", "message": LOST_MESSAGE}
        problem = self.problem
        if problem is not None:
            return {"reason": problem[0], "message": problem[1]}
        return None

    def wal_size(self) -> int:
        try:
            return os.stat(self.path + "-wal").st_size
        except OSError:
            return 0

    def _free_bytes(self) -> int:
        try:
            st = os.statvfs(os.path.dirname(os.path.abspath(self.path)))
        except OSError:
            return RESERVE_BYTES
        return st.f_bavail * st.f_frsize

    def check_identity(self) -> bool:
        """Whether the path still names the opened file (a removed or replaced one is lost)."""
        if self._ident is None or self._lost:
            return not self._lost
        try:
            st = os.stat(self.path)
            same = (st.st_dev, st.st_ino) == self._ident
        except FileNotFoundError:
            same = False
        except OSError:  # cannot tell (e.g. an I/O error): keep serving, look again later
            same = True
        if not same:
            self._lost = True
            log.error(
                "database file %s was removed or replaced while serving:"
                " writes are refused until a restart",
                self.path,
            )
        return same

    def try_recover(self) -> bool:
        """After a full disk: once space is free, reopen if needed and truncate the WAL."""
        if self._free_bytes() < RESERVE_BYTES:
            return False
        with self._lock:
            if self._readonly:
                try:
                    self._reopen()
                except (sqlite3.Error, StorageUnusable):
                    return False
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if self.problem is not None:
                log.warning("disk space is available again: %s takes writes", self.path)
            self.problem = None
        return True

    def _reopen(self) -> None:
        db = self._connect()
        self._db.close()
        self._db = db
        self._readonly = False
        self._data_version = None  # the engine re-reads what it cached

    # -- transactions -------------------------------------------------------
    def _before_write(self) -> None:
        if self._lost:
            raise StorageLost(LOST_MESSAGE)
        if self._readonly:
            try:
                self._reopen()
            except (sqlite3.Error, StorageUnusable):
                raise StorageFull(FULL_MESSAGE) from None
        if self._wal and self.wal_size() > self.wal_soft:
            self._catch_up()

    def _catch_up(self) -> None:
        """Checkpoint the whole WAL and truncate it, before this writer's next transaction.

        The monitor's passive checkpoints have copied most of the log already, so
        this is short. Above the soft limit one attempt is made (waiting at most
        50 ms for another process's writer); above ``wal_max`` the writer retries
        (not writing, so other processes' checkpoints get the lock too) until the
        WAL is back under the limit, or ``timeout`` has passed.
        """
        deadline = time.monotonic() + self.timeout
        self._db.execute("PRAGMA busy_timeout=50")
        try:
            while True:
                try:
                    busy = self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
                except sqlite3.Error:  # e.g. no room to grow the database file
                    if self.wal_size() > self.wal_max:
                        raise
                    return  # under the bound: the transaction may still fit in the WAL
                if not busy or self.wal_size() <= self.wal_max:
                    return
                if time.monotonic() > deadline:
                    log.warning("WAL above %d bytes and the checkpoint is blocked", self.wal_max)
                    return
                time.sleep(0.005)
        finally:
            self._db.execute(f"PRAGMA busy_timeout={int(self.timeout * 1000)}")

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; storage-wide SQLite failures become 503 errors."""
        with self._lock:
            try:
                self._before_write()
                changes = self._db.total_changes
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                    self._db.execute("COMMIT")
                except BaseException:
                    if self._db.in_transaction:
                        with contextlib.suppress(sqlite3.Error):
                            self._db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                error = storage_error(exc)
                if error is None:
                    raise
                if isinstance(error, StorageFull):
                    self.problem = (error.code, error.message)
                raise error from exc
            except StorageFull as exc:  # from a savepoint inside the transaction
                self.problem = (exc.code, exc.message)
                raise
            if not self.check_identity():
                raise StorageLost(LOST_MESSAGE)
            if self.problem is not None and self._db.total_changes != changes:
                self.problem = None  # a write went through: the disk has room again

    @contextmanager
    def batch(self) -> Iterator[SQLiteBatch]:
        with self._write():
            yield SQLiteBatch(self)

    # -- reads --------------------------------------------------------------
    def _load(self, experiment_id: str) -> ExperimentRecord | None:
        row = self._db.execute(
            "SELECT id, name, policy, reward_type, status, version, created_at, updated_at,"
            " options, conclusion, last_snapshot, policy_state FROM experiments WHERE id=?",
            (experiment_id,),
        ).fetchone()
        if row is None:
            return None
        arms = [
            _arm(r)
            for r in self._db.execute(
                f"SELECT {_ARM_COLUMNS} FROM arms WHERE experiment_id=? ORDER BY position",
                (experiment_id,),
            )
        ]
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
            conclusion=_loads(row[9]),
            last_snapshot=row[10],
            policy_state=row[11],
        )

    def get_experiment(self, experiment_id: str) -> ExperimentRecord | None:
        with self._lock:
            return self._load(experiment_id)

    def list_experiments(self) -> list[ExperimentRecord]:
        with self._lock:
            ids = [
                r[0] for r in self._db.execute("SELECT id FROM experiments ORDER BY created_at, id")
            ]
            return [rec for rec in map(self._load, ids) if rec is not None]

    def pending_rewards(self, experiment_id: str) -> dict[str, float]:
        with self._lock:
            return {
                arm: float(total)
                for arm, total in self._db.execute(
                    "WITH w AS (SELECT settled_seq AS s FROM experiments WHERE id = ?)"
                    " SELECT p.arm_id, total(p.reward) FROM events p, w"
                    " WHERE p.experiment_id = ? AND p.seq > w.s AND p.kind = 'part'"
                    " AND (SELECT d.seq FROM events d WHERE d.decision_id = p.decision_id"
                    f"   AND d.{_ONCE} AND d.kind = 'decision') > w.s"
                    " GROUP BY p.arm_id",
                    (experiment_id, experiment_id),
                )
            }

    def due_for_settlement(self, now: float) -> list[str]:
        with self._lock:
            return [
                r[0]
                for r in self._db.execute(
                    "SELECT id FROM experiments e"
                    " WHERE options LIKE '%\"attribution_window\"%'"
                    " AND (SELECT d.ts FROM events d WHERE d.experiment_id = e.id"
                    "   AND d.seq > e.settled_seq AND d.kind = 'decision' ORDER BY d.seq LIMIT 1)"
                    " + json_extract(e.options, '$.reward.attribution_window') < ?"
                    " ORDER BY id",
                    (now,),
                )
            ]

    def events(self, experiment_id: str | None = None) -> Iterator[Event]:
        with self._lock:
            if experiment_id is None:
                rows = self._db.execute("SELECT * FROM events ORDER BY seq").fetchall()
            else:
                rows = self._db.execute(
                    "SELECT * FROM events WHERE experiment_id=? ORDER BY seq", (experiment_id,)
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
        sql = "SELECT * FROM events WHERE experiment_id = ? AND seq > ?"
        params: list[Any] = [experiment_id, after]
        if kinds is not None:
            sql += f" AND kind IN ({', '.join('?' * len(kinds))})"
            params.extend(kinds)
        if since is not None:
            sql += " AND ts >= ?"
            params.append(since)
        if until is not None:
            sql += " AND ts < ?"
            params.append(until)
        params.append(limit)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY seq LIMIT ?", params).fetchall()
        return [_event(r) for r in rows]

    # -- control plane ------------------------------------------------------
    def create_experiment(self, record: ExperimentRecord) -> None:
        with self._write() as db:
            if db.execute("SELECT 1 FROM experiments WHERE id=?", (record.id,)).fetchone():
                raise Conflict(f"experiment {record.id!r} already exists", code="already_exists")
            db.execute(
                "INSERT INTO experiments (id, name, policy, reward_type, status, version,"
                " created_at, updated_at, options, conclusion, last_snapshot, policy_state)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, NULL)",
                (
                    record.id,
                    record.name,
                    json.dumps(record.policy),
                    record.reward_type,
                    record.status,
                    record.version,
                    record.created_at,
                    record.updated_at,
                    json.dumps(record.options),
                    record.created_at,
                ),
            )
            for arm in record.arms:
                self._insert_arm(db, record.id, arm)

    # -- API keys -------------------------------------------------------------
    def add_api_key(self, key: ApiKeyRecord) -> None:
        with self._write() as db:
            if db.execute(
                "SELECT 1 FROM api_keys WHERE id = ? OR hash = ?", (key.id, key.hash)
            ).fetchone():
                raise Conflict(f"API key {key.id!r} already exists", code="already_exists")
            db.execute(
                f"INSERT INTO api_keys ({API_KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                api_key_row(key),
            )

    def api_keys(self) -> list[ApiKeyRecord]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {API_KEY_COLUMNS} FROM api_keys ORDER BY created_at, id"
            ).fetchall()
        return [api_key_record(r) for r in rows]

    def revoke_api_key(self, key_id: str, ts: float) -> bool:
        with self._write() as db:
            found = db.execute("SELECT 1 FROM api_keys WHERE id = ?", (key_id,)).fetchone()
            db.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (ts, key_id),
            )
        return found is not None

    def _insert_arm(self, db: sqlite3.Connection, experiment_id: str, arm: ArmRecord) -> None:
        db.execute(
            f"INSERT INTO arms (experiment_id, {_ARM_COLUMNS})"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                experiment_id,
                arm.arm_id,
                _dumps(arm.payload),
                int(arm.enabled),
                int(arm.deleted),
                arm.position,
                arm.created_at,
                arm.decisions,
                arm.rewards,
                arm.reward_sum,
                arm.reward_sq_sum,
                _dumps(arm.prior),
                _dumps(arm.ips),
                arm.shift,
            ),
        )

    def _bump(self, db: sqlite3.Connection, experiment_id: str, ts: float) -> None:
        cur = db.execute(
            "UPDATE experiments SET version = version + 1, updated_at=? WHERE id=?",
            (ts, experiment_id),
        )
        if cur.rowcount == 0:
            raise NotFound(f"experiment {experiment_id!r} not found", code="experiment_not_found")

    def update_experiment(self, experiment_id: str, changes: Mapping[str, Any], ts: float) -> None:
        allowed = {"name", "status", "policy", "options", "conclusion", "policy_state"}
        unknown = set(changes) - allowed
        if unknown:
            raise ValueError(f"cannot change {sorted(unknown)}")
        with self._write() as db:
            self._bump(db, experiment_id, ts)
            for key, value in changes.items():
                db.execute(
                    f"UPDATE experiments SET {key}=? WHERE id=?",
                    (
                        json.dumps(value) if key in ("policy", "options", "conclusion") else value,
                        experiment_id,
                    ),
                )

    def delete_experiment(self, experiment_id: str) -> bool:
        with self._write() as db:
            cur = db.execute("DELETE FROM experiments WHERE id=?", (experiment_id,))
            for table in ("arms", "events", "assignments", "snapshots"):
                db.execute(f"DELETE FROM {table} WHERE experiment_id=?", (experiment_id,))
            return cur.rowcount > 0

    def delete_all(self) -> int:
        with self._write() as db:
            n: int = db.execute("SELECT count(*) FROM experiments").fetchone()[0]
            for table in ("experiments", "arms", "events", "assignments", "snapshots"):
                db.execute(f"DELETE FROM {table}")
            return n

    def reset_experiment(self, experiment_id: str, ts: float) -> None:
        with self._write() as db:
            self._bump(db, experiment_id, ts)
            db.execute(
                "UPDATE arms SET decisions=0, rewards=0, reward_sum=0, reward_sq_sum=0, ips=NULL,"
                " shift=0 WHERE experiment_id=?",
                (experiment_id,),
            )
            db.execute("UPDATE experiments SET policy_state=NULL WHERE id=?", (experiment_id,))
            db.execute("DELETE FROM assignments WHERE experiment_id=?", (experiment_id,))
            db.execute(
                "INSERT INTO events (ts, experiment_id, kind) VALUES (?, ?, 'reset')",
                (ts, experiment_id),
            )
            # decisions before the reset are not settled into the fresh statistics
            db.execute(
                "UPDATE experiments SET settled_seq=last_insert_rowid() WHERE id=?",
                (experiment_id,),
            )

    def add_arm(self, experiment_id: str, arm: ArmRecord, ts: float) -> None:
        with self._write() as db:
            self._bump(db, experiment_id, ts)
            if db.execute(
                "SELECT 1 FROM arms WHERE experiment_id=? AND arm_id=?", (experiment_id, arm.arm_id)
            ).fetchone():
                raise Conflict(f"arm {arm.arm_id!r} already exists", code="already_exists")
            arm.position = db.execute(
                "SELECT coalesce(max(position) + 1, 0) FROM arms WHERE experiment_id=?",
                (experiment_id,),
            ).fetchone()[0]
            self._insert_arm(db, experiment_id, arm)

    def update_arm(
        self, experiment_id: str, arm_id: str, changes: Mapping[str, Any], ts: float
    ) -> None:
        allowed = {"enabled", "deleted", "payload"}
        unknown = set(changes) - allowed
        if unknown:
            raise ValueError(f"cannot change {sorted(unknown)}")
        with self._write() as db:
            self._bump(db, experiment_id, ts)
            if not db.execute(
                "SELECT 1 FROM arms WHERE experiment_id=? AND arm_id=?", (experiment_id, arm_id)
            ).fetchone():
                raise NotFound(
                    f"arm {arm_id!r} not found in experiment {experiment_id!r}",
                    code="arm_not_found",
                )
            for key, value in changes.items():
                db.execute(
                    f"UPDATE arms SET {key}=? WHERE experiment_id=? AND arm_id=?",
                    (
                        _dumps(value) if key == "payload" else int(value),
                        experiment_id,
                        arm_id,
                    ),
                )

    def set_arm_stats(self, experiment_id: str, row: ArmStatsRow, ts: float) -> None:
        with self._write() as db:
            self._bump(db, experiment_id, ts)
            cur = db.execute(
                "UPDATE arms SET decisions=?, rewards=?, reward_sum=?, reward_sq_sum=?, ips=NULL,"
                " shift=? WHERE experiment_id=? AND arm_id=?",
                (
                    row.decisions,
                    row.rewards,
                    row.reward_sum,
                    row.reward_sq_sum,
                    row.shift,
                    experiment_id,
                    row.arm_id,
                ),
            )
            if cur.rowcount == 0:
                raise NotFound(
                    f"arm {row.arm_id!r} not found in experiment {experiment_id!r}",
                    code="arm_not_found",
                )
            db.execute(
                "INSERT INTO events (ts, experiment_id, kind, arm_id, data)"
                " VALUES (?, ?, 'set_stats', ?, ?)",
                (
                    ts,
                    experiment_id,
                    row.arm_id,
                    json.dumps(
                        {
                            "decisions": row.decisions,
                            "rewards": row.rewards,
                            "reward_sum": row.reward_sum,
                            "reward_sq_sum": row.reward_sq_sum,
                            "shift": row.shift,
                        }
                    ),
                ),
            )

    def conclude(self, experiment_id: str, conclusion: Mapping[str, Any], ts: float) -> None:
        with self._write() as db:
            self._bump(db, experiment_id, ts)
            db.execute(
                "UPDATE experiments SET status='concluded', conclusion=? WHERE id=?",
                (json.dumps(conclusion), experiment_id),
            )

    def due_for_snapshot(self, now: float) -> list[ExperimentRecord]:
        with self._lock:
            ids = [
                r[0]
                for r in self._db.execute(
                    "SELECT id FROM experiments WHERE last_snapshot +"
                    " coalesce(json_extract(options, '$.snapshot_interval'), 300) <= ?",
                    (now,),
                )
            ]
            return [rec for rec in map(self._load, ids) if rec is not None]

    def add_snapshot(self, snapshot: Snapshot) -> bool:
        with self._write() as db:
            if snapshot.reason == "interval":  # another worker may have taken it meanwhile
                due = db.execute(
                    "SELECT last_snapshot + coalesce(json_extract(options, '$.snapshot_interval'),"
                    " 300) <= ? FROM experiments WHERE id=?",
                    (snapshot.ts, snapshot.experiment_id),
                ).fetchone()
                if not due or not due[0]:
                    return False
            db.execute(
                "INSERT INTO snapshots (experiment_id, ts, reason, data) VALUES (?, ?, ?, ?)",
                (snapshot.experiment_id, snapshot.ts, snapshot.reason, json.dumps(snapshot.data)),
            )
            db.execute(
                "UPDATE experiments SET last_snapshot=max(last_snapshot, ?) WHERE id=?",
                (snapshot.ts, snapshot.experiment_id),
            )
            return True

    def snapshots(self, experiment_id: str, limit: int | None = None) -> list[Snapshot]:
        with self._lock:
            rows = self._db.execute(
                "SELECT experiment_id, ts, reason, data FROM snapshots WHERE experiment_id=?"
                " ORDER BY seq DESC LIMIT ?",
                (experiment_id, -1 if limit is None else limit),
            ).fetchall()
        return [Snapshot(r[0], r[1], r[2], json.loads(r[3])) for r in reversed(rows)]

    def close(self) -> None:
        if self._monitor is not None:
            self._monitor.stop()
        with self._lock:
            self._db.close()
