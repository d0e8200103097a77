"""The command line: help that tells the truth about settings."""

from __future__ import annotations

from typer.testing import CliRunner

import octobandit
from octobandit.cli import app

runner = CliRunner()


def test_version() -> None:
    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0 and r.output.strip() == octobandit.__version__


def test_serve_help_names_every_option_and_its_environment_variable() -> None:
    r = runner.invoke(app, ["serve", "--help"], terminal_width=200, env={"COLUMNS": "200"})
    assert r.exit_code == 0
    for option, var in (
        ("--host", "OCTOBANDIT_HOST"),
        ("--port", "OCTOBANDIT_PORT"),
        ("--db", "OCTOBANDIT_DB"),
        ("--workers", "OCTOBANDIT_WORKERS"),
        ("--synchronous", "OCTOBANDIT_SQLITE_SYNCHRONOUS"),
        ("--log-level", "OCTOBANDIT_LOG_LEVEL"),
    ):
        assert option in r.output and var in r.output


def test_bad_synchronous_mode_is_a_usage_error() -> None:
    r = runner.invoke(app, ["serve", "--synchronous", "sometimes"])
    assert r.exit_code == 2


def test_simulate_writes_csv_json_and_png(tmp_path: object) -> None:
    import csv
    import json
    from pathlib import Path

    prefix = Path(str(tmp_path)) / "sim"
    r = runner.invoke(
        app,
        [
            "simulate", "-p", "thompson", "-p", '{"type": "epsilon_greedy", "epsilon": 1.0}',
            "--arms", "3", "--best", "0.7", "--gap", "0.3", "--horizon", "300",
            "--replications", "40", "--out", str(prefix),
        ],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(prefix.with_suffix(".csv").open()))
    assert {row["policy"] for row in rows} == {"thompson", "epsilon_greedy(epsilon=1.0)"}
    final = {p["label"]: p for p in json.loads(prefix.with_suffix(".json").read_text())}
    # ε = 1 is uniform: its expected regret is exactly T · (2/3) · 0.3 = 60 at T = 300
    uniform = final["epsilon_greedy(epsilon=1.0)"]["final_regret"]
    assert abs(uniform["mean"] - 60.0) <= 5 * uniform["se"]
    assert final["thompson"]["final_regret"]["mean"] < uniform["mean"]
    assert prefix.with_suffix(".png").stat().st_size > 0


def test_simulate_rejects_a_bad_policy() -> None:
    r = runner.invoke(app, ["simulate", "-p", '{"type": "nope"}', "--horizon", "10"])
    assert r.exit_code == 2 and "policy.type" in r.output
