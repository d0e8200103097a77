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
    auth: bool = typer.Option(
        False, "--auth", envvar="OCTOBANDIT_AUTH",
        help="Require 'Authorization: Bearer <key>' on every route but /healthz (keys: "
        "'octobandit keys create'; JWTs with --jwt-secret or --jwks). See docs/security.md.",
    ),
    insecure: bool = typer.Option(
        False, "--insecure", envvar="OCTOBANDIT_INSECURE",
        help="Listen on a non-loopback address without --auth (refused otherwise): anyone "
        "who reaches the port can change and delete every experiment.",
    ),
    jwt_secret: str = typer.Option(
        "", "--jwt-secret", envvar="OCTOBANDIT_JWT_SECRET",
        help="With --auth: also accept HS256 JWTs signed with this secret (the 'jwt' extra).",
    ),
    jwks: str = typer.Option(
        "", "--jwks", envvar="OCTOBANDIT_JWKS", metavar="FILE",
        help="With --auth: also accept RS256/ES256 JWTs signed by a key of this JWKS file.",
    ),
    jwt_audience: str = typer.Option(
        "", "--jwt-audience", envvar="OCTOBANDIT_JWT_AUDIENCE",
        help="The 'aud' a JWT must carry (unset: not checked).",
    ),
    jwt_issuer: str = typer.Option(
        "", "--jwt-issuer", envvar="OCTOBANDIT_JWT_ISSUER",
        help="The 'iss' a JWT must carry (unset: not checked).",
    ),
    jwt_scope_claim: str = typer.Option(
        "scope", "--jwt-scope-claim", envvar="OCTOBANDIT_JWT_SCOPE_CLAIM",
        help="The JWT claim with the scopes (read, decide, admin): a space-separated string "
        "or a list ('scope' also reads 'scopes').",
    ),
    jwt_experiments_claim: str = typer.Option(
        "experiments", "--jwt-experiments-claim", envvar="OCTOBANDIT_JWT_EXPERIMENTS_CLAIM",
        help="The JWT claim listing the experiments a token is limited to (absent: all).",
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
        OCTOBANDIT_AUTH="1" if auth else "0",
        OCTOBANDIT_JWT_SECRET=jwt_secret,
        OCTOBANDIT_JWKS=os.path.abspath(jwks) if jwks else "",
        OCTOBANDIT_JWT_AUDIENCE=jwt_audience,
        OCTOBANDIT_JWT_ISSUER=jwt_issuer,
        OCTOBANDIT_JWT_SCOPE_CLAIM=jwt_scope_claim,
        OCTOBANDIT_JWT_EXPERIMENTS_CLAIM=jwt_experiments_claim,
    )
    from octobandit.errors import StorageUnusable

    if (jwt_secret or jwks) and not auth:
        raise typer.BadParameter("needs --auth", param_hint="--jwt-secret/--jwks")
    if auth and (jwt_secret or jwks):
        _check_jwt(jwks)
    if not is_loopback_address(host):
        if not auth and not insecure:
            typer.echo(
                f"octobandit: refusing to listen on {host}, not a loopback address, without "
                "--auth: anyone who could reach it could read, change and delete every "
                "experiment. Use --auth (see docs/security.md), or --insecure if something "
                "in front of the service (a proxy, a private network) already controls access.",
                err=True,
            )
            raise typer.Exit(2)
        if not auth:
            typer.echo(
                f"WARNING: listening on {host}, not a loopback address, with --insecure: "
                "anyone who can reach it can read, change and delete every experiment "
                "(no authentication).",
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


def _check_jwt(jwks: str) -> None:
    """Fail at start, not at the first request, when JWTs cannot be checked."""
    try:
        import jwt  # noqa: F401
    except ImportError:
        typer.echo("octobandit: JWTs need PyJWT: pip install 'octobandit[jwt]'", err=True)
        raise typer.Exit(2) from None
    if jwks:
        from octobandit.api.auth import JwtVerifier

        try:
            JwtVerifier(jwks_file=jwks)
        except Exception as exc:
            typer.echo(f"octobandit: cannot use the JWKS file {jwks}: {exc}", err=True)
            raise typer.Exit(2) from None
