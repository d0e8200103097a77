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
