"""The engine process: one engine, one writer, serving the HTTP workers over a Unix socket.

``octobandit serve`` starts it before the HTTP workers (``python -m
octobandit.engine.server SOCKET``) and every worker talks to it through a
:class:`~octobandit.engine.remote.RemoteEngine`. The engine's work (policies,
SQLite, group commits, snapshot ticks) thus runs in its own process, beside the
HTTP workers instead of competing with them for one interpreter lock, and
however many workers there are, the database has a single writer.

Protocol: frames of a 4-byte big-endian length and a msgpack array.
Requests are ``[id, kind, body]``:

- ``data``: ``[[experiment_id, action, raw_body], ...]``: data-plane requests,
  answered ``[[error, json_body], ...]`` in the same order (``error``: ``None``, or
  the class name of the error that refused the request), after the group
  that holds them has committed (requests from every worker are grouped into
  one transaction);
- ``call``: a pickled ``(method, args, kwargs)`` of the engine, answered with a
  pickled ``(True, result)`` or ``(False, error)``;
- ``health``: answered at once with :meth:`Engine.health` (no storage call).

Answers are ``[id, body]``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import selectors
import shutil
import signal
import socket
import struct
import sys
import time
from typing import Any

import msgspec

from octobandit.engine.core import Engine
from octobandit.engine.ops import Op, error_answer, ok_answer, op_from_body
from octobandit.errors import OctobanditError, StorageUnavailable

log = logging.getLogger("octobandit.engine")
HEADER = struct.Struct("!I")
#: the private directory :class:`~octobandit.engine.process.EngineProcess` makes for the socket
PRIVATE_DIR_PREFIX = "octobandit-engine-"
#: the HTTP workers' metrics directory that ``octobandit serve`` makes in it
METRICS_SUBDIR = "metrics"
_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder().decode
_Message = tuple["_Peer", int, Any]


class _Peer:
    """One connected HTTP worker: its socket and the bytes of a frame not yet complete."""

    def __init__(self, conn: socket.socket) -> None:
        conn.settimeout(10.0)  # answers are sent whole; a worker that stops reading is dropped
        self.conn = conn
        self.buffer = bytearray()
        self.closed = False

    def frames(self) -> list[Any] | None:
        """The messages that arrived whole (the socket is readable); ``None`` at EOF."""
        try:
            chunk = self.conn.recv(1 << 20)
        except OSError:
            return None
        if not chunk:
            return None
        buffer = self.buffer
        buffer += chunk
        out = []
        pos, end = 0, len(buffer)
        while end - pos >= HEADER.size:
            (size,) = HEADER.unpack_from(buffer, pos)
            if end - pos - HEADER.size < size:
                break
            out.append(_decode(buffer[pos + HEADER.size : pos + HEADER.size + size]))
            pos += HEADER.size + size
        del buffer[:pos]
        return out

    def send(self, msg_id: int, body: Any) -> None:
        if self.closed:
            return
        frame = _encode([msg_id, body])
        try:
            self.conn.sendall(HEADER.pack(len(frame)) + frame)
        except OSError:  # the worker went away (or stopped reading): forget it
            self.close()

    def close(self) -> None:
        self.closed = True
        with contextlib.suppress(OSError):
            self.conn.close()


class EngineServer:
    """Serves one :class:`Engine` on a Unix socket; :meth:`serve` runs until :meth:`stop`.

    One thread does everything: it reads what the workers sent, answers health
    checks, runs control calls, commits the data-plane requests at hand as one
    group and sends the answers, then looks for more. No hand-off between threads
    sits on the path of a request.
    """

    def __init__(
        self, engine: Engine, path: str, *, tick_seconds: float = 1.0, max_group: int = 512
    ) -> None:
        self.engine = engine
        self.path = path
        self.tick_seconds = tick_seconds
        self.max_group = max_group
        self._data: list[_Message] = []
        self._calls: list[_Message] = []
        self._stopping = False
        self._parent = os.getppid()

    def stop(self) -> None:
        """Finish the work at hand, then return from :meth:`serve` (signal handlers too)."""
        self._stopping = True

    def serve(self, listener: socket.socket | None = None) -> None:
        """Listen on ``path`` and serve on this thread until :meth:`stop`."""
        if listener is None:
            listener = bind(self.path)
        listener.setblocking(False)
        selector = selectors.DefaultSelector()
        selector.register(listener, selectors.EVENT_READ, None)
        try:
            self._run(selector, listener)
        finally:
            for key in list(selector.get_map().values()):
                if isinstance(key.data, _Peer):
                    key.data.close()
            selector.close()
            listener.close()
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            directory = os.path.dirname(self.path)
            if os.path.basename(directory).startswith(PRIVATE_DIR_PREFIX):
                if self._stopping:  # the service's HTTP workers are gone (or going) too
                    shutil.rmtree(os.path.join(directory, METRICS_SUBDIR), ignore_errors=True)
                with contextlib.suppress(OSError):  # the service may be gone without cleaning up
                    os.rmdir(directory)  # only when empty

    def _run(self, selector: selectors.BaseSelector, listener: socket.socket) -> None:
        next_tick = time.monotonic() + self.tick_seconds
        while True:
            busy = bool(self._data or self._calls)
            if self._stopping and not busy:
                return
            wait = 0.0 if busy else max(0.0, min(next_tick - time.monotonic(), 0.25))
            for key, _ in selector.select(wait):
                if key.data is None:
                    self._accept(selector, listener)
                else:
                    self._receive(selector, key.data)
            calls, self._calls = self._calls, []
            for call in calls:
                self._call(*call)
            if self._data:
                data: list[_Message] = []
                size = 0
                while self._data and size < self.max_group:
                    message = self._data.pop(0)
                    data.append(message)
                    size += len(message[2])
                self._commit(data)
            if time.monotonic() >= next_tick:
                self._tick()
                next_tick = time.monotonic() + self.tick_seconds
                if os.getppid() != self._parent:  # the service that started us is gone
                    self._stopping = True

    def _accept(self, selector: selectors.BaseSelector, listener: socket.socket) -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        selector.register(conn, selectors.EVENT_READ, _Peer(conn))

    def _receive(self, selector: selectors.BaseSelector, peer: _Peer) -> None:
        try:
            frames = peer.frames()
        except (ValueError, msgspec.DecodeError):
            log.exception("engine server: a worker sent a message that does not decode")
            frames = None
        if frames is not None and not all(
            isinstance(f, list) and len(f) == 3 and isinstance(f[0], int) for f in frames
        ):
            log.error("engine server: a worker sent a message that is not [id, kind, body]")
            frames = None
        if frames is None or peer.closed:
            with contextlib.suppress(KeyError, ValueError):
                selector.unregister(peer.conn)
            peer.close()
            return
        for msg_id, kind, body in frames:
            if kind == "health":  # from flags, never queued behind the storage
                peer.send(msg_id, self.engine.health())
            elif kind == "data":
                self._data.append((peer, msg_id, body))
            else:
                self._calls.append((peer, msg_id, body))

    def _call(self, peer: _Peer, msg_id: int, body: bytes) -> None:
        try:
            name, args, kwargs = pickle.loads(body)
            answer: tuple[bool, Any] = (True, getattr(self.engine, name)(*args, **kwargs))
        except Exception as exc:
            if isinstance(exc, StorageUnavailable):
                self.engine.telemetry.storage_error(exc.code)
            answer = (False, exc)
        try:
            out = pickle.dumps(answer)
        except Exception as exc:  # an unpicklable error or result
            out = pickle.dumps((False, RuntimeError(f"engine call {msg_id}: {exc}")))
        peer.send(msg_id, out)

    def _commit(self, messages: list[_Message]) -> None:
        answers: list[list[Any]] = [[None] * len(body) for _, _, body in messages]
        ops: list[Op] = []
        slots: list[tuple[int, int]] = []
        for m, (_, _, body) in enumerate(messages):
            for j, (experiment_id, action, raw) in enumerate(body):
                try:
                    ops.append(op_from_body(experiment_id, action, raw))
                except OctobanditError as exc:  # a body that does not decode
                    answers[m][j] = error_answer(exc)
                else:
                    slots.append((m, j))
        outcome: list[Any] | BaseException = []
        if ops:
            try:
                outcome = self.engine.execute(ops)
            except Exception as exc:  # storage-wide failure: the whole group fails
                outcome = exc
        for k, (m, j) in enumerate(slots):
            result = outcome if isinstance(outcome, BaseException) else outcome[k]
            if isinstance(result, BaseException):
                answers[m][j] = error_answer(result)
            else:
                try:
                    answers[m][j] = ok_answer(result)
                except Exception as exc:  # an answer that does not encode: a bug
                    answers[m][j] = error_answer(exc)
        for (peer, msg_id, _), answer in zip(messages, answers, strict=True):
            peer.send(msg_id, answer)

    def _tick(self) -> None:
        try:
            self.engine.tick()
        except StorageUnavailable as exc:  # disk full or file lost: /healthz says so; retry
            self.engine.telemetry.storage_error(exc.code)
        except Exception:
            log.exception("snapshot tick failed")


def bind(path: str) -> socket.socket:
    """A listening Unix socket at ``path`` (a stale socket file is replaced)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    os.chmod(path, 0o600)
    listener.listen(128)
    return listener


def _die_with_parent() -> None:
    """Linux: get SIGTERM when the process that started us dies (even by SIGKILL)."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def main(argv: list[str] | None = None) -> int:
    """``python -m octobandit.engine.server SOCKET``: serve the engine the environment names."""
    from octobandit.compose import build_engine
    from octobandit.config import Settings
    from octobandit.errors import StorageUnusable

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m octobandit.engine.server SOCKET", file=sys.stderr)
        return 2
    _die_with_parent()
    settings = Settings.from_env()
    logging.basicConfig(level=settings.log_level.upper(), format="%(levelname)s: %(message)s")
    try:
        engine = build_engine(settings)
    except StorageUnusable as exc:
        print(f"octobandit: {exc.message}", file=sys.stderr)
        return 1
    server = EngineServer(engine, args[0], tick_seconds=settings.tick_seconds)
    signal.signal(signal.SIGTERM, lambda *_: server.stop())
    signal.signal(signal.SIGINT, lambda *_: server.stop())
    try:
        server.serve()
    finally:
        engine.storage.close()  # a clean close checkpoints and removes the WAL
    return 0


if __name__ == "__main__":
    sys.exit(main())
