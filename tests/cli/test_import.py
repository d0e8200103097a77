"""``octobandit import``: our export (JSON Lines, CSV, DSJSON), the Open Bandit Dataset's
CSV and foreign DSJSON into a new experiment; idempotent; exactly once after a kill."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from octobandit.cli import app
from octobandit.engine import Engine, RewardItem
from octobandit.storage import SQLiteStorage
from octobandit.storage.fold import fold

runner = CliRunner()
DATA = Path(__file__).parents[1] / "data" / "obd" / "random_all_head240.csv"


def _fill(db: Path) -> None:
    """Experiment ``src``: arms a, b, c (ε-greedy); contexts on odd decisions, units on
    every third; decisions 0, 5, 10, … without an outcome."""
    clock = iter(1_700_000_000 + i / 10 for i in range(10_000))
    engine = Engine(SQLiteStorage(str(db)), seed=3, clock=lambda: next(clock))
    arms = [{"id": "a"}, {"id": "b"}, {"id": "c"}]
    spec = {"id": "src", "policy": {"type": "epsilon_greedy", "epsilon": 0.3}, "arms": arms}
    engine.create_experiment(spec)
    for i in range(60):
        d = engine.decide(
            "src",
            context={"x": float(i)} if i % 2 else None,
            unit_id=f"u{i}" if i % 3 == 0 else None,
        )
        if i % 5:
            engine.reward(
                "src", [RewardItem(reward=float(i % 3 == 1), decision_id=d["decision_id"])]
            )
    engine.storage.close()


def _invoke(*args: str) -> Any:
    return runner.invoke(app, list(args))


def _summary(result: Any) -> dict[str, Any]:
    assert result.stdout.strip(), result.output
    out: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return out


def _arm_stats(db: Path, experiment: str) -> dict[str, tuple[Any, ...]]:
    store = SQLiteStorage(str(db))
    try:
        record = store.get_experiment(experiment)
        assert record is not None
        return {
            a.arm_id: (a.decisions, a.rewards, a.reward_sum, a.reward_sq_sum, a.ips)
            for a in record.arms
            if a.decisions
        }
    finally:
        store.close()


def _same_stats(got: dict[str, tuple[Any, ...]], want: dict[str, tuple[Any, ...]]) -> None:
    """Counts and sums equal (binary rewards: whole numbers, exact in any order); each
    importance-weighted sum (of at most 60 non-negative terms, added in batches here and
    one reward at a time in the source) within recursive summation's bound n·eps·|sum|."""
    assert got.keys() == want.keys()
    for arm, row in got.items():
        assert row[:4] == want[arm][:4]
        assert row[4] is not None and want[arm][4] is not None
        for x, y in zip(row[4], want[arm][4], strict=True):
            assert abs(x - y) <= 60 * sys.float_info.epsilon * abs(y)


def _log(db: Path, experiment: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Decisions (id → (ts, arm, propensity, unit, context)) and outcomes (id → reward)."""
    store = SQLiteStorage(str(db))
    try:
        events = list(store.events(experiment))
    finally:
        store.close()
    decisions = {
        e.decision_id: (e.ts, e.arm_id, e.propensity, e.unit_id, e.context)
        for e in events
        if e.kind == "decision"
    }
    outcomes = {e.decision_id: e.reward for e in events if e.kind in ("reward", "default")}
    return decisions, outcomes


@pytest.fixture
def source(tmp_path: Path) -> Path:
    db = tmp_path / "src.db"
    _fill(db)
    return db


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "dsjson"])
def test_a_round_trip_gives_the_same_statistics_and_log(
    tmp_path: Path, source: Path, fmt: str
) -> None:
    exported = tmp_path / f"src.{fmt}"
    r = _invoke("export", "src", "--db", str(source), "-f", fmt, "-o", str(exported))
    assert r.exit_code == 0, r.output
    target = tmp_path / "dst.db"
    r = _invoke("import", "dst", str(exported), "--db", str(target), "--policy", "epsilon_greedy",
                "--batch-size", "17", "--json")  # fmt: skip
    assert r.exit_code == 0, r.output
    summary = _summary(r)
    assert summary["format"] == fmt and summary["created"]
    assert (summary["decisions"], summary["outcomes"]) == (60, 48)
    _same_stats(_arm_stats(target, "dst"), _arm_stats(source, "src"))
    decisions, outcomes = _log(target, "dst")
    want_decisions, want_outcomes = _log(source, "src")
    assert outcomes == want_outcomes
    assert decisions.keys() == want_decisions.keys()
    for key, (ts, arm, p, unit, context) in decisions.items():
        w_ts, w_arm, w_p, w_unit, w_context = want_decisions[key]
        assert (arm, p, context) == (w_arm, w_p, w_context)
        if fmt == "dsjson":  # its Timestamp has milliseconds; no units
            assert abs(ts - w_ts) <= 0.0005 + 1e-6
        else:
            assert (ts, unit) == (w_ts, w_unit)
    store = SQLiteStorage(str(target))
    try:
        assert [a.arm_id for a in store.get_experiment("dst").arms] == ["a", "b", "c"]  # type: ignore[union-attr]
    finally:
        store.close()

    # re-importing adds nothing
    r = _invoke("import", "dst", str(exported), "--db", str(target), "--policy", "epsilon_greedy",
                "--json")  # fmt: skip
    assert r.exit_code == 0, r.output
    again = _summary(r)
    assert (again["decisions"], again["outcomes"], again["created"]) == (0, 0, False)
    assert (again["duplicate_decisions"], again["duplicate_outcomes"]) == (60, 48)
    assert _log(target, "dst") == (decisions, outcomes)
    _same_stats(_arm_stats(target, "dst"), _arm_stats(source, "src"))


def test_into_the_same_store_needs_rekey(tmp_path: Path, source: Path) -> None:
    exported = tmp_path / "src.jsonl"
    assert _invoke("export", "src", "--db", str(source), "-o", str(exported)).exit_code == 0
    r = _invoke("import", "copy", str(exported), "--db", str(source), "--policy", "epsilon_greedy")
    assert r.exit_code == 1 and "--rekey" in r.output
    store = SQLiteStorage(str(source))
    assert store.get_experiment("copy") is None  # nothing imported: no empty experiment left
    store.close()
    for _ in range(2):  # deterministic ids: the second run adds nothing
        r = _invoke("import", "copy", str(exported), "--db", str(source), "--rekey",
                    "--policy", "epsilon_greedy", "--json")  # fmt: skip
        assert r.exit_code == 0, r.output
    assert _summary(r)["duplicate_decisions"] == 60
    _same_stats(_arm_stats(source, "copy"), _arm_stats(source, "src"))


def test_an_existing_experiment_not_made_by_an_import_is_refused(
    tmp_path: Path, source: Path
) -> None:
    exported = tmp_path / "src.jsonl"
    assert _invoke("export", "src", "--db", str(source), "-o", str(exported)).exit_code == 0
    target = tmp_path / "dst.db"
    _fill(target)
    r = _invoke("import", "src", str(exported), "--db", str(target))
    assert r.exit_code == 1 and "not created by octobandit import" in r.output
    r = _invoke("import", "new", str(exported), "--db", str(target), "--rekey")
    assert r.exit_code == 0, r.output
    r = _invoke("import", "new", str(exported), "--db", str(target), "--rekey", "--reward",
                "continuous")  # fmt: skip
    assert r.exit_code == 1 and "give the same options" in r.output


def test_the_open_bandit_dataset_sample(tmp_path: Path) -> None:
    with DATA.open(newline="") as f:
        rows = list(csv.DictReader(f))
    target = tmp_path / "obd.db"
    r = _invoke("import", "obd", str(DATA), "--db", str(target), "--json")
    assert r.exit_code == 0, r.output
    summary = _summary(r)
    assert (summary["format"], summary["decisions"], summary["outcomes"]) == ("obd", 240, 240)
    decisions, outcomes = _log(target, "obd")
    want: dict[str, list[float]] = {}
    for row in rows:
        counts = want.setdefault(row["item_id"], [0, 0.0])
        counts[0] += 1
        counts[1] += float(row["click"])
    stats = _arm_stats(target, "obd")
    assert {arm: [s[0], s[2]] for arm, s in stats.items()} == want
    assert sum(outcomes.values()) == sum(float(r["click"]) for r in rows)
    by_time = sorted(decisions.values(), key=lambda d: d[0])
    first = rows[0]
    match = next(d for d in by_time if d[4]["position"] == int(first["position"]))
    assert match[1] == first["item_id"] and match[2] == float(first["propensity_score"])
    assert match[4]["user_feature_0"] == first["user_feature_0"]
    assert match[4]["user-item_affinity_0"] == float(first["user-item_affinity_0"])
    # again: nothing new; one position only into another experiment: its rows
    r = _invoke("import", "obd", str(DATA), "--db", str(target), "--json")
    assert _summary(r)["decisions"] == 0
    r = _invoke("import", "pos1", str(DATA), "--db", str(tmp_path / "p.db"), "--position", "1",
                "--json")  # fmt: skip
    summary = _summary(r)
    per = {p: sum(row["position"] == p for row in rows) for p in ("1", "2", "3")}
    assert summary["decisions"] == per["1"]
    assert summary["skipped"] == {"position 2": per["2"], "position 3": per["3"]}


def test_declared_features_feed_a_linear_policy(tmp_path: Path) -> None:
    target = tmp_path / "lin.db"
    features = "position,user-item_affinity_3"
    r = _invoke("import", "lin", str(DATA), "--db", str(target), "--policy", "linucb",
                "--context-features", features, "--batch-size", "100", "--json")  # fmt: skip
    assert r.exit_code == 0, r.output
    with DATA.open(newline="") as f:
        rows = {(r["timestamp"], r["item_id"], r["position"]): r for r in csv.DictReader(f)}
    decisions, _ = _log(target, "lin")
    assert len(decisions) == 240
    for ts, arm, _, _, context in decisions.values():
        match = [r for (_, item, _), r in rows.items() if item == arm and
                 abs(_ts(r["timestamp"]) - ts) < 1e-6]  # fmt: skip
        assert len(match) == 1
        assert context == [float(match[0]["position"]), float(match[0]["user-item_affinity_3"])]
    store = SQLiteStorage(str(target))
    try:
        record = store.get_experiment("lin")
        assert record is not None and record.policy_state is not None
        assert record.options["context_features"] == features.split(",")
    finally:
        store.close()
    # a resume must declare the same features
    r = _invoke("import", "lin", str(DATA), "--db", str(target), "--policy", "linucb")
    assert r.exit_code == 1 and "context features" in r.output


def _ts(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text).timestamp()


def test_foreign_dsjson(tmp_path: Path) -> None:
    """VW's own logs: GUID event ids, actions named by an ``id`` feature, unlabelled lines."""
    lines = []
    for i in range(30):
        chosen = 1 + i % 3
        line: dict[str, Any] = {
            "EventId": f"guid-{i:04d}",
            "Timestamp": f"2024-01-01T00:00:{i:02d}.000Z",
            "a": [chosen] + [k for k in (1, 2, 3) if k != chosen],
            "p": [0.5, 0.25, 0.25],
            "c": {"user": {"age": i}, "_multi": [{"id": "red"}, {"id": "green"}, {"id": "blue"}]},
        }
        if i % 4:
            line.update(_label_cost=-float(i % 2), _label_probability=0.5, _label_Action=chosen)
        lines.append(json.dumps(line))
    path = tmp_path / "vw.json"
    path.write_text("\n".join(lines) + "\n")
    target = tmp_path / "vw.db"
    r = _invoke("import", "vw", str(path), "--db", str(target), "--json")
    assert r.exit_code == 0, r.output
    summary = _summary(r)
    assert (summary["format"], summary["decisions"], summary["outcomes"]) == ("dsjson", 30, 22)
    assert summary["arms_added"] == ["red", "green", "blue"]
    decisions, outcomes = _log(target, "vw")
    assert sum(outcomes.values()) == sum(i % 2 for i in range(30) if i % 4)
    assert {d[4]["user"]["age"] for d in decisions.values()} == set(range(30))
    assert {d[2] for d in decisions.values()} == {0.5}
    assert (
        _summary(_invoke("import", "vw", str(path), "--db", str(target), "--json"))["decisions"]
        == 0
    )
    piped = runner.invoke(
        app,
        ["import", "vw", "-", "--db", str(tmp_path / "in.db"), "--json"],
        input=path.read_text(),
    )
    assert piped.exit_code == 0, piped.output
    assert _log(tmp_path / "in.db", "vw") == (decisions, outcomes)


def _jsonl(n: int, *, bad_at: int | None = None) -> str:
    """``n`` decisions and their rewards as our export writes them (decision i, then its
    reward); line ``bad_at`` is not JSON."""
    out = []
    for i in range(n):
        did = f"{1_700_000_000_000 + i:012x}" + hashlib.sha256(str(i).encode()).hexdigest()[:20]
        arm = "abc"[i % 3]
        decision = {"kind": "decision", "decision_id": did, "arm_id": arm, "propensity": 0.5}
        decision.update(ts=1_700_000_000 + i, data={"k": 3})
        reward = {"kind": "reward", "decision_id": did, "arm_id": arm, "reward": float(i % 2)}
        reward.update(count=1, ts=1_700_000_000.5 + i)
        out += [json.dumps(decision), json.dumps(reward)]
    if bad_at is not None:
        out[bad_at - 1] = '{"kind": "decision", "decision_id": '
    return "\n".join(out) + "\n"


def _exactly(db: Path, experiment: str, n: int) -> None:
    store = SQLiteStorage(str(db))
    try:
        events = list(store.events(experiment))
        record = store.get_experiment(experiment)
    finally:
        store.close()
    assert sum(e.kind == "decision" for e in events) == n
    assert sum(e.kind == "reward" for e in events) == n
    assert record is not None
    folded = fold(events).arms[experiment]
    for a in record.arms:
        f = folded[a.arm_id]
        assert (a.decisions, a.rewards, a.reward_sum) == (f.decisions, f.rewards, f.reward_sum)
    assert sum(a.decisions for a in record.arms) == n
    assert sum(a.reward_sum for a in record.arms) == n // 2


def test_a_bad_row_fails_its_batch_only_and_a_rerun_resumes(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    path.write_text(_jsonl(100, bad_at=125))  # in the third batch of 50 lines
    target = tmp_path / "t.db"
    r = _invoke("import", "t", str(path), "--db", str(target), "--batch-size", "50")
    assert r.exit_code == 1
    assert "line 125" in r.output
    decisions, outcomes = _log(target, "t")
    assert (len(decisions), len(outcomes)) == (50, 50)  # two whole batches, nothing of the third
    r = _invoke("import", "t", str(path), "--db", str(target), "--batch-size", "50", "--skip-bad",
                "--json")  # fmt: skip
    assert r.exit_code == 3, r.output
    summary = _summary(r)
    assert summary["bad_rows"] == 1 and summary["orphan_outcomes"] == 1
    assert "line 125" in summary["bad_row_messages"][0]
    path.write_text(_jsonl(100))  # fixed: the decision comes in, its reward was already there
    r = _invoke("import", "t", str(path), "--db", str(target), "--json")
    assert r.exit_code == 0, r.output
    assert (_summary(r)["decisions"], _summary(r)["outcomes"]) == (1, 1)
    _exactly(target, "t", 100)


def _decisions_so_far(db: Path) -> int:
    """The decisions committed in ``db`` (0 before its tables exist), read without locking."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
            row = conn.execute("SELECT count(*) FROM events WHERE kind = 'decision'").fetchone()
    except sqlite3.Error:
        return 0
    return int(row[0])


@pytest.mark.slow
def test_a_killed_import_resumes_exactly_once(tmp_path: Path) -> None:
    n = 30_000
    path = tmp_path / "big.jsonl"
    path.write_text(_jsonl(n))
    target = tmp_path / "k.db"
    cmd = [sys.executable, "-m", "octobandit.cli", "import", "k", str(path), "--db", str(target),
           "--batch-size", "400"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if _decisions_so_far(target) >= 1_000:
                break
            time.sleep(0.05)
        killed = proc.poll() is None
        if killed:
            os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert killed, "the import ended before it could be killed"
    assert 1_000 <= _decisions_so_far(target) < n
    r = _invoke("import", "k", str(path), "--db", str(target), "--json")
    assert r.exit_code == 0, r.output
    _exactly(target, "k", n)
