"""``octobandit export``: the event log out, page by page, as JSON Lines, CSV, DSJSON or
Parquet.

Events come from a source that yields pages (lists of the event dicts
:func:`octobandit.engine.eventlog.event_view` makes): :func:`store_pages` reads a store
through the engine, :func:`http_pages` a running service's
``GET /v1/experiments/{id}/events``. A writer takes one page at a time, so memory holds
one page (and, for DSJSON, the bounded window of decisions awaiting their outcome)
whatever the log's size. See docs/export.md.
"""

from __future__ import annotations

import csv
import json
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any

from octobandit.engine.eventlog import DEFAULT_PAGE, EVENT_FIELDS
from octobandit.model import OUTCOME_KINDS

Page = list[dict[str, Any]]

FORMATS = ("jsonl", "csv", "dsjson", "parquet")
#: Parquet rows gathered before a row group is written (bounds memory)
ROW_GROUP = 65_536
#: decisions DSJSON holds while they wait for their outcome (then written without a label)
DEFAULT_WINDOW = 100_000


def store_pages(
    store: str,
    experiment_id: str,
    *,
    page_size: int = DEFAULT_PAGE,
    kinds: Sequence[str] | None = None,
    since: str | None = None,
    until: str | None = None,
) -> tuple[list[str], dict[str, Any] | None, Iterator[Page]]:
    """The experiment's arm ids, declared context features and pages of its log, read
    from the store ``store`` (an SQLite file or a PostgreSQL URL) through the engine."""
    from octobandit.engine import Engine
    from octobandit.storage import open_store

    engine = Engine(open_store(store))
    try:
        record = engine.get_experiment(experiment_id)  # NotFound for an unknown experiment
    except BaseException:
        engine.storage.close()
        raise
    arms = [a.arm_id for a in record.arms]
    features = record.options.get("context_features")

    def pages() -> Iterator[Page]:
        try:
            after = 0
            while True:
                page = engine.events(experiment_id, after, page_size, kinds, since, until)
                yield page["events"]
                if page["next"] is None:
                    return
                after = page["next"]
        finally:
            engine.storage.close()

    return arms, {"features": features} if features else None, pages()


def http_pages(
    url: str,
    experiment_id: str,
    *,
    page_size: int = DEFAULT_PAGE,
    kinds: Sequence[str] | None = None,
    since: str | None = None,
    until: str | None = None,
    timeout: float = 60.0,
) -> tuple[list[str], dict[str, Any] | None, Iterator[Page]]:
    """As :func:`store_pages`, from a running service at ``url`` (one request a page)."""
    import httpx

    client = httpx.Client(base_url=url.rstrip("/"), timeout=timeout)
    path = f"/v1/experiments/{experiment_id}"
    try:
        answer = _ok(client.get(path))
    except BaseException:
        client.close()
        raise
    arms = [a["id"] for a in answer["arms"]]
    features = (answer.get("context") or {}).get("features")
    params: dict[str, Any] = {"limit": page_size}
    if kinds is not None:
        params["kind"] = list(kinds)
    if since is not None:
        params["since"] = since
    if until is not None:
        params["until"] = until

    def pages() -> Iterator[Page]:
        try:
            after = 0
            while True:
                page = _ok(client.get(path + "/events", params={**params, "after": after}))
                yield page["events"]
                if page["next"] is None:
                    return
                after = page["next"]
        finally:
            client.close()

    return arms, {"features": features} if features else None, pages()


class ExportError(Exception):
    """The service refused a request (its error message)."""


def _ok(response: Any) -> Any:
    if response.status_code != 200:
        try:
            message = response.json()["error"]["message"]
        except Exception:
            message = response.text[:200]
        raise ExportError(f"{response.status_code}: {message}")
    return response.json()


# -- writers ----------------------------------------------------------------------------
def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def write_jsonl(pages: Iterable[Page], out: IO[str]) -> int:
    """One event per line, as the route shows it; returns the number of lines."""
    n = 0
    for page in pages:
        out.write("".join(_dumps(e) + "\n" for e in page))
        n += len(page)
    return n


def write_csv(pages: Iterable[Page], out: IO[str]) -> int:
    """A header and one row per event (columns :data:`EVENT_FIELDS`); ``context`` and
    ``data`` as JSON text, missing values empty."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(EVENT_FIELDS)
    n = 0
    for page in pages:
        for e in page:
            writer.writerow([_cell(f, e[f]) for f in EVENT_FIELDS])
        n += len(page)
    return n


def _cell(field: str, value: Any) -> Any:
    if value is None:
        return ""
    return _dumps(value) if field in ("context", "data") else value  # floats: repr, exact


def write_parquet(pages: Iterable[Page], path: str, *, row_group: int = ROW_GROUP) -> int:
    """The :func:`write_csv` columns as a Parquet file (``pyarrow``, the ``parquet``
    extra): integers and floats typed, ``context`` and ``data`` JSON text, missing values
    null; a row group every ``row_group`` rows (memory: one row group)."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise ExportError(
            "--format parquet needs pyarrow: pip install 'octobandit[parquet]'"
        ) from exc
    types = {"seq": pa.int64(), "ts": pa.float64(), "propensity": pa.float64()}
    types.update(reward=pa.float64(), count=pa.float64())
    schema = pa.schema([(f, types.get(f, pa.string())) for f in EVENT_FIELDS])
    n = 0
    rows: list[dict[str, Any]] = []
    with pq.ParquetWriter(path, schema) as writer:

        def flush() -> None:
            if rows:
                writer.write_table(pa.Table.from_pylist(rows, schema=schema))
                rows.clear()

        for page in pages:
            for e in page:
                rows.append(
                    {
                        f: (None if e[f] is None else _dumps(e[f]))
                        if f in ("context", "data")
                        else e[f]
                        for f in EVENT_FIELDS
                    }
                )
            n += len(page)
            if len(rows) >= row_group:
                flush()
        flush()
    return n


@dataclass
class DsjsonCounts:
    """What a DSJSON export wrote: lines with a label, lines without one (no outcome
    seen while the decision was in the window), outcomes whose decision had left the
    window or is not in the export (skipped)."""

    labelled: int = 0
    unlabelled: int = 0
    orphans: int = 0


def write_dsjson(
    pages: Iterable[Page],
    out: IO[str],
    arms: Sequence[str],
    context_spec: dict[str, Any] | None = None,
    *,
    window: int = DEFAULT_WINDOW,
) -> DsjsonCounts:
    """Vowpal Wabbit's decision-service JSON: one line per decision, in log order, joined
    with its outcome (a ``reward`` or ``default`` event with its decision id).

    Outcomes follow their decisions in the log, so decisions wait in a window of at most
    ``window`` (in log order) until their outcome arrives; a decision is written as soon
    as it and every decision before it are labelled, or when the window is full (then the
    oldest goes out without a label). Memory: one page plus ``window`` decisions.
    """
    actions = list(arms)
    index = {a: i for i, a in enumerate(actions)}
    features = (context_spec or {}).get("features")
    pending: OrderedDict[str, list[Any]] = OrderedDict()  # decision id → [event, outcome]
    counts = DsjsonCounts()

    def emit(event: dict[str, Any], outcome: float | None) -> None:
        arm = event["arm_id"]
        if arm not in index:  # an arm unknown to the record: keep its line well-formed
            index[arm] = len(actions)
            actions.append(arm)
        out.write(_dumps(dsjson_line(event, outcome, actions, index, features)) + "\n")
        if outcome is None:
            counts.unlabelled += 1
        else:
            counts.labelled += 1

    def drain(force: bool) -> None:
        while pending:
            decision_id, (event, outcome) = next(iter(pending.items()))
            if outcome is None and not force and len(pending) <= window:
                return
            del pending[decision_id]
            emit(event, outcome)

    for page in pages:
        for e in page:
            if e["kind"] == "decision" and e["decision_id"] is not None:
                pending[e["decision_id"]] = [e, None]
            elif e["kind"] in OUTCOME_KINDS and e["decision_id"] is not None:
                slot = pending.get(e["decision_id"])
                if slot is None or slot[1] is not None:
                    counts.orphans += 1
                else:
                    slot[1] = e["reward"]
            else:
                continue
            drain(force=False)
    drain(force=True)
    return counts


def dsjson_line(
    event: dict[str, Any],
    reward: float | None,
    actions: Sequence[str],
    index: dict[str, int],
    features: Sequence[str] | None = None,
) -> dict[str, Any]:
    """One decision as a DSJSON line (see docs/export.md).

    ``a``: the 1-based action ids, the chosen one first; ``p``: their probabilities, the
    chosen one's logged propensity first, the rest of the mass spread evenly over the
    other actions (the log keeps only the chosen arm's probability; VW learns from
    ``_label_probability``). The label fields are there only with an outcome.
    """
    chosen = index[event["arm_id"]]
    k = len(actions)
    p = float(event["propensity"])
    others = [i for i in range(k) if i != chosen]
    rest = (1.0 - p) / len(others) if others else 0.0
    line: dict[str, Any] = {}
    if reward is not None:
        line.update(
            {
                "_label_cost": 0.0 - reward,  # VW minimises cost (no -0.0)
                "_label_probability": p,
                "_label_Action": chosen + 1,
                "_labelIndex": chosen,
            }
        )
    line.update(
        {
            "Timestamp": event["at"],
            "Version": "1",
            "EventId": event["decision_id"],
            "a": [chosen + 1] + [i + 1 for i in others],
            "c": {**_shared(event["context"], features), "_multi": [{"arm": a} for a in actions]},
            "p": [p] + [rest] * len(others),
        }
    )
    return line


def _shared(context: Any, features: Sequence[str] | None) -> dict[str, Any]:
    """A decision's context as the shared features: an object as it is, a vector named
    by the declared features, anything else under ``context``."""
    if context is None:
        return {}
    if isinstance(context, dict):
        return {k: v for k, v in context.items() if k != "_multi"}
    if isinstance(context, list) and features and len(features) == len(context):
        return dict(zip(features, context, strict=True))
    return {"context": context}
