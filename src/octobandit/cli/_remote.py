"""What the commands that talk to a running service share: the connection options, the
exit codes, JSON and table output, and errors on standard error.

Every such command goes through the SDK (:class:`octobandit.client.Client`): the same
requests, retries and error classes as a Python program.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

if TYPE_CHECKING:
    from rich.table import Table

    from octobandit.client import Client

#: the exit codes of the service commands (docs/cli.md)
OK = 0
ERROR = 1  # anything else: a server error (5xx), an aborted confirmation ...
USAGE = 2  # a bad option or argument (typer's own code)
NOT_FOUND = 3  # 404: no such experiment, arm or decision
INVALID = 4  # 400, 409, 422: the service refused the request (nothing was written)
AUTH = 5  # 401, 403: no key, a wrong key, or a key without the scope
UNREACHABLE = 6  # no answer (connection refused, timeout) or 503 (unavailable)

EXIT_CODES_HELP = (
    "Exit codes: 0 ok, 1 other error, 2 usage error, 3 not found (404), "
    "4 refused as invalid or conflicting (400, 409, 422), 5 authentication (401, 403), "
    "6 service unreachable or unavailable (503)."
)

Url = Annotated[
    str,
    typer.Option(
        "--url",
        envvar="OCTOBANDIT_URL",
        help="The service's base URL.",
        rich_help_panel="Connection",
    ),
]
ApiKey = Annotated[
    str,
    typer.Option(
        "--api-key",
        envvar="OCTOBANDIT_API_KEY",
        help="API key, sent as 'Authorization: Bearer KEY' (none if empty).",
        show_default=False,
        rich_help_panel="Connection",
    ),
]
Timeout = Annotated[
    float,
    typer.Option(
        "--timeout",
        min=0.1,
        help="Seconds for each try of a request.",
        rich_help_panel="Connection",
    ),
]
AsJson = Annotated[
    bool,
    typer.Option(
        "--json",
        help="Print the service's answer as JSON (one object, the API's wire format).",
    ),
]
DEFAULT_URL = "http://127.0.0.1:8000"


def fail(message: str, code: int = ERROR) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def exit_code(exc: BaseException) -> int:
    """The exit code for an error the SDK raised."""
    from octobandit.client import OctobanditHTTPError, ServiceUnreachable

    if isinstance(exc, ServiceUnreachable):
        return UNREACHABLE
    if isinstance(exc, OctobanditHTTPError):
        if exc.status == 404:
            return NOT_FOUND
        if exc.status in (400, 409, 422):
            return INVALID
        if exc.status in (401, 403):
            return AUTH
        if exc.status == 503:
            return UNREACHABLE
    return ERROR


@contextmanager
def connect(url: str, api_key: str, timeout: float) -> Iterator[Client]:
    """A client for one command; an SDK error becomes its message on standard error
    and the exit code for it."""
    import httpx

    from octobandit.client import Client, Retry
    from octobandit.errors import OctobanditError

    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        raise typer.BadParameter(
            f"an http:// or https:// URL, e.g. {DEFAULT_URL}; got {url!r}", param_hint="--url"
        )
    client = Client(url, api_key or None, timeout, retry=Retry(attempts=3))
    try:
        with client:
            yield client
    except OctobanditError as exc:
        fail(str(exc) if str(exc) else type(exc).__name__, exit_code(exc))


def json_option(text: str | None, what: str) -> Any:
    """A JSON value given on the command line (``None`` when absent)."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise typer.BadParameter(f"not JSON: {exc}", param_hint=what) from None


def json_object(text: str | None, what: str) -> dict[str, Any] | None:
    value = json_option(text, what)
    if value is not None and not isinstance(value, dict):
        raise typer.BadParameter("a JSON object", param_hint=what)
    return value


def spec_or_name(text: str | None, what: str) -> str | dict[str, Any] | None:
    """A type name (``thompson``) or a JSON object (``{"type": ...}``)."""
    if text is None or not text.lstrip().startswith("{"):
        return text
    return json_object(text, what)


def print_json(value: Any) -> None:
    """A wire object (msgspec Struct), or plain data, as one JSON document."""
    import msgspec

    sys.stdout.write(msgspec.json.encode(msgspec.to_builtins(value)).decode() + "\n")


def print_table(table: Table) -> None:
    from rich.console import Console
    from rich.measure import Measurement

    console = Console()
    if not console.is_terminal:  # piped or captured: nothing cut to fit 80 columns
        wide = Measurement.get(console, console.options.update_width(100_000), table)
        console = Console(width=max(wide.maximum, 40))
    console.print(table)


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Table:
    from rich.table import Table

    t = Table(title=title, title_justify="left")
    for c in columns:
        # numbers and names stay whole; free-form values fold
        free = c in FREE_FORM
        t.add_column(c, overflow="fold" if free else "ellipsis", no_wrap=not free)
    for row in rows:
        t.add_row(*(cell(v) for v in row))
    return t


#: table columns whose values are free-form JSON or text: folded over several lines
FREE_FORM = frozenset({"value", "payload", "prior", "name"})


def cell(value: Any) -> str:
    """A table cell (rich markup in the value is escaped)."""
    from rich.markup import escape

    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict | list):
        return escape(json.dumps(value, ensure_ascii=False))
    return escape(str(value))


def output(value: Any, as_json: bool, human: Callable[[], None]) -> None:
    """``--json``: the value as JSON; otherwise ``human()`` prints it for people."""
    if as_json:
        print_json(value)
    else:
        human()


def msgspec_dict(value: Any) -> dict[str, Any]:
    """A wire object as a plain dict (``None`` fields left out)."""
    import msgspec

    data = msgspec.to_builtins(value)
    return {k: v for k, v in data.items() if v is not None}
