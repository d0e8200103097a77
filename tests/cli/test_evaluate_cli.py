"""``octobandit evaluate``: an experiment's log from an SQLite file or a running service,
as a table, JSON and a PNG."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from octobandit.cli import app
from octobandit.engine import Engine, RewardItem
from octobandit.storage import SQLiteStorage

runner = CliRunner()
MU = {"a": 0.2, "b": 0.5, "c": 0.8}
KEYS = {"ipw", "snipw", "dm", "dr", "sndr", "switch-dr", "replay"}


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """Experiment ``ex``: 600 ε-greedy decisions over Bernoulli arms, the last 10 without
    an outcome."""
    path = tmp_path / "log.db"
    engine = Engine(SQLiteStorage(str(path)), seed=5)
    arms = [{"id": a} for a in MU]
    engine.create_experiment(
        {"id": "ex", "arms": arms, "policy": {"type": "epsilon_greedy", "epsilon": 0.5}}
    )
    rng = np.random.default_rng(1)
    for i in range(600):
        d = engine.decide("ex")
        if i < 590:
            r = float(rng.random() < MU[d["arm_id"]])
            engine.reward("ex", [RewardItem(reward=r, decision_id=d["decision_id"])])
    engine.storage.close()
    return path


def _check_json(output: str) -> dict[str, Any]:
    result = json.loads(output)
    assert result["logged"]["rounds"] == 590 and result["logged"]["dropped"] == 10
    assert set(result["candidates"]) == {"thompson", "greedy", "action_dist"}
    for c in result["candidates"].values():
        assert set(c["estimates"]) == KEYS
        for e in c["estimates"].values():
            lo, hi = e["ci95"]
            assert lo <= e["value"] <= hi
        assert c["replay"]["accepted"] > 0 and c["replay"]["curve"]["t"]
    return result


POLICIES = [
    "--policy", "thompson",
    "--policy", '{"type": "epsilon_greedy", "epsilon": 0.0, "name": "greedy"}',
    "--policy", '{"action_dist": [0.5, 0.0, 0.5]}',
]  # fmt: skip


def test_evaluate_from_an_sqlite_file(tmp_path: Path, db: Path) -> None:
    png = tmp_path / "replay.png"
    r = runner.invoke(
        app,
        [
            "evaluate",
            "ex",
            "--db",
            str(db),
            *POLICIES,
            "--json",
            "--png",
            str(png),
            "--bootstrap",
            "200",
        ],
    )
    assert r.exit_code == 0, r.output
    result = _check_json(r.stdout)
    # the fixed candidate's value is known: 0.2·0.5 + 0.8·0.5 = 0.5 (IPS is unbiased)
    fixed = result["candidates"]["action_dist"]["estimates"]
    lo, hi = fixed["ipw"]["ci95"]
    assert lo <= 0.5 <= hi
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = runner.invoke(
        app, ["evaluate", "ex", "--db", str(db), "-p", "ucb1", "--bootstrap", "50"]
    )
    assert table.exit_code == 0, table.output
    assert "ucb1" in table.stdout and "snipw" in table.stdout and "590 rounds" in table.stdout
    # the most recent 100 decisions: the last 10 have no outcome
    args = ["evaluate", "ex", "--db", str(db), "-p", "ucb1", "--limit", "100", "--json"]
    recent = runner.invoke(app, [*args, "--bootstrap", "20"])
    assert recent.exit_code == 0, recent.output
    logged = json.loads(recent.stdout)["logged"]
    assert (logged["rounds"], logged["dropped"], logged["older"]) == (90, 10, 500)


def test_evaluate_from_a_running_service(db: Path, server_factory: Any) -> None:
    server = server_factory(db).start()
    r = runner.invoke(
        app, ["evaluate", "ex", "--url", server.url, *POLICIES, "--json", "--bootstrap", "100"]
    )
    assert r.exit_code == 0, r.output
    _check_json(r.stdout)
    r = runner.invoke(app, ["evaluate", "missing", "--url", server.url, "-p", "thompson"])
    assert r.exit_code == 1 and "not found" in r.output


def test_bad_invocations_fail_cleanly(tmp_path: Path, db: Path) -> None:
    cases = [
        (["evaluate", "ex", "--db", str(db)], "--policy"),
        (["evaluate", "ex", "-p", "thompson"], "exactly one"),
        (["evaluate", "ex", "--db", str(tmp_path / "no.db"), "-p", "thompson"], "no such file"),
        (["evaluate", "ex", "--db", str(db), "-p", "nope"], "unknown policy type"),
        (["evaluate", "ex", "--db", str(db), "-p", '{"action_dist": [1, 0]}'], "action_dist"),
        (["evaluate", "missing", "--db", str(db), "-p", "thompson"], "not found"),
        (["evaluate", "ex", "--db", str(db), "-p", "linucb"], "contextual"),
    ]
    for args, message in cases:
        r = runner.invoke(app, args)
        assert r.exit_code != 0 and message in r.output, (args, r.output)
