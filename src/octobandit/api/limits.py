"""A pure-ASGI request body limit (413 with a JSON error), cheap on the hot path."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from octobandit.api.hot import error_response


class BodyLimit:
    """Reject bodies over ``limit`` bytes, declared (Content-Length) or streamed (chunked).

    A streamed body that grows past the limit raises a 413 ``HTTPException``
    from ``receive``, which the app's exception handler turns into JSON.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for key, value in scope["headers"]:
            if key == b"content-length":
                if not value.isdigit():
                    response = error_response(400, "bad_request", "invalid Content-Length")
                    await response(scope, receive, send)
                    return
                if int(value) > self.limit:
                    response = error_response(
                        413, "too_large", f"request body exceeds {self.limit} bytes"
                    )
                    await response(scope, receive, send)
                    return
                await self.app(scope, receive, send)
                return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise HTTPException(413, f"request body exceeds {self.limit} bytes")
            return message

        await self.app(scope, counting_receive, send)
