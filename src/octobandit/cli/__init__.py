"""The ``octobandit`` command line: one module per command, registered on one app."""

from __future__ import annotations

from octobandit.cli import evaluate, export, serve, simulate  # noqa: F401  (registers the commands)
from octobandit.cli._app import app

__all__ = ["app", "main"]


def main() -> None:
    app()
