"""The ``octobandit`` Typer application; each command lives in a module of its own."""

from __future__ import annotations

import typer

import octobandit

app = typer.Typer(
    help="octobandit: adaptive experiments (multi-armed bandits) in production.",
    no_args_is_help=True,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(octobandit.__version__)
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """octobandit: adaptive experiments (multi-armed bandits) in production."""
