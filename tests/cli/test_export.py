"""``octobandit export``: every format from an SQLite file and from a running service,
read page by page."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from octobandit.cli import app
from octobandit.engine import Engine, RewardItem
from octobandit.export import write_dsjson
from octobandit.storage import SQLiteStorage

runner = CliRunner()
try:
    import pyarrow  # noqa: F401

    PARQUET = True
except ImportError:  # the 'parquet' extra is not installed: the other formats still run
    PARQUET = False
DECISIONS = 45  # two of three rewarded: 75 events


def _fill(db: Path) -> None:
    """Experiment ``ex``: arms a, b, c; contexts on odd decisions; decisions 0, 3, 6, …
    without an outcome."""
    clock = iter(1_700_000_000 + i / 10 for i in range(10_000))
    engine = Engine(SQLiteStorage(str(db)), seed=3, clock=lambda: next(clock))
    arms = [{"id": "a"}, {"id": "b"}, {"id": "c"}]
    engine.create_experiment({"id": "ex", "policy": {"type": "epsilon_greedy"}, "arms": arms})
    for i in range(DECISIONS):
        d = engine.decide("ex", context={"x": float(i)} if i % 2 else None)
        if i % 3:
            engine.reward("ex", [RewardItem(reward=float(i % 2), decision_id=d["decision_id"])])
    engine.storage.close()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "log.db"
    _fill(path)
    return path


def _export(tmp_path: Path, source: list[str], fmt: str, *extra: str) -> str:
    out = tmp_path / f"out.{fmt}"
    r = runner.invoke(app, ["export", "ex", *source, "--format", fmt, "--out", str(out), *extra])
    assert r.exit_code == 0, r.output
    return "" if fmt == "parquet" else out.read_text()


def _check_formats(tmp_path: Path, source: list[str]) -> None:
    lines = _export(tmp_path, source, "jsonl", "--page-size", "7").splitlines()
    events = [json.loads(line) for line in lines]
    assert len(events) == DECISIONS + 2 * DECISIONS // 3
    assert [e["seq"] for e in events] == sorted({e["seq"] for e in events})

    rows = list(csv.DictReader(io.StringIO(_export(tmp_path, source, "csv"))))
    assert len(rows) == len(events)
    for row, e in zip(rows, events, strict=True):
        assert int(row["seq"]) == e["seq"] and float(row["ts"]) == e["ts"]
        assert row["kind"] == e["kind"] and (row["decision_id"] or None) == e["decision_id"]
        assert (json.loads(row["context"]) if row["context"] else None) == e["context"]
        if e["propensity"] is not None:
            assert float(row["propensity"]) == e["propensity"]  # exact round trip

    if PARQUET:
        _export(tmp_path, source, "parquet")
        import pyarrow.parquet as pq

        table = pq.read_table(tmp_path / "out.parquet").to_pylist()
        for row in table:
            for f in ("context", "data"):
                row[f] = None if row[f] is None else json.loads(row[f])
        assert table == events

    rewards = _export(tmp_path, source, "jsonl", "--kind", "reward").splitlines()
    assert [json.loads(x) for x in rewards] == [e for e in events if e["kind"] == "reward"]

    ds = [json.loads(x) for x in _export(tmp_path, source, "dsjson").splitlines()]
    decisions = [e for e in events if e["kind"] == "decision"]
    outcome = {e["decision_id"]: e["reward"] for e in events if e["kind"] == "reward"}
    assert [x["EventId"] for x in ds] == [d["decision_id"] for d in decisions]
    for line, d in zip(ds, decisions, strict=True):
        chosen = "abc".index(d["arm_id"])
        assert line["Version"] == "1" and line["Timestamp"] == d["at"]
        assert line["a"][0] == chosen + 1 and sorted(line["a"]) == [1, 2, 3]
        assert line["p"][0] == d["propensity"] and sum(line["p"]) == pytest.approx(1)
        assert line["c"]["_multi"] == [{"arm": "a"}, {"arm": "b"}, {"arm": "c"}]
        assert line["c"].get("x") == (d["context"] or {}).get("x")
        if d["decision_id"] in outcome:
            assert line["_label_cost"] == -outcome[d["decision_id"]]
            assert line["_label_probability"] == d["propensity"]
            assert (line["_label_Action"], line["_labelIndex"]) == (chosen + 1, chosen)
        else:
            assert "_label_cost" not in line and "_label_Action" not in line


def test_export_from_an_sqlite_file(tmp_path: Path, db: Path) -> None:
    _check_formats(tmp_path, ["--db", str(db)])


def test_export_from_a_running_service(tmp_path: Path, db: Path, server_factory: Any) -> None:
    server = server_factory(db).start()
    _check_formats(tmp_path, ["--url", server.url])
    r = runner.invoke(app, ["export", "missing", "--url", server.url])
    assert r.exit_code == 1 and "not found" in r.output


def test_export_reads_the_log_page_by_page(
    tmp_path: Path, db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bounded memory by construction: the store is asked for pages of --page-size."""
    asked: list[int] = []
    read = SQLiteStorage.events_page

    def spy(self: SQLiteStorage, experiment_id: str, **kw: Any) -> Any:
        page = read(self, experiment_id, **kw)
        asked.append(len(page))
        assert len(page) <= kw["limit"] == 10
        return page

    monkeypatch.setattr(SQLiteStorage, "events_page", spy)
    for fmt in ("jsonl", "csv", "dsjson", *(["parquet"] if PARQUET else [])):
        asked.clear()
        _export(tmp_path, ["--db", str(db)], fmt, "--page-size", "10")
        assert len(asked) == 75 // 10 + 1 and sum(asked) == 75  # 8 reads, each ≤ 10 events


def test_dsjson_window_is_bounded() -> None:
    """With a window of 2, a decision whose outcome comes 3 decisions later has left it:
    written without a label, its outcome counted as skipped."""

    def ev(seq: int, kind: str, did: str, reward: float | None = None) -> dict[str, Any]:
        return {
            "seq": seq, "ts": float(seq), "at": f"t{seq}", "kind": kind, "decision_id": did,
            "arm_id": "a", "propensity": 0.5, "context": None, "reward": reward,
        }  # fmt: skip

    log = [ev(1, "decision", "d1"), ev(2, "decision", "d2"), ev(3, "reward", "d2", 1.0)]
    log += [ev(4, "decision", "d3"), ev(5, "decision", "d4"), ev(6, "reward", "d1", 1.0)]
    out = io.StringIO()
    counts = write_dsjson([log[:3], log[3:]], out, ["a", "b"], window=2)
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    assert [x["EventId"] for x in lines] == ["d1", "d2", "d3", "d4"]
    assert ["_label_cost" in x for x in lines] == [False, True, False, False]
    assert (counts.labelled, counts.unlabelled, counts.orphans) == (1, 3, 1)


def test_bad_invocations_fail_cleanly(tmp_path: Path, db: Path) -> None:
    for args in (
        ["export", "ex"],
        ["export", "ex", "--db", str(db), "--url", "http://x"],
        ["export", "ex", "--db", str(tmp_path / "none.db")],
        ["export", "ex", "--db", str(db), "--format", "xml"],
        ["export", "ex", "--db", str(db), "--format", "parquet"],  # needs --out
    ):
        assert runner.invoke(app, args).exit_code == 2
    r = runner.invoke(app, ["export", "ex", "--db", str(db), "--since", "soon"])
    assert r.exit_code == 1 and "since" in r.output
    r = runner.invoke(app, ["export", "--help"], env={"COLUMNS": "200"})
    assert r.exit_code == 0 and "dsjson" in r.output and "--page-size" in r.output
