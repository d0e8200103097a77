"""Group commit for asyncio doors, with storage work off the event loop.

Requests that arrive while a group is being committed are collected and
executed together by :meth:`Engine.execute` in one transaction. Each caller is
answered only after the group has committed, so an acknowledged write is
durable, and the cost of a commit is shared by the whole group.

Every engine call (groups, control-plane calls, the snapshot tick) runs on one
dedicated storage thread (:meth:`GroupCommitter.call`): the event loop never
waits for SQLite (a slow disk, a ``BEGIN IMMEDIATE`` waiting for another
process's lock, a checkpoint), it keeps accepting requests, which form the next
group. One thread also serialises access to the engine and its cache.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from octobandit.engine.core import Engine
from octobandit.engine.ops import (
    Answer,
    Op,
    error_answer,
    ok_answer,
    op_from_body,
)
from octobandit.engine.specs import Limits
from octobandit.errors import StorageUnavailable

T = TypeVar("T")
_Group = list[tuple[Op, "asyncio.Future[Any]"]]


class GroupCommitter:
    """Asynchronous front of an :class:`Engine`: group commit plus the storage thread."""

    def __init__(self, engine: Engine, *, max_group: int = 512) -> None:
        self.engine = engine
        self.max_group = max_group
        self._pending: _Group = []
        self._busy = False  # the storage thread is draining, or about to be woken
        self._calls: list[tuple[Callable[[], Any], asyncio.Future[Any]]] = []
        self._lock = threading.Lock()  # guards the queues and _busy (loop and storage thread)
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None

    @property
    def executor(self) -> concurrent.futures.ThreadPoolExecutor:
        """The single storage thread (created on first use, again after :meth:`close`)."""
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="octobandit-storage"
            )
        return self._executor

    @property
    def limits(self) -> Limits:
        return self.engine.limits

    async def call(self, fn: Callable[..., T] | str, *args: Any, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` on the storage thread; a name means that engine method.

        Calls take turns with the data plane's groups, so sustained traffic never
        starves the control plane.
        """
        if isinstance(fn, str):
            fn = getattr(self.engine, fn)
            assert callable(fn)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._lock:
            self._calls.append((functools.partial(fn, *args, **kwargs), future))
            start = not self._busy
            self._busy = True
        if start:
            self._start()
        return await future

    def close(self) -> None:
        """Finish the storage thread's work and stop it."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    async def submit(self, op: Op) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        with self._lock:
            self._pending.append((op, future))
            start = not self._busy
            self._busy = True
        if start:  # after the requests that are ready alongside, so that they form a group
            loop.call_soon(self._start)
        return await future

    async def data(self, experiment_id: str, action: str, raw: bytes) -> Answer:
        """Serve a data-plane body (``action``: ``decisions`` or ``rewards``): error and JSON."""
        try:
            result = await self.submit(op_from_body(experiment_id, action, raw))
        except Exception as exc:
            return error_answer(exc)
        return ok_answer(result)

    async def health(self) -> dict[str, str] | None:
        """``None`` while the storage takes writes, else ``{"reason", "message"}`` (no I/O)."""
        return self.engine.health()

    def _start(self) -> None:
        """Wake the storage thread for the pending work (runs on the event loop)."""
        try:
            self.executor.submit(self._drain)
        except RuntimeError as exc:  # the executor is shutting down
            with self._lock:
                group, self._pending, self._busy = self._pending, [], False
                calls, self._calls = self._calls, []
            self._answer(group, exc)
            for _, waiter in calls:
                _settle(waiter, None, exc)

    def _drain(self) -> None:
        """Commit groups until nothing is pending (runs on the storage thread).

        The thread takes the next group itself as soon as one is committed, while
        the event loop answers the previous one: committing and answering overlap.
        """
        while True:
            with self._lock:
                calls, self._calls = self._calls, []
                group = self._pending[: self.max_group]
                del self._pending[: self.max_group]
                if not group and not calls:
                    self._busy = False
                    return
            for fn, waiter in calls:
                try:
                    answer: Any = fn()
                except BaseException as exc:
                    if isinstance(exc, StorageUnavailable):  # for /metrics
                        self.engine.telemetry.storage_error(exc.code)
                    self._post(waiter.get_loop(), _settle, waiter, None, exc)
                else:
                    self._post(waiter.get_loop(), _settle, waiter, answer, None)
            if not group:
                continue
            outcome: list[Any] | BaseException
            try:
                outcome = self.engine.execute([op for op, _ in group])
            except Exception as exc:  # storage failure: every request of the group fails
                outcome = exc
            loops = {future.get_loop() for _, future in group}  # one, unless doors share us
            for target in loops:
                part = [i for i, (_, future) in enumerate(group) if future.get_loop() is target]
                self._post(target, self._deliver, group, outcome, part)

    @staticmethod
    def _post(loop: asyncio.AbstractEventLoop, fn: Callable[..., None], *args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(fn, *args)

    @staticmethod
    def _deliver(group: _Group, outcome: list[Any] | BaseException, part: list[int]) -> None:
        """Answer the requests ``part`` of a committed (or failed) group (on their loop)."""
        for i in part:
            future = group[i][1]
            if isinstance(outcome, BaseException):
                _settle(future, None, outcome)
            elif isinstance(outcome[i], BaseException):
                _settle(future, None, outcome[i])
            else:
                _settle(future, outcome[i], None)

    @staticmethod
    def _answer(group: _Group, exc: BaseException) -> None:
        for _, future in group:
            if not future.done():
                future.set_exception(exc)


def _settle(future: asyncio.Future[Any], answer: Any, error: BaseException | None) -> None:
    """Give a waiting caller its answer or error, unless it went away (event loop)."""
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(answer)
