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
import functools
from collections.abc import Callable
from typing import Any, TypeVar

from octobandit.engine.core import Engine
from octobandit.engine.ops import DecideOp, Op, RewardItem, RewardOp, RewardResult

T = TypeVar("T")
_Group = list[tuple[Op, "asyncio.Future[Any]"]]


class GroupCommitter:
    """Asynchronous front of an :class:`Engine`: group commit plus the storage thread."""

    def __init__(self, engine: Engine, *, max_group: int = 512) -> None:
        self.engine = engine
        self.max_group = max_group
        self._pending: _Group = []
        self._busy = False  # a group is scheduled or running
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None

    @property
    def executor(self) -> concurrent.futures.ThreadPoolExecutor:
        """The single storage thread (created on first use, again after :meth:`close`)."""
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="octobandit-storage"
            )
        return self._executor

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` (an engine call) on the storage thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, functools.partial(fn, *args, **kwargs))

    def close(self) -> None:
        """Finish the storage thread's work and stop it."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    async def submit(self, op: Op) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((op, future))
        if not self._busy:
            self._busy = True
            loop.call_soon(self._flush)  # after the requests that are ready alongside
        return await future

    async def decide(
        self,
        experiment_id: str,
        *,
        n: int | None = None,
        unit_id: str | None = None,
        context: Any = None,
    ) -> Any:
        return await self.submit(DecideOp(experiment_id, n, unit_id, context))

    async def reward(self, experiment_id: str, items: list[RewardItem]) -> RewardResult:
        result: RewardResult = await self.submit(RewardOp(experiment_id, items))
        return result

    def _flush(self) -> None:
        """Hand the next group to the storage thread (runs on the event loop)."""
        if not self._pending:
            self._busy = False
            return
        group = self._pending[: self.max_group]
        del self._pending[: self.max_group]
        try:
            done = self.executor.submit(self.engine.execute, [op for op, _ in group])
        except RuntimeError as exc:  # the executor is shutting down
            self._answer(group, exc)
            self._busy = False
            return
        loop = asyncio.get_running_loop()
        done.add_done_callback(lambda f: loop.call_soon_threadsafe(self._finished, group, f))

    def _finished(self, group: _Group, done: concurrent.futures.Future[list[Any]]) -> None:
        """Answer a committed (or failed) group, then start the next (on the event loop)."""
        try:
            results = done.result()
        except Exception as exc:  # storage failure: every request of the group fails
            self._answer(group, exc)
        else:
            for (_, future), result in zip(group, results, strict=True):
                if future.done():  # the caller went away
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)
        self._flush()

    @staticmethod
    def _answer(group: _Group, exc: BaseException) -> None:
        for _, future in group:
            if not future.done():
                future.set_exception(exc)
