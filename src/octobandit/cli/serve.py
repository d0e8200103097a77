"""`octobandit serve`: the HTTP service."""

from __future__ import annotations

import os

import typer

from octobandit.cli._app import app


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", envvar="OCTOBANDIT_HOST", help="Address to listen on."),
    port: int = typer.Option(8000, envvar="OCTOBANDIT_PORT", help="Port to listen on."),
    store: str = typer.Option(
        "octobandit.db",
        "--store",
        "--db",
        envvar=["OCTOBANDIT_STORE", "OCTOBANDIT_DB"],
        help="Where the data lives: an SQLite file (created if absent; also sqlite:///path) "
        "or a PostgreSQL URL postgresql://user@host:5432/db (needs the 'postgres' extra). "
        "--db and OCTOBANDIT_DB are older names of --store and OCTOBANDIT_STORE.",
    ),
    state: str = typer.Option(
        "",
        "--state",
        envvar="OCTOBANDIT_STATE",
        help="Optional Redis for the per-arm statistics and sticky assignments, shared by "
        "replicas: redis://host:6379/0, rediss://… (TLS) or redis+cluster://node:7000 (a Redis "
        "Cluster); ?prefix=NAME sets the key prefix. Needs a PostgreSQL --store and the "
        "'redis' extra; rebuilt from the store's event log whenever Redis lost writes.",
    ),
    workers: int = typer.Option(
        1, min=1, envvar="OCTOBANDIT_WORKERS",
        help="HTTP worker processes (all served by one engine process).",
    ),
    synchronous: str = typer.Option(
        "NORMAL",
        envvar="OCTOBANDIT_SQLITE_SYNCHRONOUS",
        help="SQLite only: NORMAL survives a process crash, FULL also power loss.",
    ),
    log_level: str = typer.Option("info", envvar="OCTOBANDIT_LOG_LEVEL", help="Log level."),
    allowed_hosts: str = typer.Option(
        "",
        envvar="OCTOBANDIT_ALLOWED_HOSTS",
        help="Comma-separated Host names accepted besides localhost, 127.0.0.1 and [::1] "
        "when bound to a loopback address ('*': any). Others get 403 (DNS rebinding).",
    ),
    header_timeout: float = typer.Option(
        10.0, min=0, envvar="OCTOBANDIT_HEADER_TIMEOUT",
        help="Seconds for a request's headers to arrive (0: none); then 408 and close.",
    ),
    body_timeout: float = typer.Option(
        30.0, min=0, envvar="OCTOBANDIT_BODY_TIMEOUT",
        help="Seconds for a request's body to arrive (0: none); then 408 and close.",
    ),
    keep_alive_timeout: float = typer.Option(
        5.0, min=0.1, envvar="OCTOBANDIT_KEEP_ALIVE_TIMEOUT",
        help="Seconds an idle keep-alive connection stays open.",
    ),
    max_connections: int = typer.Option(
        0, min=0, envvar="OCTOBANDIT_MAX_CONNECTIONS",
        help="Open connections per worker; beyond it the longest-idle connection is closed, or "
        "if all are busy the request gets 503 (0: the open-file limit minus 64, 16 to 1024).",
    ),
    metrics: bool = typer.Option(
        True, "--metrics/--no-metrics", envvar="OCTOBANDIT_METRICS",
        help="Serve Prometheus metrics at /metrics and record request metrics "
        "(docs/metrics.md); --no-metrics: neither.",
    ),
    public_metrics: bool = typer.Option(
        False, "--public-metrics", envvar="OCTOBANDIT_PUBLIC_METRICS",
        help="With authentication on, /metrics needs no API key (for a scraper without one).",
    ),
) -> None:  # fmt: skip
    """Run the HTTP service (REST API at /v1, interactive docs at /docs, Prometheus metrics at
    /metrics) and its engine process."""
    import uvicorn

    from octobandit.api.guards import is_loopback_address
    from octobandit.api.protocol import PROTOCOL

    synchronous = synchronous.upper()
    if synchronous not in {"NORMAL", "FULL", "EXTRA"}:
        raise typer.BadParameter("must be NORMAL, FULL or EXTRA", param_hint="--synchronous")
    # the worker processes read their settings from the environment
    os.environ.update(
        OCTOBANDIT_STORE=store,
        OCTOBANDIT_DB=store,
        OCTOBANDIT_STATE=state,
        OCTOBANDIT_SQLITE_SYNCHRONOUS=synchronous,
        OCTOBANDIT_LOG_LEVEL=log_level,
        OCTOBANDIT_HOST=host,
        OCTOBANDIT_PORT=str(port),
        OCTOBANDIT_ALLOWED_HOSTS=allowed_hosts,
        OCTOBANDIT_HEADER_TIMEOUT=str(header_timeout),
        OCTOBANDIT_BODY_TIMEOUT=str(body_timeout),
        OCTOBANDIT_KEEP_ALIVE_TIMEOUT=str(keep_alive_timeout),
        OCTOBANDIT_MAX_CONNECTIONS=str(max_connections),
        OCTOBANDIT_METRICS="1" if metrics else "0",
        OCTOBANDIT_PUBLIC_METRICS="1" if public_metrics else "0",
    )
    from octobandit.errors import StorageUnusable

    if not is_loopback_address(host):
        typer.echo(
            f"WARNING: listening on {host}, not a loopback address: anyone who can reach it "
            "can read, change and delete every experiment (the API has no authentication yet).",
            err=True,
        )
    from octobandit.engine.process import EngineProcess
    from octobandit.engine.server import METRICS_SUBDIR

    # the engine (policies, storage, group commits, ticks) runs in its own process, which
    # checks the database first; every HTTP worker reaches it over a Unix socket
    try:
        engine = EngineProcess().start()
    except StorageUnusable as exc:
        typer.echo(f"octobandit: {exc.message}", err=True)
        raise typer.Exit(1) from None
    os.environ["OCTOBANDIT_ENGINE_SOCKET"] = engine.socket
    # request metrics: every worker writes prometheus-client's multiprocess files in a
    # directory of this run (set before anything imports prometheus_client), so that a
    # scrape of any worker sums them all (docs/metrics.md); it sits in the engine's private
    # directory, removed with it when the service stops
    metrics_dir = os.path.join(engine.directory, METRICS_SUBDIR) if metrics else None
    if metrics_dir is not None:
        os.mkdir(metrics_dir, 0o700)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        uvicorn.run(
            "octobandit.api.app:app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level=log_level.lower(),
            access_log=False,
            http=PROTOCOL,
            timeout_keep_alive=keep_alive_timeout,  # type: ignore[arg-type]  # float is fine
        )
    finally:
        engine.stop()
