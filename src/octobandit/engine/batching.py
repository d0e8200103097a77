"""Group commit for asyncio doors.

Requests that arrive while the event loop is busy are collected and executed
together by :meth:`Engine.execute` in one transaction, as soon as the loop has
handled the requests that were ready alongside them. Each caller is answered
only after the group has committed, so an acknowledged write is durable, and
the cost of a commit is shared by the whole group.
"""

from __future__ import annotations

import asyncio
from typing import Any

from octobandit.engine.core import Engine
from octobandit.engine.ops import DecideOp, Op, RewardItem, RewardOp, RewardResult


class GroupCommitter:
    """Asynchronous front of an :class:`Engine` for the data plane."""

    def __init__(self, engine: Engine, *, max_group: int = 512) -> None:
        self.engine = engine
        self.max_group = max_group
        self._pending: list[tuple[Op, asyncio.Future[Any]]] = []
        self._scheduled = False

    async def submit(self, op: Op) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((op, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
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
        self._scheduled = False
        while self._pending:
            group = self._pending[: self.max_group]
            del self._pending[: self.max_group]
            try:
                results = self.engine.execute([op for op, _ in group])
            except Exception as exc:  # storage failure: every request of the group fails
                for _, future in group:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(group, results, strict=True):
                if future.done():  # the caller went away
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)
