"""``octobandit import``: logged bandit feedback in, streamed in batches through the engine.

Readers turn a file into rows, one line at a time (bounded memory whatever its size):

* ``jsonl`` and ``csv``: our own export (``octobandit export``), decisions and their
  outcomes (``reward``, ``default``) as separate events;
* ``obd``: the Open Bandit Dataset's CSV layout (``timestamp, item_id, position, click,
  propensity_score, user_feature_*, user-item_affinity_*``): one decision per row, the
  item is the arm, ``click`` its outcome, ``position`` part of the context;
* ``dsjson``: Vowpal Wabbit's decision-service JSON, one decision a line with its
  label (``_label_Action``, ``_label_probability``, ``_label_cost``).

:func:`run_import` gathers rows into batches and records each with
:meth:`octobandit.engine.Engine.import_logged` (one transaction a batch; idempotent by
decision id). See docs/import.md.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec

from octobandit.engine.imports import ImportedDecision, ImportedOutcome, ImportResult
from octobandit.errors import InvalidInput
from octobandit.model import OUTCOME_KINDS

FORMATS = ("jsonl", "csv", "obd", "dsjson")
DEFAULT_BATCH = 5000
_HEX32 = re.compile(r"[0-9a-f]{32}")
_INDEX = re.compile(r"(decisions|outcomes)\[(\d+)\]\.?(.*)")


class BadRow(Exception):
    """A row that cannot be read (``line``: its 1-based line number in the file)."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.message = message


@dataclass(slots=True)
class Row:
    """One thing a reader found on line ``line``: a decision, an outcome, the arms the
    data declares (``arms``, in order), an event the import leaves out (``skip``: why),
    or a row it cannot read (``bad``: why)."""

    line: int
    decision: ImportedDecision | None = None
    outcome: ImportedOutcome | None = None
    arms: list[str] | None = None
    skip: str | None = None
    #: the row cannot be read: why
    bad: str | None = None


def rekeyed(experiment_id: str, decision_id: str) -> str:
    """``--rekey``: the id's 12 time digits kept, the rest a hash of the experiment's id
    and the original id (deterministic, so a re-run still finds what it imported)."""
    digest = hashlib.sha256(f"{experiment_id}:{decision_id}".encode()).hexdigest()
    return decision_id[:12] + digest[:20] if _HEX32.fullmatch(decision_id) else decision_id


def derived_id(ts: float, key: str) -> str:
    """A deterministic decision id: 12 hex digits of milliseconds (time-ordered, as the
    service's ids) and 20 of a hash of ``key``."""
    ms = min(max(int(ts * 1000), 0), (1 << 48) - 1)
    return f"{ms:012x}{hashlib.sha256(key.encode()).hexdigest()[:20]}"


def parse_time(value: Any, line: int, name: str) -> float:
    """Epoch seconds from a number or an ISO 8601 text (UTC when no offset is given)."""
    if type(value) is float and 0 <= value < 1e11:
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        ts = float(value)
    elif isinstance(value, str) and value:
        try:
            ts = float(value)
        except ValueError:
            try:
                moment = datetime.fromisoformat(value.strip())
            except ValueError:
                raise BadRow(line, f"{name}: not a time: {value[:40]!r}") from None
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            ts = moment.timestamp()
    else:
        raise BadRow(line, f"{name}: missing time")
    if not math.isfinite(ts) or not 0 <= ts < 1e11:
        raise BadRow(line, f"{name}: not a time since 1970: {value!r}")
    return ts


def _number(value: Any, line: int, name: str) -> float:
    if type(value) is float and math.isfinite(value):
        return value
    try:
        if isinstance(value, bool):
            raise ValueError
        x = float(value)
    except (TypeError, ValueError):
        raise BadRow(line, f"{name}: not a number: {str(value)[:40]!r}") from None
    if not math.isfinite(x):
        raise BadRow(line, f"{name}: not a finite number")
    return x


# -- readers --------------------------------------------------------------------------
def _own_event(e: Any, line: int) -> Row:
    """A row of our export (the event's JSON object)."""
    if not isinstance(e, dict):
        raise BadRow(line, "not a JSON object")
    kind = e.get("kind")
    decision_id = e.get("decision_id")
    if kind == "decision":
        if not isinstance(decision_id, str) or not isinstance(e.get("arm_id"), str):
            raise BadRow(line, "a decision needs decision_id and arm_id")
        data = e.get("data")
        eligible = policy = None
        if isinstance(data, dict):
            k = data.get("k")
            eligible = k if type(k) is int else None
            policy = data.get("policy", True) is not False
        unit = e.get("unit_id")
        return Row(
            line,
            decision=ImportedDecision(
                decision_id,
                e["arm_id"],
                _number(e.get("propensity"), line, "propensity"),
                parse_time(e.get("ts"), line, "ts"),
                e.get("context"),
                unit if isinstance(unit, str) else None,
                eligible,
                policy,
            ),
        )
    if kind in OUTCOME_KINDS:
        if decision_id is None:
            return Row(line, skip="arm-level reward (no decision id)")
        if not isinstance(decision_id, str):
            raise BadRow(line, "decision_id: not a string")
        count = e.get("count")
        if count not in (None, 1, 1.0):
            raise BadRow(line, "a decision's outcome has count 1")
        return Row(
            line,
            outcome=ImportedOutcome(
                decision_id,
                _number(e.get("reward"), line, "reward"),
                parse_time(e.get("ts"), line, "ts"),
                kind,
            ),
        )
    if isinstance(kind, str):
        return Row(line, skip=f"{kind} event")
    raise BadRow(line, "kind: missing")


def read_jsonl(lines: Iterable[str]) -> Iterator[Row]:
    """Our export's JSON Lines (blank lines are skipped)."""
    for n, text in enumerate(lines, 1):
        if not text.strip():
            continue
        try:
            e = _decode(text)
        except msgspec.DecodeError as exc:
            yield Row(n, bad=f"not JSON ({str(exc)[:60]})")
            continue
        try:
            yield _own_event(e, n)
        except BadRow as exc:
            yield Row(n, bad=exc.message)


_decode = msgspec.json.decode

_CSV_NUMBERS = ("ts", "propensity", "reward", "count")


def read_csv(lines: Iterable[str]) -> Iterator[Row]:
    """Our export's CSV: the 13 columns of the route; ``context`` and ``data`` JSON text."""
    reader = csv.reader(lines)
    header = next(reader, None)
    if header is None:
        return
    need = {"kind", "decision_id", "arm_id", "propensity", "ts", "reward"}
    if not need <= set(header):
        raise BadRow(
            1, f"not octobandit's CSV export: columns {sorted(need - set(header))} missing"
        )
    for cells in reader:
        n = reader.line_num
        if not cells:
            continue
        try:
            yield _own_event(_csv_event(header, cells, n), n)
        except BadRow as exc:
            yield Row(n, bad=exc.message)


def _csv_event(header: list[str], cells: list[str], n: int) -> dict[str, Any]:
    if len(cells) != len(header):
        raise BadRow(n, f"{len(cells)} cells, the header has {len(header)}")
    e: dict[str, Any] = {}
    for name, cell in zip(header, cells, strict=True):
        if cell == "":
            e[name] = None
        elif name in ("context", "data"):
            try:
                e[name] = json.loads(cell)
            except ValueError:
                raise BadRow(n, f"{name}: not JSON") from None
        else:
            e[name] = cell
    for name in _CSV_NUMBERS:
        if e.get(name) is not None:
            e[name] = _number(e[name], n, name)
    return e


def read_obd(
    lines: Iterable[str], *, position: int | None = None, source: str = "obd"
) -> Iterator[Row]:
    """The Open Bandit Dataset's CSV: one decision a row (the arm: ``item_id``; the
    outcome: ``click``; the context: ``position``, the ``user_feature_*`` and the
    ``user-item_affinity_*`` columns). With ``position``, only that position's rows.

    Decision ids are derived from the row's index (the unnamed first column, or its line
    number), timestamp, item and position, so the same file always gives the same ids."""
    reader = csv.reader(lines)
    header = next(reader, None)
    if header is None:
        return
    need = ("timestamp", "item_id", "position", "click", "propensity_score")
    missing = [c for c in need if c not in header]
    if missing:
        raise BadRow(1, f"not the Open Bandit Dataset's layout: columns {missing} missing")
    features = [
        (i, name)
        for i, name in enumerate(header)
        if name.startswith("user_feature_") or name.startswith("user-item_affinity_")
    ]
    numeric = {name for _, name in features if name.startswith("user-item_affinity_")}
    index = 0 if header[0] in ("", "index", "Unnamed: 0") else None
    for cells in reader:
        n = reader.line_num
        if not cells:
            continue
        try:
            yield from _obd_rows(cells, n, header, features, numeric, index, position, source)
        except BadRow as exc:
            yield Row(n, bad=exc.message)


def _obd_rows(
    cells: list[str],
    n: int,
    header: list[str],
    features: list[tuple[int, str]],
    numeric: set[str],
    index: int | None,
    position: int | None,
    source: str,
) -> Iterator[Row]:
    if len(cells) != len(header):
        raise BadRow(n, f"{len(cells)} cells, the header has {len(header)}")
    col = {name: i for i, name in enumerate(header)}
    it, ip, ic, ipr, its = (
        col[c] for c in ("item_id", "position", "click", "propensity_score", "timestamp")
    )
    pos = _number(cells[ip], n, "position")
    if pos != int(pos):
        raise BadRow(n, "position: not a whole number")
    if position is not None and int(pos) != position:
        yield Row(n, skip=f"position {int(pos)}")
        return
    ts = parse_time(cells[its], n, "timestamp")
    item = cells[it].strip()
    if not item:
        raise BadRow(n, "item_id: missing")
    row_key = cells[index] if index is not None else str(n)
    decision_id = derived_id(ts, f"{source}:{row_key}:{cells[its]}:{item}:{int(pos)}")
    context: dict[str, Any] = {"position": int(pos)}
    for i, name in features:
        context[name] = _number(cells[i], n, name) if name in numeric else cells[i]
    propensity = _number(cells[ipr], n, "propensity_score")
    click = _number(cells[ic], n, "click")
    yield Row(n, decision=ImportedDecision(decision_id, item, propensity, ts, context))
    yield Row(n, outcome=ImportedOutcome(decision_id, click, ts))


def read_dsjson(lines: Iterable[str]) -> Iterator[Row]:
    """Vowpal Wabbit's DSJSON: the actions are ``c._multi`` (an ``arm`` or ``id`` field
    names each, else its 1-based number), the chosen one ``_label_Action`` (or ``a[0]``),
    its probability ``_label_probability`` (or ``p[0]``), the outcome ``-_label_cost``;
    the shared features of ``c`` are the context. ``EventId`` is the decision id when it
    is 32 hex digits, else hashed into one."""
    declared: list[str] = []
    for n, text in enumerate(lines, 1):
        if not text.strip():
            continue
        try:
            yield from _dsjson_rows(text, n, declared)
        except BadRow as exc:
            yield Row(n, bad=exc.message)


def _dsjson_rows(text: str, n: int, declared: list[str]) -> Iterator[Row]:
    try:
        e = _decode(text)
    except msgspec.DecodeError as exc:
        raise BadRow(n, f"not JSON ({str(exc)[:60]})") from None
    if not isinstance(e, dict):
        raise BadRow(n, "not a JSON object")
    shared = e.get("c")
    c: dict[str, Any] = shared if isinstance(shared, dict) else {}
    multi = c.get("_multi")
    names: list[str] = []
    if isinstance(multi, list):
        for i, m in enumerate(multi):
            name = m.get("arm", m.get("id")) if isinstance(m, dict) else None
            names.append(str(name) if isinstance(name, str | int) else str(i + 1))
        new = [a for a in names if a not in declared]
        if new:
            declared.extend(new)
            yield Row(n, arms=names)
    action = e.get("_label_Action")
    if action is None:
        a = e.get("a")
        action = a[0] if isinstance(a, list) and a else None
    if type(action) is not int or action < 1:
        raise BadRow(n, "_label_Action (or a[0]): not a 1-based action number")
    if names and action > len(names):
        raise BadRow(n, f"_label_Action {action}: only {len(names)} actions in c._multi")
    arm = names[action - 1] if names else str(action)
    prob = e.get("_label_probability")
    if prob is None:
        p = e.get("p")
        prob = p[0] if isinstance(p, list) and p else None
    propensity = _number(prob, n, "_label_probability")
    stamp = e.get("Timestamp")
    ts = parse_time(stamp, n, "Timestamp")
    event_id = e.get("EventId")
    if isinstance(event_id, str) and _HEX32.fullmatch(event_id):
        decision_id = event_id
    else:
        key = f"dsjson:{event_id}" if event_id is not None else f"dsjson-line:{text.strip()}"
        decision_id = derived_id(ts, key)
    context = {k: v for k, v in c.items() if k != "_multi"} or None
    labelled = "_label_cost" in e
    cost = _number(e["_label_cost"], n, "_label_cost") if labelled else 0.0
    yield Row(n, decision=ImportedDecision(decision_id, arm, propensity, ts, context))
    if labelled:
        yield Row(n, outcome=ImportedOutcome(decision_id, 0.0 - cost, ts))


def reader(fmt: str, lines: Iterable[str], *, position: int | None = None) -> Iterator[Row]:
    """The rows of ``lines`` in format ``fmt`` (one of :data:`FORMATS`)."""
    if fmt == "jsonl":
        return read_jsonl(lines)
    if fmt == "csv":
        return read_csv(lines)
    if fmt == "obd":
        return read_obd(lines, position=position)
    if fmt == "dsjson":
        return read_dsjson(lines)
    raise ValueError(f"unknown format {fmt!r}")


def guess_format(path: str, first_line: str) -> str:
    """The format of a file from its first line (and name)."""
    head = first_line.strip()
    if head.startswith("{"):
        try:
            e = json.loads(head)
        except ValueError:
            e = {}
        if isinstance(e, dict) and ("_label_cost" in e or "_multi" in (e.get("c") or {})):
            return "dsjson"
        return "dsjson" if path.endswith((".dsjson", ".json")) and "kind" not in e else "jsonl"
    cells = next(csv.reader(io.StringIO(head)), [])
    if "propensity_score" in cells and "item_id" in cells:
        return "obd"
    return "csv"


# -- the driver ----------------------------------------------------------------------
@dataclass(slots=True)
class Summary:
    """What an import did."""

    experiment_id: str = ""
    created: bool = False
    lines: int = 0
    batches: int = 0
    decisions: int = 0
    duplicate_decisions: int = 0
    outcomes: int = 0
    duplicate_outcomes: int = 0
    orphans: int = 0
    arms_added: list[str] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    bad_rows: list[str] = field(default_factory=list)
    bad_count: int = 0
    seconds: float = 0.0

    def add(self, r: ImportResult) -> None:
        self.batches += 1
        self.decisions += r.decisions
        self.duplicate_decisions += r.duplicate_decisions
        self.outcomes += r.outcomes
        self.duplicate_outcomes += r.duplicate_outcomes
        self.orphans += r.orphans

    def as_dict(self) -> dict[str, Any]:
        return {
            "experiment_id": self.experiment_id,
            "created": self.created,
            "lines": self.lines,
            "batches": self.batches,
            "decisions": self.decisions,
            "duplicate_decisions": self.duplicate_decisions,
            "outcomes": self.outcomes,
            "duplicate_outcomes": self.duplicate_outcomes,
            "orphan_outcomes": self.orphans,
            "arms_added": self.arms_added,
            "skipped": self.skipped,
            "bad_rows": self.bad_count,
            "bad_row_messages": self.bad_rows,
            "seconds": round(self.seconds, 3),
        }


def _arm_key(arm: str) -> tuple[int, int, str]:
    return (0, int(arm), arm) if arm.isdigit() else (1, 0, arm)


def run_import(
    engine: Any,
    experiment_id: str,
    rows: Iterator[Row],
    *,
    batch_size: int = DEFAULT_BATCH,
    skip_bad: bool = False,
    rekey: bool = False,
    summary: Summary | None = None,
    on_batch: Callable[[Summary], None] | None = None,
) -> Summary:
    """Record ``rows`` into the experiment in batches of about ``batch_size`` rows, each
    one transaction (:meth:`~octobandit.engine.Engine.import_logged`); arms the data
    names that the experiment lacks are added first. A bad row raises :class:`BadRow`
    (the failing batch writes nothing; the batches before it are committed), or with
    ``skip_bad`` is left out and counted."""
    s = summary or Summary(experiment_id)
    known = {a.arm_id for a in engine.get_experiment(experiment_id).arms}
    decisions: list[ImportedDecision] = []
    outcomes: list[ImportedOutcome] = []
    d_lines: list[int] = []
    o_lines: list[int] = []
    order: list[str] = []  # arms declared by the data, in their order

    def bad(line: int, message: str) -> None:
        if not skip_bad:
            raise BadRow(line, message)
        s.bad_count += 1
        if len(s.bad_rows) < 20:
            s.bad_rows.append(f"line {line}: {message}")

    def add_arms() -> None:
        new = [a for a in order if a not in known]  # every arm the data declares, in order
        wanted = {d.arm_id for d in decisions} - known - set(new)
        new += sorted(wanted, key=_arm_key)
        for arm in new:
            try:
                engine.add_arm(experiment_id, {"id": arm})
            except InvalidInput as exc:
                line = next(
                    (d_lines[i] for i, d in enumerate(decisions) if d.arm_id == arm), s.lines
                )
                raise BadRow(line, f"arm {arm!r}: {exc.message}") from None
            known.add(arm)
            s.arms_added.append(arm)

    def flush() -> None:
        if not decisions and not outcomes:
            return
        add_arms()
        while True:
            try:
                result = engine.import_logged(experiment_id, decisions, outcomes)
                break
            except InvalidInput as exc:
                m = _INDEX.fullmatch(exc.field or "")
                if m is None:
                    raise
                i = int(m.group(2))
                if m.group(1) == "decisions":
                    line = d_lines.pop(i)
                    decisions.pop(i)
                else:
                    line = o_lines.pop(i)
                    outcomes.pop(i)
                bad(line, f"{m.group(3) or m.group(1)}: {exc.message}")  # raises without skip_bad
        s.add(result)
        decisions.clear()
        outcomes.clear()
        d_lines.clear()
        o_lines.clear()
        if on_batch is not None:
            on_batch(s)

    for row in rows:
        s.lines = row.line
        if row.bad is not None:
            bad(row.line, row.bad)
        elif row.arms is not None:
            order.extend(a for a in row.arms if a not in order)
        elif row.skip is not None:
            s.skipped[row.skip] = s.skipped.get(row.skip, 0) + 1
        elif row.decision is not None:
            if rekey:
                row.decision.decision_id = rekeyed(experiment_id, row.decision.decision_id)
            decisions.append(row.decision)
            d_lines.append(row.line)
        elif row.outcome is not None:
            if rekey:
                row.outcome.decision_id = rekeyed(experiment_id, row.outcome.decision_id)
            outcomes.append(row.outcome)
            o_lines.append(row.line)
        if len(decisions) + len(outcomes) >= batch_size:
            flush()
    flush()
    return s
