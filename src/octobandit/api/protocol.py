"""The HTTP/1.1 connection protocol: uvicorn's httptools protocol with two more limits.

- **Header timeout**: a connection must send a request's complete headers within
  ``OCTOBANDIT_HEADER_TIMEOUT`` seconds of opening (or of the first byte of a
  later request); otherwise it gets 408 and is closed. A connection that sends
  nothing at all is closed too. (uvicorn's keep-alive timeout only runs between
  requests, after a response.)
- **Malformed requests** (the HTTP parser's 400) are answered in JSON too.
- **Connection limit**: beyond ``OCTOBANDIT_MAX_CONNECTIONS`` open connections in
  a worker, a new connection closes the longest-idle one (connected but sending
  nothing, or between keep-alive requests) to make room; when every connection
  is busy with a request, the new connection's request is answered 503 JSON and
  the connection closed. So idle connections can never lock requests out.

The settings are read from the environment once per worker process (``octobandit
serve`` sets them for its workers). Used as ``uvicorn.run(..., http=PROTOCOL)``.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from octobandit.config import Settings
from octobandit.wire import error_body

PROTOCOL = "octobandit.api.protocol:GuardedHttpToolsProtocol"


@functools.cache
def _settings() -> Settings:
    return Settings.from_env()


def _raw_response(status: str, code: str, message: str) -> bytes:
    body = error_body(code, message)
    head = (
        f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


async def _over_limit(scope: Any, receive: Any, send: Any) -> None:
    """The ASGI answer to a request on a connection over the limit."""
    body = error_body("too_many_connections", "too many open connections: retry later")
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
                (b"retry-after", b"1"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header deadline and a connection limit."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = _settings()
        self.header_timeout = settings.header_timeout
        self.max_connections = settings.connection_limit()
        self._header_timer: asyncio.TimerHandle | None = None
        self._over_limit = False
        self._headers_pending = False
        #: when the connection last became idle (no request in flight); None while busy
        self.idle_since: float | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.idle_since = self.loop.time()
        if len(self.connections) > self.max_connections:
            self._over_limit = not self._evict_idle()
        self._arm_header_timer()

    def _evict_idle(self) -> bool:
        """Close the longest-idle other connection to make room; False if every one is busy."""
        idle = [
            (c.idle_since, c)
            for c in self.connections
            if isinstance(c, GuardedHttpToolsProtocol)
            and c is not self
            and c.idle_since is not None
        ]
        if not idle:
            return False
        _, oldest = min(idle, key=lambda pair: pair[0])
        oldest.idle_since = None
        oldest.transport.close()
        return True

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and not self.pipeline:
            self.idle_since = self.loop.time()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.idle_since = None
        self._headers_pending = True

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        # a request whose headers came whole in one read needs no timer (the usual case)
        pending = self._headers_pending and self._header_timer is None
        if pending and not self.transport.is_closing():
            self._arm_header_timer()

    def on_headers_complete(self) -> None:
        self._headers_pending = False
        self._disarm_header_timer()
        if not self._over_limit:
            super().on_headers_complete()
            return
        app, self.app = self.app, _over_limit
        try:
            super().on_headers_complete()
        finally:
            self.app = app

    def send_400_response(self, msg: str) -> None:
        """A request the HTTP parser rejects: JSON like every other answer, then close."""
        self._disarm_header_timer()
        self.transport.write(_raw_response("400 Bad Request", "bad_request", msg))
        self.transport.close()

    def _arm_header_timer(self) -> None:
        if self.header_timeout > 0:
            self._header_timer = self.loop.call_later(self.header_timeout, self._headers_late)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is None or self.cycle.response_complete:  # not inside a request
            self.transport.write(
                _raw_response(
                    "408 Request Timeout",
                    "timeout",
                    f"request headers not received within {self.header_timeout:g} s",
                )
            )
        self.transport.close()
