"""The ``octobandit`` command line."""

from __future__ import annotations

import os

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


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", envvar="OCTOBANDIT_HOST", help="Address to listen on."),
    port: int = typer.Option(8000, envvar="OCTOBANDIT_PORT", help="Port to listen on."),
    db: str = typer.Option(
        "octobandit.db", envvar="OCTOBANDIT_DB", help="SQLite database file (created if absent)."
    ),
    workers: int = typer.Option(
        1, min=1, envvar="OCTOBANDIT_WORKERS", help="Worker processes sharing the database."
    ),
    synchronous: str = typer.Option(
        "NORMAL",
        envvar="OCTOBANDIT_SQLITE_SYNCHRONOUS",
        help="SQLite synchronous mode: NORMAL survives a process crash, FULL also power loss.",
    ),
    log_level: str = typer.Option("info", envvar="OCTOBANDIT_LOG_LEVEL", help="Log level."),
) -> None:
    """Run the HTTP service (REST API at /v1, interactive docs at /docs)."""
    import uvicorn

    synchronous = synchronous.upper()
    if synchronous not in {"NORMAL", "FULL", "EXTRA"}:
        raise typer.BadParameter("must be NORMAL, FULL or EXTRA", param_hint="--synchronous")
    # the worker processes read their settings from the environment
    os.environ.update(
        OCTOBANDIT_DB=db,
        OCTOBANDIT_SQLITE_SYNCHRONOUS=synchronous,
        OCTOBANDIT_HOST=host,
        OCTOBANDIT_PORT=str(port),
    )
    from octobandit.storage import SQLiteStorage

    SQLiteStorage(db, synchronous=synchronous).close()  # create the schema before workers start
    uvicorn.run(
        "octobandit.api.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level.lower(),
        access_log=False,
    )


def main() -> None:
    app()


if __name__ == "__main__":
    main()
