"""The asynchronous face of :mod:`octobandit.integrations.backend`, for event loops
(an ASGI app, a chat bot): nothing here blocks the loop.

:func:`connect_async` gives an :class:`AsyncBandits`: for an ``http(s)://`` URL the SDK's
:class:`~octobandit.client.AsyncClient`, else the embedded engine
(:class:`~octobandit.integrations.backend.EmbeddedBandits`) with each of its calls run in
a worker thread. :class:`ThreadedBandits` does the same for any synchronous
:class:`~octobandit.integrations.backend.Bandits`.

>>> import anyio
>>> async def main() -> tuple[bool, int]:
...     bandits = connect_async("sqlite:///:memory:")
...     await bandits.ensure_experiment({"id": "demo", "arms": [{"id": "a"}, {"id": "b"}]})
...     d = await bandits.decide("demo")
...     answer = await bandits.reward("demo", d.decision_id, 1.0)
...     await bandits.aclose()
...     return d.arm_id in {"a", "b"}, answer.accepted
>>> anyio.run(main)
(True, 1)
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

import anyio.to_thread

from octobandit import wire
from octobandit.integrations.backend import Bandits, EmbeddedBandits, create_options

T = TypeVar("T")


class AsyncBandits(Protocol):
    """:class:`~octobandit.integrations.backend.Bandits`, awaited."""

    async def ensure_experiment(self, spec: Mapping[str, Any]) -> None: ...

    async def get_experiment(self, experiment_id: str) -> wire.Experiment: ...

    async def add_arm(self, experiment_id: str, spec: Mapping[str, Any]) -> None: ...

    async def decide(
        self, experiment_id: str, *, unit_id: str | None = None, context: Any = None
    ) -> wire.Decision: ...

    async def reward(
        self, experiment_id: str, decision_id: str, value: float
    ) -> wire.RewardAnswer: ...

    async def reward_arm(
        self, experiment_id: str, arm_id: str, value: float, count: int = 1
    ) -> wire.RewardAnswer: ...

    async def set_arm_stats(
        self, experiment_id: str, arm_id: str, stats: Mapping[str, Any]
    ) -> None: ...

    async def stats(self, experiment_id: str) -> wire.Stats: ...

    async def conclusion(self, experiment_id: str) -> wire.Conclusion: ...

    async def aclose(self) -> None: ...


def connect_async(
    url: str | None = None, *, api_key: str | None = None, **options: Any
) -> AsyncBandits:
    """:class:`AsyncRemoteBandits` for an ``http(s)://`` service URL, else the embedded
    engine on the store ``url`` names (default ``octobandit.db``) behind
    :class:`ThreadedBandits`. ``options`` go to the client or to the engine.
    ``api_key`` (default: ``$OCTOBANDIT_API_KEY``) is sent as ``Authorization: Bearer``."""
    if url is not None and url.startswith(("http://", "https://")):
        api_key = api_key or os.environ.get("OCTOBANDIT_API_KEY") or None
        return AsyncRemoteBandits(url, api_key=api_key, **options)
    return ThreadedBandits(EmbeddedBandits(url or "octobandit.db", **options))


class ThreadedBandits:
    """A synchronous :class:`~octobandit.integrations.backend.Bandits` whose calls run
    in worker threads (``anyio.to_thread``), so an event loop never waits on the store."""

    def __init__(self, bandits: Bandits) -> None:
        self.bandits = bandits

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))

    async def ensure_experiment(self, spec: Mapping[str, Any]) -> None:
        await self._call(self.bandits.ensure_experiment, spec)

    async def get_experiment(self, experiment_id: str) -> wire.Experiment:
        return await self._call(self.bandits.get_experiment, experiment_id)

    async def add_arm(self, experiment_id: str, spec: Mapping[str, Any]) -> None:
        await self._call(self.bandits.add_arm, experiment_id, spec)

    async def decide(
        self, experiment_id: str, *, unit_id: str | None = None, context: Any = None
    ) -> wire.Decision:
        return await self._call(
            self.bandits.decide, experiment_id, unit_id=unit_id, context=context
        )

    async def reward(self, experiment_id: str, decision_id: str, value: float) -> wire.RewardAnswer:
        return await self._call(self.bandits.reward, experiment_id, decision_id, value)

    async def reward_arm(
        self, experiment_id: str, arm_id: str, value: float, count: int = 1
    ) -> wire.RewardAnswer:
        return await self._call(self.bandits.reward_arm, experiment_id, arm_id, value, count)

    async def set_arm_stats(
        self, experiment_id: str, arm_id: str, stats: Mapping[str, Any]
    ) -> None:
        await self._call(self.bandits.set_arm_stats, experiment_id, arm_id, stats)

    async def stats(self, experiment_id: str) -> wire.Stats:
        return await self._call(self.bandits.stats, experiment_id)

    async def conclusion(self, experiment_id: str) -> wire.Conclusion:
        return await self._call(self.bandits.conclusion, experiment_id)

    async def aclose(self) -> None:
        await self._call(self.bandits.close)


class AsyncRemoteBandits:
    """:class:`AsyncBandits` over an octobandit service through the SDK's
    :class:`~octobandit.client.AsyncClient` (which belongs to one event loop)."""

    def __init__(self, url: str, *, api_key: str | None = None, **options: Any) -> None:
        from octobandit.client import AsyncClient

        self.client = AsyncClient(url, api_key=api_key, **options)

    async def ensure_experiment(self, spec: Mapping[str, Any]) -> None:
        from octobandit.client import ConflictError, NotFoundError

        experiment_id = str(spec["id"])
        try:
            await self.client.get_experiment(experiment_id)
            return
        except NotFoundError:
            pass
        with contextlib.suppress(ConflictError):  # another process created it meanwhile
            await self.client.create_experiment(experiment_id, **create_options(spec))

    async def get_experiment(self, experiment_id: str) -> wire.Experiment:
        return await self.client.get_experiment(experiment_id)

    async def add_arm(self, experiment_id: str, spec: Mapping[str, Any]) -> None:
        rest = {k: v for k, v in spec.items() if k != "id"}
        await self.client.add_arm(experiment_id, str(spec["id"]), **rest)

    async def decide(
        self, experiment_id: str, *, unit_id: str | None = None, context: Any = None
    ) -> wire.Decision:
        return await self.client.decide(experiment_id, unit_id=unit_id, context=context)

    async def reward(self, experiment_id: str, decision_id: str, value: float) -> wire.RewardAnswer:
        return await self.client.reward(experiment_id, decision_id, value)

    async def reward_arm(
        self, experiment_id: str, arm_id: str, value: float, count: int = 1
    ) -> wire.RewardAnswer:
        return await self.client.reward_arm(experiment_id, arm_id, value, count=count)

    async def set_arm_stats(
        self, experiment_id: str, arm_id: str, stats: Mapping[str, Any]
    ) -> None:
        await self.client.set_arm_stats(experiment_id, arm_id, **stats)

    async def stats(self, experiment_id: str) -> wire.Stats:
        return await self.client.stats(experiment_id)

    async def conclusion(self, experiment_id: str) -> wire.Conclusion:
        return await self.client.conclusion(experiment_id)

    async def aclose(self) -> None:
        await self.client.close()
