"""Reading the event log through the engine: pages, checks and time bounds."""

from __future__ import annotations

import datetime as dt

import pytest

from octobandit.engine import Engine
from octobandit.engine.eventlog import MAX_PAGE, parse_time
from octobandit.errors import InvalidInput, NotFound
from octobandit.storage import SQLiteStorage


def _utc(*fields: int) -> float:
    return dt.datetime(*fields, tzinfo=dt.UTC).timestamp()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1700000000.25", 1700000000.25),
        ("-5", -5.0),
        ("2026-01-31", _utc(2026, 1, 31)),
        ("2026-01-31T12:30:15Z", _utc(2026, 1, 31, 12, 30, 15)),
        ("2026-01-31t12:30:15.5z", _utc(2026, 1, 31, 12, 30, 15) + 0.5),
        ("2026-01-31T12:30+02:00", _utc(2026, 1, 31, 10, 30)),
        ("1999-12-31T23:59:60Z", _utc(2000, 1, 1)),
        ("1960-06-01T00:00:00-0130", _utc(1960, 6, 1, 1, 30)),
    ],
)  # fmt: skip
def test_parse_time_reads_epochs_and_iso_dates(text: str, expected: float) -> None:
    assert parse_time(text, "since") == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("text", ["", "soon", "nan", "inf", "2026-13-01", "2026-01-01T25:00Z"])
def test_parse_time_refuses_the_rest(text: str) -> None:
    with pytest.raises(InvalidInput, match="until"):
        parse_time(text, "until")


def test_engine_events_checks_its_arguments_and_the_experiment() -> None:
    engine = Engine(SQLiteStorage(":memory:"), seed=1)
    engine.create_experiment({"id": "e", "arms": [{"id": "a"}, {"id": "b"}]})
    for _ in range(5):
        engine.decide("e")
    page = engine.events("e", 0, 2)
    assert len(page["events"]) == 2 and page["next"] == page["events"][-1]["seq"]
    rest = engine.events("e", page["next"], 10, ["decision"])
    assert len(rest["events"]) == 3 and rest["next"] is None
    with pytest.raises(NotFound):
        engine.events("missing")
    for args in ((-1, 10), (0, 0), (0, MAX_PAGE + 1), (0, 10, ["nope"]), (True, 10)):
        with pytest.raises(InvalidInput):
            engine.events("e", *args)  # type: ignore[arg-type]
