"""The ``octobandit`` command line: one module per command, registered on one app."""

from __future__ import annotations

from octobandit.cli import (  # noqa: F401  (registers the commands)
    arms,
    data,
    evaluate,
    experiments,
    export,
    fixtures,
    imports,
    keys,
    serve,
    simulate,
)
from octobandit.cli._app import app

__all__ = ["app", "main"]


def main() -> None:
    app()
