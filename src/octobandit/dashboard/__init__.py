"""The web dashboard: static files served at ``/ui/``, built on the public ``/v1`` API.

The page (``static/``: HTML, CSS and hand-written JavaScript drawing SVG charts)
references only files of this service: no CDN, no build step, it works offline.
It reads and changes experiments with ``fetch`` calls to ``/v1/...``, sending the
API key typed into it as ``Authorization: Bearer <key>``. This part imports
nothing of the engine or the storage: it is files plus :func:`install_dashboard`.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from starlette.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

STATIC = Path(str(files("octobandit.dashboard") / "static"))

#: the page loads and talks to this service only (no inline script or style)
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-cache"),  # revalidate (ETag): an upgrade's files are seen
]


class _SecurityHeaders:
    """Adds the Content-Security-Policy (and friends) to every answer of ``app``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name for name, _ in _HEADERS}
                kept = [(k, v) for k, v in message.get("headers", []) if k not in names]
                message = {**message, "headers": [*kept, *_HEADERS]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def install_dashboard(app: FastAPI, path: str = "/ui") -> None:
    """Serve the dashboard's files under ``path + "/"`` (``index.html`` at ``path + "/"``)
    and redirect ``path`` there."""
    app.mount(path, _SecurityHeaders(StaticFiles(directory=STATIC, html=True)), name="ui")

    @app.get(path, include_in_schema=False)
    async def dashboard_root(request: Request) -> Response:
        return RedirectResponse(request.scope.get("root_path", "") + path + "/", 307)
