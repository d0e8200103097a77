"""The asynchronous client: :class:`AsyncClient` (each client belongs to one event loop)."""

from __future__ import annotations

import asyncio
import atexit
import weakref
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Literal, Self, TypeVar, overload

import httpx

from octobandit import wire
from octobandit.client import _calls as calls
from octobandit.client._buffer import (
    BufferStats,
    ErrorHandler,
    Pending,
    TaskBuffer,
    deliver_all,
    log_undelivered,
)
from octobandit.client._calls import ArmSpec, Call, Context
from octobandit.client._retry import Retry, sent
from octobandit.client._settings import Settings
from octobandit.client.errors import ServiceUnreachable
from octobandit.client.sync import run as run_sync

T = TypeVar("T")


async def run(http: httpx.AsyncClient, call: Call[T], retry: Retry) -> T:
    """Send ``call`` (again, as ``retry`` allows) and read its answer."""
    attempt = 0
    unsure = False  # an earlier try may have taken effect without an answer
    while True:
        attempt += 1
        try:
            response = await http.request(
                call.method, call.path, content=call.body, params=call.params, headers=call.headers
            )
        except httpx.TransportError as exc:
            unsure = unsure or sent(exc)
            delay = retry.after_transport_error(exc, attempt, call.idempotent)
            if delay is None:
                raise ServiceUnreachable(
                    f"{call.method} {call.path}: {type(exc).__name__}: {exc}", attempts=attempt
                ) from exc
            await asyncio.sleep(delay)
            continue
        try:
            return call.result(
                response.status_code, response.content, attempts=attempt, unsure=unsure
            )
        except Exception as exc:
            code = getattr(exc, "code", "")
            delay = retry.after_status(
                response.status_code,
                code,
                attempt,
                call.idempotent,
                response.headers.get("retry-after"),
            )
            if delay is None:
                raise
            unsure = unsure or response.status_code in (502, 504)
            await asyncio.sleep(delay)


def _send_at_exit(ref: weakref.ref[AsyncClient]) -> None:
    """At interpreter exit the event loop is gone: send what is still queued, synchronously."""
    client = ref()
    if client is not None:
        client._send_leftovers()


class AsyncClient:
    """The asynchronous twin of :class:`~octobandit.client.Client`: the same methods,
    awaited; ``async with AsyncClient(...) as client`` or ``await client.close()``.

    Buffered rewards are sent by a task on the client's event loop. Close the
    client before its loop ends: at interpreter exit, rewards still queued (not
    those of a batch in flight) are sent synchronously as a last resort.
    """

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        api_key: str | None = None,
        timeout: float | None = 10.0,
        *,
        retry: Retry | None = None,
        headers: Mapping[str, str] | None = None,
        buffer_size: int = 10_000,
        batch_size: int = 1_000,
        flush_interval: float = 0.5,
        buffer_retry: Retry | None = None,
        on_error: ErrorHandler | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = Settings.make(
            base_url, api_key, timeout, retry=retry, headers=headers, buffer_retry=buffer_retry
        )
        self._http = httpx.AsyncClient(
            base_url=self.settings.base_url,
            headers=self.settings.headers,
            timeout=timeout,
            transport=transport,
        )
        self._on_error = on_error or log_undelivered
        self._buffer = TaskBuffer(
            self._send_rewards,
            self._on_error,
            Pending(buffer_size, min(batch_size, buffer_size), flush_interval),
        )
        self._closed = False
        ref = weakref.ref(self)
        self._at_exit = lambda: _send_at_exit(ref)
        atexit.register(self._at_exit)

    async def _run(self, call: Call[T]) -> T:
        if self._closed:
            raise RuntimeError("the client is closed")
        return await run(self._http, call, self.settings.retry)

    async def _send_rewards(
        self, experiment_id: str, rewards: list[wire.Reward]
    ) -> wire.RewardAnswer:
        return await run(
            self._http, calls.rewards(experiment_id, rewards), self.settings.buffer_retry
        )

    def _send_leftovers(self) -> None:
        leftovers = self._buffer.leftovers()
        if not leftovers:
            return
        s = self.settings
        with httpx.Client(base_url=s.base_url, headers=s.headers, timeout=s.timeout) as http:

            def send(experiment_id: str, rewards: list[wire.Reward]) -> wire.RewardAnswer:
                return run_sync(http, calls.rewards(experiment_id, rewards), s.buffer_retry)

            deliver_all(send, self._on_error, leftovers)

    # -- life cycle -----------------------------------------------------------------

    async def close(self) -> None:
        """Flush the reward buffer, then close the connections (idempotent)."""
        if self._closed:
            return
        await self._buffer.close()
        self._closed = True
        await self._http.aclose()
        atexit.unregister(self._at_exit)

    aclose = close

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def health(self) -> wire.Health:
        """``GET /healthz``: ``ok``, or ``degraded`` with the reason (not an error)."""
        return await self._run(calls.health())

    # -- experiments ----------------------------------------------------------------

    async def create_experiment(
        self,
        id: str | None = None,
        *,
        policy: str | Mapping[str, Any] | None = None,
        arms: Sequence[ArmSpec] | None = None,
        name: str | None = None,
        reward: str | Mapping[str, Any] | None = None,
        context: Sequence[str] | Mapping[str, Any] | None = None,
        stopping: Mapping[str, Any] | None = None,
        snapshot_interval: float | None = None,
    ) -> wire.Experiment:
        """Create an experiment (an existing id raises :class:`ConflictError`)."""
        return await self._run(
            calls.create_experiment(
                id,
                policy=policy,
                arms=arms,
                name=name,
                reward=reward,
                context=context,
                stopping=stopping,
                snapshot_interval=snapshot_interval,
            )
        )

    async def list_experiments(self) -> list[wire.Experiment]:
        return await self._run(calls.list_experiments())

    async def get_experiment(self, experiment_id: str) -> wire.Experiment:
        return await self._run(calls.get_experiment(experiment_id))

    async def update_experiment(
        self,
        experiment_id: str,
        *,
        name: str | None = None,
        status: Literal["running", "paused"] | None = None,
        policy: str | Mapping[str, Any] | None = None,
        stopping: Mapping[str, Any] | None = None,
        snapshot_interval: float | None = None,
    ) -> wire.Experiment:
        """``PATCH``: the values given change, the others stay (policy and stopping merge)."""
        return await self._run(
            calls.update_experiment(
                experiment_id,
                name=name,
                status=status,
                policy=policy,
                stopping=stopping,
                snapshot_interval=snapshot_interval,
            )
        )

    async def conclude(self, experiment_id: str, winner: str | None = None) -> wire.Experiment:
        """Conclude now, by hand: ``winner`` or else the arm with the largest P(best)
        (``PATCH`` status ``concluded``; ``update_experiment`` with ``running`` re-opens)."""
        return await self._run(calls.conclude(experiment_id, winner))

    async def delete_experiment(self, experiment_id: str) -> None:
        return await self._run(calls.delete_experiment(experiment_id))

    async def delete_all_experiments(self, *, confirm: bool) -> int:
        """Delete every experiment (``confirm=True`` is required); how many there were."""
        return await self._run(calls.delete_all_experiments(confirm))

    async def reset_experiment(self, experiment_id: str) -> wire.Experiment:
        """Statistics back to their priors; the history is kept with a reset marker."""
        return await self._run(calls.reset_experiment(experiment_id))

    # -- arms -----------------------------------------------------------------------

    async def add_arm(
        self,
        experiment_id: str,
        arm_id: str,
        *,
        payload: Any = None,
        enabled: bool = True,
        prior: Mapping[str, float] | None = None,
    ) -> wire.Arm:
        return await self._run(
            calls.add_arm(experiment_id, arm_id, payload=payload, enabled=enabled, prior=prior)
        )

    async def update_arm(
        self,
        experiment_id: str,
        arm_id: str,
        *,
        enabled: bool | None = None,
        payload: Any = None,
    ) -> wire.Arm:
        return await self._run(
            calls.update_arm(experiment_id, arm_id, enabled=enabled, payload=payload)
        )

    async def delete_arm(self, experiment_id: str, arm_id: str) -> None:
        """Retire an arm: never chosen again, its history kept."""
        return await self._run(calls.delete_arm(experiment_id, arm_id))

    async def set_arm_stats(
        self,
        experiment_id: str,
        arm_id: str,
        *,
        decisions: int = 0,
        rewards: float = 0.0,
        reward_sum: float = 0.0,
        reward_sq_sum: float | None = None,
    ) -> wire.Stats:
        """Admin: overwrite an arm's statistics; answers the experiment's stats."""
        return await self._run(
            calls.set_arm_stats(
                experiment_id,
                arm_id,
                decisions=decisions,
                rewards=rewards,
                reward_sum=reward_sum,
                reward_sq_sum=reward_sq_sum,
            )
        )

    # -- decisions and rewards ------------------------------------------------------

    async def decide(
        self, experiment_id: str, unit_id: str | None = None, context: Context | None = None
    ) -> wire.Decision:
        """Choose an arm (sticky for ``unit_id``; ``context`` for contextual policies).

        Not retried once the request may have reached the server (a repeat would
        be a second decision), only when it never did.
        """
        return await self._run(calls.decide(experiment_id, unit_id=unit_id, context=context))

    async def decide_batch(
        self, experiment_id: str, n: int, context: Context | None = None
    ) -> list[wire.Decision]:
        """``n`` decisions in one request (not sticky: a unit gets single decisions)."""
        return await self._run(calls.decide_batch(experiment_id, n, context=context))

    @overload
    async def reward(
        self,
        experiment_id: str,
        decision_id: str,
        reward: float,
        *,
        buffered: Literal[False] = False,
    ) -> wire.RewardAnswer: ...

    @overload
    async def reward(
        self, experiment_id: str, decision_id: str, reward: float, *, buffered: Literal[True]
    ) -> None: ...

    async def reward(
        self, experiment_id: str, decision_id: str, reward: float, *, buffered: bool = False
    ) -> wire.RewardAnswer | None:
        """Reward one decision. Retried freely: a repeat is counted as a duplicate.

        With ``buffered=True`` the reward is queued and sent in bulk in the
        background; this waits while the buffer is full, at most ``timeout``
        seconds, then raises :class:`RewardBufferFull`.
        """
        if buffered:
            if self._closed:
                raise RuntimeError("the client is closed")
            item = wire.Reward(reward=reward, decision_id=decision_id)
            await self._buffer.add(experiment_id, item, self.settings.timeout)
            return None
        return await self._run(calls.reward(experiment_id, decision_id, reward))

    async def reward_arm(
        self, experiment_id: str, arm_id: str, reward: float, count: int = 1
    ) -> wire.RewardAnswer:
        """``count`` pulls of an arm whose mean reward is ``reward`` (not idempotent:
        retried only when the request never reached the server)."""
        return await self._run(calls.reward_arm(experiment_id, arm_id, reward, count))

    async def rewards(
        self, experiment_id: str, items: Iterable[wire.Reward | Mapping[str, Any]]
    ) -> wire.RewardAnswer:
        """Several rewards in one request, all or nothing (``Reward`` or dicts)."""
        return await self._run(calls.rewards(experiment_id, items))

    async def flush(self, timeout: float | None = None) -> None:
        """Send every buffered reward now; return once each is delivered or reported."""
        await self._buffer.flush(timeout)

    def buffer_stats(self) -> BufferStats:
        """The reward buffer's counters: queued, accepted, duplicates, failed."""
        return self._buffer.stats()

    # -- reports --------------------------------------------------------------------

    async def stats(self, experiment_id: str) -> wire.Stats:
        return await self._run(calls.stats(experiment_id))

    async def conclusion(self, experiment_id: str) -> wire.Conclusion:
        """Whether the stopping rule is met now, which arm wins and why."""
        return await self._run(calls.conclusion(experiment_id))

    async def evaluation(
        self,
        experiment_id: str,
        policies: Sequence[str | Mapping[str, Any]],
        *,
        limit: int = 10_000,
        bootstrap: int = 1000,
        switch_tau: float = 10.0,
    ) -> wire.Evaluation:
        """Candidate policies (types, specs or ``{"action_dist": [...]}``) evaluated
        off-policy on the most recent ``limit`` decisions (docs/evaluation.md). It takes
        seconds for large logs: the client's ``timeout`` applies."""
        return await self._run(
            calls.evaluation(experiment_id, policies, limit, bootstrap, switch_tau)
        )

    async def history(self, experiment_id: str, limit: int = 1000) -> wire.History:
        """Posterior snapshots (at most ``limit``, the most recent) as series per arm."""
        return await self._run(calls.history(experiment_id, limit))
