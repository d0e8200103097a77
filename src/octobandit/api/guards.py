"""Pure-ASGI guards in front of every route (data plane and control plane).

:class:`Guard` is the outermost layer of the app. In one pass over the request
headers it

- refuses a ``Host`` that is not a loopback name when the service is bound to
  a loopback address (DNS rebinding), unless it is an allowed host: 403;
- refuses a body that is not ``application/json`` on POST, PUT, PATCH and
  DELETE: 415, also for a form or text content type without a body (what a web
  page can send without a CORS preflight). A request without a
  ``Content-Type`` is accepted only when it has no body;
- gives the body a deadline: a client that stalls while sending it gets 408;
- answers JSON 500 for any exception that escapes the app before the answer
  has started (a plain-text 500 is never sent).

:class:`JsonDepthLimit` refuses JSON nested deeper than the documented
limit (400 ``too_deep``) before anything decodes it recursively; the data plane
calls :func:`too_deep` on the bodies it reads itself.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Awaitable, Generator, Iterable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from octobandit.api.jsondepth import too_deep, too_deep_message
from octobandit.wire import error_body

log = logging.getLogger("octobandit.api")

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]"})
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
JSON_TYPE = b"application/json"


def is_loopback_address(host: str) -> bool:
    """Whether a bind address only accepts local connections."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _host_name(value: bytes) -> str:
    """The host of a Host header, without its port; IPv6 literals keep their brackets."""
    text = value.decode("latin-1").strip().lower()
    if text.startswith("["):
        return text[: text.find("]") + 1]
    return text.rpartition(":")[0] if ":" in text else text


def allowed_host_set(allowed: Iterable[str]) -> frozenset[str] | None:
    """The Host names accepted on a loopback bind (``None``: every host, from ``*``)."""
    names = set(LOOPBACK_NAMES)
    for entry in allowed:
        entry = entry.strip()
        if entry == "*":
            return None
        if entry:
            names.add(_host_name(entry.encode("latin-1")))
    return frozenset(names)


class BodyTimeout(HTTPException):
    """The request body did not arrive in time (408)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(408, f"request body not received within {seconds:g} s")


class _NoTask:
    def done(self) -> bool:
        return True


_NO_TASK: Any = _NoTask()


class _Resume:
    """Awaitable: go on driving an ``__await__`` iterator that already yielded ``first``."""

    __slots__ = ("first", "read")

    def __init__(self, read: Generator[Any, Any, Message], first: Any) -> None:
        self.read, self.first = read, first

    def __await__(self) -> Generator[Any, Any, Message]:
        read, value = self.read, self.first
        while True:
            try:
                sent = yield value
            except BaseException as exc:  # cancellation: pass it on
                try:
                    value = read.throw(exc)
                except StopIteration as done:
                    result: Message = done.value
                    return result
            else:
                try:
                    value = read.send(sent)
                except StopIteration as done:
                    result = done.value
                    return result


class _BodyTimer:
    """A deadline for the whole request body, armed at the first read.

    Cheaper than ``asyncio.timeout`` around every ``receive``: one timer per
    request, cancelled as soon as the last chunk is in; when it fires, the
    request's task is cancelled and the cancellation turned into a 408.
    """

    __slots__ = ("_receive", "fired", "handle", "seconds", "task")

    def __init__(self, receive: Receive, seconds: float) -> None:
        self._receive = receive
        self.seconds = seconds
        self.fired = False
        self.handle: asyncio.TimerHandle | None = None
        self.task: asyncio.Task[Any] | None = None

    async def receive(self) -> Message:
        if self.task is None:
            # fast path: a body already received answers without suspending, and needs
            # no timer; otherwise the timer is armed and the read continues as usual
            read = self._receive().__await__()
            try:
                first = read.send(None)
            except StopIteration as done:
                message: Message = done.value
                if message["type"] != "http.request" or not message.get("more_body", False):
                    self.task = _NO_TASK
                    return message
                self._arm()
                return message
            self._arm()
            return await self._guarded(_Resume(read, first))
        return await self._guarded(self._receive())

    def _arm(self) -> None:
        self.task = asyncio.current_task()
        self.handle = asyncio.get_running_loop().call_later(self.seconds, self._fire)

    async def _guarded(self, read: Awaitable[Message]) -> Message:
        try:
            message = await read
        except asyncio.CancelledError:
            if self.fired:
                self.uncancel()
                raise BodyTimeout(self.seconds) from None
            raise
        if message["type"] != "http.request" or not message.get("more_body", False):
            self.stop()
        return message

    def _fire(self) -> None:
        self.handle = None
        if self.task is not None and not self.task.done():
            self.fired = True
            self.task.cancel()

    def uncancel(self) -> None:
        if isinstance(self.task, asyncio.Task) and self.task.cancelling():
            self.task.uncancel()

    def stop(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None


def _respond(status: int, code: str, message: str, close: bool = False) -> list[Message]:
    body = error_body(code, message)
    headers = [(b"content-type", JSON_TYPE), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    return [
        {"type": "http.response.start", "status": status, "headers": headers},
        {"type": "http.response.body", "body": body},
    ]


class Guard:
    """The outermost pure-ASGI layer (see the module docstring).

    ``hosts``: Host names accepted, or ``None`` to accept any (not bound to a
    loopback address, or ``*`` allowed). ``body_timeout``: seconds for the whole
    body to arrive, counted from the first read (``None``: no deadline).
    """

    def __init__(
        self, app: ASGIApp, *, hosts: frozenset[str] | None, body_timeout: float | None
    ) -> None:
        self.app = app
        self.hosts = hosts
        self.body_timeout = body_timeout
        self._seen_hosts: set[bytes] = set()  # Host header values already accepted

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host = ctype = None
        has_body = False
        for key, value in scope["headers"]:
            if key == b"host":
                host = value
            elif key == b"content-type":
                ctype = value
            elif key == b"content-length":
                has_body = value != b"0"
            elif key == b"transfer-encoding":
                has_body = True
        refusal = self._refuse(scope["method"], host, ctype, has_body)
        if refusal is not None:
            for message in _respond(*refusal):
                await send(message)
            return
        started = False
        timer: _BodyTimer | None = None

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if timer is not None and timer.fired:  # the rest of the body may still come
                    message = {
                        **message,
                        "headers": [*message["headers"], (b"connection", b"close")],
                    }
            await send(message)

        app_receive = receive
        if has_body and self.body_timeout is not None:
            timer = _BodyTimer(receive, self.body_timeout)
            app_receive = timer.receive
        try:
            try:
                await self.app(scope, app_receive, guarded_send)
            except asyncio.CancelledError:
                if timer is None or not timer.fired:
                    raise
                timer.uncancel()  # our deadline, not a shutdown: answer 408
                raise BodyTimeout(timer.seconds) from None
            finally:
                if timer is not None:
                    timer.stop()
        except Exception as exc:
            timed_out = timer is not None and timer.fired
            if started:  # the answer is (partly) sent: nothing else can be said
                log.exception("request failed after its response started")
                return
            if isinstance(exc, HTTPException) and exc.status_code < 500:
                code = _CODES.get(exc.status_code, "error")
                answer = _respond(exc.status_code, code, str(exc.detail), close=timed_out)
            else:
                log.exception("unhandled error")
                answer = _respond(500, "internal", "internal error", close=timed_out)
            for out in answer:
                await send(out)

    def _refuse(
        self, method: str, host: bytes | None, ctype: bytes | None, has_body: bool
    ) -> tuple[int, str, str] | None:
        hosts = self.hosts
        if hosts is not None and host is not None and host not in self._seen_hosts:
            name = _host_name(host)
            if name not in hosts and not _loopback_literal(name):
                return (
                    403,
                    "forbidden_host",
                    f"Host {name!r} is not allowed: the service is bound to a loopback address;"
                    " list the name in --allowed-hosts (OCTOBANDIT_ALLOWED_HOSTS) to accept it",
                )
            if len(self._seen_hosts) < 64:
                self._seen_hosts.add(host)
        if method in BODY_METHODS and ctype != JSON_TYPE:
            if ctype is None:
                if has_body:
                    return (
                        415,
                        "unsupported_media_type",
                        "a request body needs Content-Type: application/json",
                    )
            elif ctype.partition(b";")[0].strip().lower() != JSON_TYPE:
                return (
                    415,
                    "unsupported_media_type",
                    f"Content-Type must be application/json, not {ctype.decode('latin-1')!r}",
                )
        return None


def _loopback_literal(name: str) -> bool:
    try:
        return ipaddress.ip_address(name.strip("[]")).is_loopback
    except ValueError:
        return False


_CODES = {400: "bad_request", 408: "timeout", 413: "too_large"}


class JsonDepthLimit:
    """Refuse request bodies nested deeper than ``max_depth`` (400 ``too_deep``).

    Reads the whole body (the size limit applies underneath), checks it, and
    replays it to the app; requests without a body pass untouched.
    """

    def __init__(self, app: ASGIApp, max_depth: int) -> None:
        self.app = app
        self.max_depth = max_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        messages: list[Message] = []
        try:
            while True:
                message = await receive()
                messages.append(message)
                if message["type"] != "http.request":
                    break
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    break
        except HTTPException as exc:  # too large, or too slow: raised by the layers below
            for out in _respond(exc.status_code, _CODES.get(exc.status_code, "error"), exc.detail):
                await send(out)
            return
        if too_deep(b"".join(chunks), self.max_depth):
            for out in _respond(400, "too_deep", too_deep_message(self.max_depth)):
                await send(out)
            return
        replay: list[Message] = messages
        if all(m["type"] == "http.request" for m in messages):
            replay = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

        async def replay_receive() -> Message:
            return replay.pop(0) if replay else await receive()

        await self.app(scope, replay_receive, send)
