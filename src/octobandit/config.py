"""Service settings, read from ``OCTOBANDIT_*`` environment variables.

| variable | default | meaning |
| --- | --- | --- |
| ``OCTOBANDIT_HOST`` | ``127.0.0.1`` | address to listen on |
| ``OCTOBANDIT_PORT`` | ``8000`` | port |
| ``OCTOBANDIT_STORE`` | ``octobandit.db`` | SQLite file (``sqlite:///…``) or ``postgresql://…`` |
| ``OCTOBANDIT_DB`` | ``octobandit.db`` | older name of ``OCTOBANDIT_STORE`` (read if it is unset) |
| ``OCTOBANDIT_STATE`` | unset | ``redis://…`` or ``redis+cluster://…``: per-arm state |
| ``OCTOBANDIT_WORKERS`` | ``1`` | HTTP worker processes (sharing one engine process) |
| ``OCTOBANDIT_SQLITE_SYNCHRONOUS`` | ``NORMAL`` | SQLite only: ``FULL`` also survives power loss |
| ``OCTOBANDIT_SEED`` | unset | fixed random seed (tests only) |
| ``OCTOBANDIT_LOG_LEVEL`` | ``info`` | server log level |
| ``OCTOBANDIT_REFRESH_SECONDS`` | ``0.05`` | seconds between selection-distribution refreshes |
| ``OCTOBANDIT_TICK_SECONDS`` | ``1`` | how often due snapshots are looked for |
| ``OCTOBANDIT_WAL_SOFT_MB`` | ``16`` | SQLite WAL size above which a writer truncates it |
| ``OCTOBANDIT_WAL_MAX_MB`` | ``64`` | SQLite WAL size at which writers wait (the bound) |
| ``OCTOBANDIT_ALLOWED_HOSTS`` | empty | more ``Host`` names for a loopback bind (``*``: any) |
| ``OCTOBANDIT_HEADER_TIMEOUT`` | ``10`` | seconds for a request's headers to arrive |
| ``OCTOBANDIT_BODY_TIMEOUT`` | ``30`` | seconds for a request's body to arrive (then 408) |
| ``OCTOBANDIT_KEEP_ALIVE_TIMEOUT`` | ``5`` | seconds an idle connection stays open |
| ``OCTOBANDIT_MAX_CONNECTIONS`` | ``0`` | connections per worker (``0``: automatic) |
| ``OCTOBANDIT_METRICS`` | ``1`` | ``0``: no ``/metrics`` and no request metrics layer |
| ``OCTOBANDIT_PUBLIC_METRICS`` | ``0`` | ``1``: ``/metrics`` needs no API key under auth |
| ``OCTOBANDIT_ENGINE_SOCKET`` | unset | set by ``octobandit serve``: the engine process's socket |
| ``OCTOBANDIT_AUTH`` | ``0`` | ``1``: every route but ``/healthz`` needs a key (docs/security.md) |
| ``OCTOBANDIT_INSECURE`` | ``0`` | ``1``: serve a non-loopback address without ``--auth`` |
| ``OCTOBANDIT_AUTH_CACHE_SECONDS`` | ``1`` | key table refresh (new, revoked keys: within 2×) |
| ``OCTOBANDIT_AUTH_FAILURE_BURST`` | ``20`` | failed auths per address before 429 (per minute) |
| ``OCTOBANDIT_JWT_SECRET`` | unset | accept HS256 JWTs signed with this secret |
| ``OCTOBANDIT_JWKS`` | unset | accept RS256/ES256 JWTs signed by a key of this JWKS file |
| ``OCTOBANDIT_JWT_AUDIENCE`` | unset | required ``aud`` of JWTs |
| ``OCTOBANDIT_JWT_ISSUER`` | unset | required ``iss`` of JWTs |
| ``OCTOBANDIT_JWT_SCOPE_CLAIM`` | ``scope`` | the claim holding a JWT's scopes |
| ``OCTOBANDIT_JWT_EXPERIMENTS_CLAIM`` | ``experiments`` | the claim limiting a JWT to experiments |

The SQLite-only settings (synchronous mode, WAL sizes) do not apply to a
PostgreSQL store.

The automatic connection limit is the open-file limit minus 64 (kept for the
database and the listening socket), at most 1,024 and at least 16.
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    #: where the data lives: an SQLite path or URL, or a PostgreSQL URL (see ``open_store``)
    store: str = "octobandit.db"
    #: optional Redis state store for the per-arm statistics (see ``open_store``)
    state: str | None = None
    workers: int = 1
    sqlite_synchronous: str = "NORMAL"
    seed: int | None = None
    log_level: str = "info"
    tick_seconds: float = 1.0
    refresh_seconds: float = 0.05
    wal_soft_mb: float = 16.0
    wal_max_mb: float = 64.0
    allowed_hosts: tuple[str, ...] = ()
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    keep_alive_timeout: float = 5.0
    max_connections: int = 0
    engine_socket: str | None = None
    #: serve ``/metrics`` and record request metrics (see docs/metrics.md)
    metrics: bool = True
    #: with authentication on, ``/metrics`` needs no key (for a scraper without one)
    public_metrics: bool = False
    #: authentication (see docs/security.md and :mod:`octobandit.api.auth`)
    auth: bool = False
    auth_cache_seconds: float = 1.0
    auth_failure_burst: int = 20
    jwt_secret: str | None = None
    jwks_file: str | None = None
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    jwt_scope_claim: str = "scope"
    jwt_experiments_claim: str = "experiments"

    def connection_limit(self) -> int:
        """``max_connections``, or the automatic limit when it is 0."""
        if self.max_connections > 0:
            return self.max_connections
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == resource.RLIM_INFINITY:
            return 1024
        return max(16, min(1024, soft - 64))

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        seed = env.get("OCTOBANDIT_SEED")
        return cls(
            host=env.get("OCTOBANDIT_HOST", cls.host),
            port=int(env.get("OCTOBANDIT_PORT", cls.port)),
            store=env.get("OCTOBANDIT_STORE") or env.get("OCTOBANDIT_DB") or cls.store,
            state=env.get("OCTOBANDIT_STATE") or None,
            workers=int(env.get("OCTOBANDIT_WORKERS", cls.workers)),
            sqlite_synchronous=env.get("OCTOBANDIT_SQLITE_SYNCHRONOUS", cls.sqlite_synchronous),
            seed=int(seed) if seed else None,
            log_level=env.get("OCTOBANDIT_LOG_LEVEL", cls.log_level),
            tick_seconds=float(env.get("OCTOBANDIT_TICK_SECONDS", cls.tick_seconds)),
            refresh_seconds=float(env.get("OCTOBANDIT_REFRESH_SECONDS", cls.refresh_seconds)),
            wal_soft_mb=float(env.get("OCTOBANDIT_WAL_SOFT_MB", cls.wal_soft_mb)),
            wal_max_mb=float(env.get("OCTOBANDIT_WAL_MAX_MB", cls.wal_max_mb)),
            allowed_hosts=tuple(
                h.strip() for h in env.get("OCTOBANDIT_ALLOWED_HOSTS", "").split(",") if h.strip()
            ),
            header_timeout=float(env.get("OCTOBANDIT_HEADER_TIMEOUT", cls.header_timeout)),
            engine_socket=env.get("OCTOBANDIT_ENGINE_SOCKET") or None,
            body_timeout=float(env.get("OCTOBANDIT_BODY_TIMEOUT", cls.body_timeout)),
            keep_alive_timeout=float(
                env.get("OCTOBANDIT_KEEP_ALIVE_TIMEOUT", cls.keep_alive_timeout)
            ),
            max_connections=int(env.get("OCTOBANDIT_MAX_CONNECTIONS", cls.max_connections)),
            metrics=_flag(env.get("OCTOBANDIT_METRICS"), cls.metrics),
            public_metrics=_flag(env.get("OCTOBANDIT_PUBLIC_METRICS"), cls.public_metrics),
            auth=_flag(env.get("OCTOBANDIT_AUTH"), cls.auth),
            auth_cache_seconds=float(
                env.get("OCTOBANDIT_AUTH_CACHE_SECONDS", cls.auth_cache_seconds)
            ),
            auth_failure_burst=int(
                env.get("OCTOBANDIT_AUTH_FAILURE_BURST", cls.auth_failure_burst)
            ),
            jwt_secret=env.get("OCTOBANDIT_JWT_SECRET") or None,
            jwks_file=env.get("OCTOBANDIT_JWKS") or None,
            jwt_audience=env.get("OCTOBANDIT_JWT_AUDIENCE") or None,
            jwt_issuer=env.get("OCTOBANDIT_JWT_ISSUER") or None,
            jwt_scope_claim=env.get("OCTOBANDIT_JWT_SCOPE_CLAIM") or cls.jwt_scope_claim,
            jwt_experiments_claim=(
                env.get("OCTOBANDIT_JWT_EXPERIMENTS_CLAIM") or cls.jwt_experiments_claim
            ),
        )


def _flag(value: str | None, default: bool) -> bool:
    """An on/off environment variable: 1, true, yes, on (any case) or 0, false, no, off."""
    if value is None or not value.strip():
        return default
    text = value.strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"not an on/off value: {value!r}")
