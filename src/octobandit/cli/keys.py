"""`octobandit keys create|list|revoke`: API keys, directly on the store."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from typing import Any

import typer

from octobandit.cli._app import app

keys_app = typer.Typer(
    help="API keys for 'serve --auth' (stored hashed; a key is shown once, at creation).",
    no_args_is_help=True,
)
app.add_typer(keys_app, name="keys")

_STORE = typer.Option(
    "octobandit.db",
    "--store",
    "--db",
    envvar=["OCTOBANDIT_STORE", "OCTOBANDIT_DB"],
    help="The service's store: an SQLite file or a PostgreSQL URL.",
)
_JSON = typer.Option(False, "--json", help="Print JSON instead of text.")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _expiry(text: str, now: float) -> float | None:
    """``--expires``: a duration (``90d``, ``12h``, ``3600``) or an ISO 8601 time."""
    if not text:
        return None
    match = _DURATION.match(text.strip())
    if match:
        return now + float(match.group(1)) * _UNITS[match.group(2)]
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            "a duration (30d, 12h, 45m, 3600) or an ISO 8601 time", param_hint="--expires"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def _open(store: str) -> Any:
    from octobandit.errors import StorageUnusable
    from octobandit.storage import open_store

    try:
        return open_store(store)
    except StorageUnusable as exc:
        typer.echo(f"octobandit: {exc.message}", err=True)
        raise typer.Exit(1) from None


@keys_app.command("create")
def create(
    name: str = typer.Option(..., "--name", help="What the key is for (shown in listings)."),
    scope: list[str] = typer.Option(
        ..., "--scope", help="read, decide or admin (repeat it, or comma-separate)."
    ),
    experiment: list[str] = typer.Option(
        [], "--experiment", help="Limit the key to this experiment (repeat it; none: all)."
    ),
    expires: str = typer.Option(
        "", "--expires", help="Expiry: a duration (90d, 12h, 45m, 3600 s) or an ISO 8601 time."
    ),
    store: str = _STORE,
    as_json: bool = _JSON,
) -> None:
    """Create a key and print it (once: only its hash is stored)."""
    from octobandit.api.keys import new_key
    from octobandit.errors import InvalidInput

    now = time.time()
    expires_at = _expiry(expires, now)
    if expires_at is not None and expires_at <= now:
        raise typer.BadParameter("the expiry is in the past", param_hint="--expires")
    scopes = [s for entry in scope for s in entry.split(",")]
    try:
        key, record = new_key(name, scopes, experiment or None, expires_at, now)
    except InvalidInput as exc:
        raise typer.BadParameter(exc.message, param_hint="--scope") from None
    storage = _open(store)
    try:
        storage.add_api_key(record)
    finally:
        storage.close()
    if as_json:
        typer.echo(json.dumps({"key": key, **_view(record)}))
    else:
        typer.echo(key)
        typer.echo(
            f"id {record.id}, scopes {','.join(record.scopes)}"
            + (f", experiments {','.join(record.experiments)}" if record.experiments else "")
            + (f", expires {_iso(record.expires_at)}" if record.expires_at else "")
            + ". Keep the key now: it cannot be shown again.",
            err=True,
        )


def _view(record: Any) -> dict[str, Any]:
    now = time.time()
    if record.revoked_at is not None:
        status = "revoked"
    elif record.expires_at is not None and record.expires_at <= now:
        status = "expired"
    else:
        status = "active"
    return {
        "id": record.id,
        "prefix": record.prefix,
        "name": record.name,
        "scopes": list(record.scopes),
        "experiments": None if record.experiments is None else list(record.experiments),
        "created_at": _iso(record.created_at),
        "expires_at": _iso(record.expires_at),
        "revoked_at": _iso(record.revoked_at),
        "status": status,
    }


@keys_app.command("list")
def list_keys(store: str = _STORE, as_json: bool = _JSON) -> None:
    """List the keys: id, first characters, name, scopes, experiments, status."""
    storage = _open(store)
    try:
        views = [_view(r) for r in storage.api_keys()]
    finally:
        storage.close()
    if as_json:
        typer.echo(json.dumps({"keys": views}))
        return
    for v in views:
        typer.echo(
            f"{v['id']}  {v['prefix']}…  {v['status']:<7}  {','.join(v['scopes']):<17}  "
            f"{','.join(v['experiments']) if v['experiments'] is not None else '*'}  "
            f"created {v['created_at']}"
            + (f"  expires {v['expires_at']}" if v["expires_at"] else "")
            + f"  {v['name']}"
        )


@keys_app.command("revoke")
def revoke(
    key_id: str = typer.Argument(..., help="The key's id (key_…), as 'keys list' shows it."),
    store: str = _STORE,
    as_json: bool = _JSON,
) -> None:
    """Revoke a key: refused by every worker and replica within 2 × the key cache time (2 s)."""
    storage = _open(store)
    try:
        found = storage.revoke_api_key(key_id, time.time())
    finally:
        storage.close()
    if not found:
        typer.echo(f"octobandit: no key {key_id!r}", err=True)
        raise typer.Exit(1)
    if as_json:
        typer.echo(json.dumps({"revoked": key_id}))
    else:
        typer.echo(f"revoked {key_id}")
