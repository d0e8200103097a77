"""The HTTP workers' side of the engine process (see :mod:`octobandit.engine.server`).

:class:`RemoteEngine` has the interface of :class:`~octobandit.engine.GroupCommitter`
that the doors use (``data``, ``call``, ``health``), over a Unix socket: a
worker's data-plane requests that arrive together travel in one message, and
while a message is in flight the next ones gather. The worker's event loop
only moves bytes: bodies are decoded, executed and answered in JSON by the
engine process.
"""

from __future__ import annotations

import asyncio
import pickle
from typing import Any

import msgspec

from octobandit.engine.ops import Answer, error_answer
from octobandit.engine.server import HEADER
from octobandit.engine.specs import Limits
from octobandit.errors import EngineUnavailable

_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder().decode
_UNAVAILABLE = "the engine process is not answering (restarting?): nothing was acknowledged"


class _Channel(asyncio.Protocol):
    def __init__(self, owner: RemoteEngine) -> None:
        self.owner = owner
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a stream transport

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        pos, end = 0, len(buffer)
        while end - pos >= 4:
            size = int.from_bytes(buffer[pos : pos + 4], "big")
            if end - pos - 4 < size:
                break
            msg_id, body = _decode(buffer[pos + 4 : pos + 4 + size])
            pos += 4 + size
            self.owner._answered(msg_id, body)
        del buffer[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner._lost(self)

    def send(self, message: list[Any]) -> None:
        frame = _encode(message)
        assert self.transport is not None
        self.transport.write(HEADER.pack(len(frame)) + frame)


class RemoteEngine:
    """An engine in another process, reached over the Unix socket at ``path``."""

    def __init__(
        self,
        path: str,
        limits: Limits | None = None,
        *,
        max_batch: int = 256,
        in_flight: int = 2,
        health_timeout: float = 2.0,
    ) -> None:
        self.path = path
        self.limits = limits or Limits()
        self.max_batch = max_batch
        self.in_flight = in_flight
        self.health_timeout = health_timeout
        self._channel: _Channel | None = None
        self._connecting: asyncio.Lock | None = None
        self._next_id = 0
        self._waiting: dict[int, tuple[bool, Any]] = {}  # id -> (is data, future(s))
        self._pending: list[tuple[list[Any], asyncio.Future[Answer]]] = []
        self._sent = 0  # data messages in flight
        self._scheduled = False

    # --------------------------------------------------------------- the doors' API
    async def data(self, experiment_id: str, action: str, raw: bytes) -> Answer:
        """Serve a data-plane body: error (``None``) and JSON answer, after its group committed."""
        try:
            channel = self._channel or await self._connect()
        except EngineUnavailable as exc:
            return error_answer(exc)
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._pending.append(([experiment_id, action, raw], future))
        if not self._scheduled and self._sent < self.in_flight:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush, channel)
        try:
            return await future
        except EngineUnavailable as exc:
            return error_answer(exc)

    async def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Run the engine method ``name`` in the engine process; its errors are raised here."""
        future = await self._request("call", pickle.dumps((name, args, kwargs)))
        ok, value = pickle.loads(await future)
        if not ok:
            raise value
        return value

    async def health(self) -> dict[str, str] | None:
        """``None`` while the storage takes writes, else ``{"reason", "message"}``."""
        try:
            future = await self._request("health", None)
            answer: dict[str, str] | None = await asyncio.wait_for(future, self.health_timeout)
        except (EngineUnavailable, TimeoutError):
            return {"reason": "engine_unavailable", "message": _UNAVAILABLE}
        return answer

    def close(self) -> None:
        if self._channel is not None and self._channel.transport is not None:
            self._channel.transport.close()
        self._channel = None

    # ---------------------------------------------------------------- plumbing
    async def _connect(self) -> _Channel:
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._channel is None:
                loop = asyncio.get_running_loop()
                try:
                    transport, channel = await loop.create_unix_connection(
                        lambda: _Channel(self), self.path
                    )
                except OSError:
                    raise EngineUnavailable(_UNAVAILABLE) from None
                channel.transport = transport  # connection_made may not have run yet
                self._channel = channel
            return self._channel

    async def _request(self, kind: str, body: Any) -> asyncio.Future[Any]:
        channel = self._channel or await self._connect()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._next_id += 1
        self._waiting[self._next_id] = (False, future)
        channel.send([self._next_id, kind, body])
        return future

    def _flush(self, channel: _Channel) -> None:
        self._scheduled = False
        if not self._pending:
            return
        if channel is not self._channel:  # the connection was lost meanwhile
            self._fail(self._pending)
            self._pending = []
            return
        while self._pending and self._sent < self.in_flight:
            batch = self._pending[: self.max_batch]
            del self._pending[: self.max_batch]
            self._next_id += 1
            self._waiting[self._next_id] = (True, [future for _, future in batch])
            self._sent += 1
            channel.send([self._next_id, "data", [item for item, _ in batch]])

    def _answered(self, msg_id: int, body: Any) -> None:
        entry = self._waiting.pop(msg_id, None)
        if entry is None:
            return
        is_data, waiter = entry
        if not is_data:
            if not waiter.done():
                waiter.set_result(body)
            return
        self._sent -= 1
        for future, (error, answer) in zip(waiter, body, strict=True):
            if not future.done():
                future.set_result((error, answer))
        if self._pending and not self._scheduled and self._channel is not None:
            self._flush(self._channel)

    def _lost(self, channel: _Channel) -> None:
        if channel is not self._channel:
            return
        self._channel = None
        waiting, self._waiting = self._waiting, {}
        self._sent = 0
        for is_data, waiter in waiting.values():
            for future in waiter if is_data else [waiter]:
                if not future.done():
                    future.set_exception(EngineUnavailable(_UNAVAILABLE))
        pending, self._pending = self._pending, []
        self._fail(pending)

    @staticmethod
    def _fail(items: list[tuple[list[Any], asyncio.Future[Answer]]]) -> None:
        for _, future in items:
            if not future.done():
                future.set_exception(EngineUnavailable(_UNAVAILABLE))
