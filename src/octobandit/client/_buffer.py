"""The reward buffer: rewards by decision id, queued and sent in bulk in the background.

A bounded queue (``max_items`` rewards, counting those in flight) is emptied by a
background thread (sync client) or task (async client) into bulk requests of at
most ``batch_size`` rewards of one experiment: as soon as a batch is full, else
``flush_interval`` seconds after its oldest reward was queued, at once on
``flush()``, and entirely on ``close()`` and at interpreter exit.

Every buffered reward ends accepted (or counted as a duplicate: rewards by
decision id are idempotent, so batches are retried freely) or handed to the
``on_error(error, experiment_id, rewards)`` callback: a bulk request is all or
nothing, so a batch refused for some of its items (409, 413, 422, unknown
decision) is split in halves until the refused rewards are isolated.

At close, once a batch could not be sent because the service is down (after
the retries), the remaining batches are reported at once rather than each
waiting a full retry budget.

A process killed outright loses what was queued or in flight: at most
``max_items`` rewards. The in-flight batch may have been applied; re-sending it
is harmless (duplicates are ignored).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from octobandit import wire
from octobandit.client.errors import (
    OctobanditHTTPError,
    RewardBufferFull,
    ServerError,
    ServiceUnreachable,
)

log = logging.getLogger("octobandit.client")

#: what to do with rewards that could not be delivered: ``(error, experiment_id, rewards)``
ErrorHandler = Callable[[BaseException, str, list[wire.Reward]], None]
SyncSend = Callable[[str, list[wire.Reward]], wire.RewardAnswer]
AsyncSend = Callable[[str, list[wire.Reward]], Awaitable[wire.RewardAnswer]]


def log_undelivered(error: BaseException, experiment_id: str, rewards: list[wire.Reward]) -> None:
    """The default ``on_error``: a warning on the ``octobandit.client`` logger."""
    log.warning(
        "%d buffered rewards for experiment %r were not delivered: %s",
        len(rewards),
        experiment_id,
        error,
    )


def splittable(error: BaseException) -> bool:
    """Whether a refused bulk request may be refused for some of its rewards only."""
    return isinstance(error, OctobanditHTTPError) and (
        error.status in (409, 413, 422) or error.code == "decision_not_found"
    )


@dataclass(frozen=True, slots=True)
class BufferStats:
    """The reward buffer's counters since the client was made."""

    queued: int  #: waiting or in flight
    accepted: int
    duplicates: int
    failed: int  #: handed to ``on_error``
    #: after their decision's attribution window closed: logged, not counted
    late: int = 0


@dataclass(slots=True)
class _Item:
    epoch: int
    at: float
    reward: wire.Reward


@dataclass(slots=True)
class Tally:
    accepted: int = 0
    duplicates: int = 0
    failed: int = 0
    late: int = 0


@dataclass(slots=True)
class Pending:
    """The queue's state and rules; the owner serializes access (a lock, or one event loop)."""

    max_items: int
    batch_size: int
    flush_interval: float
    queues: dict[str, list[_Item]] = field(default_factory=dict)
    #: rewards queued or in flight
    count: int = 0
    #: ``flush()`` waits for the rewards of its epoch and the earlier ones
    epoch: int = 0
    flush_upto: int = -1
    open_by_epoch: dict[int, int] = field(default_factory=dict)
    tally: Tally = field(default_factory=Tally)

    def __post_init__(self) -> None:
        if self.max_items < 1 or self.batch_size < 1 or self.flush_interval < 0:
            raise ValueError("max_items and batch_size must be >= 1, flush_interval >= 0")

    def full(self) -> bool:
        return self.count >= self.max_items

    def add(self, experiment_id: str, reward: wire.Reward, now: float) -> bool:
        """Queue a reward; whether the sender should be woken (a batch became due)."""
        queue = self.queues.setdefault(experiment_id, [])
        queue.append(_Item(self.epoch, now, reward))
        self.count += 1
        self.open_by_epoch[self.epoch] = self.open_by_epoch.get(self.epoch, 0) + 1
        return len(queue) == 1 or len(queue) >= self.batch_size

    def pick(self, now: float, urgent: bool) -> tuple[str | None, float | None]:
        """``(experiment, None)``: send its batch now; ``(None, seconds)``: wait that
        long at most; ``(None, None)``: nothing is queued."""
        if not self.queues:
            return None, None
        for experiment_id, queue in self.queues.items():
            if len(queue) >= self.batch_size:
                return experiment_id, None
        oldest = min(self.queues, key=lambda e: self.queues[e][0].at)
        head = self.queues[oldest][0]
        wait = head.at + self.flush_interval - now
        if urgent or head.epoch <= self.flush_upto or wait <= 0:
            return oldest, None
        return None, wait

    def take(self, experiment_id: str) -> list[_Item]:
        queue = self.queues[experiment_id]
        batch, rest = queue[: self.batch_size], queue[self.batch_size :]
        if rest:
            self.queues[experiment_id] = rest
        else:
            del self.queues[experiment_id]
        return batch

    def take_all(self) -> list[tuple[str, list[_Item]]]:
        """Every queued reward (not those in flight), by experiment."""
        out = list(self.queues.items())
        self.queues = {}
        return out

    def settle(self, items: list[_Item], tally: Tally) -> None:
        self.count -= len(items)
        for item in items:
            left = self.open_by_epoch[item.epoch] - 1
            if left:
                self.open_by_epoch[item.epoch] = left
            else:
                del self.open_by_epoch[item.epoch]
        self.tally.accepted += tally.accepted
        self.tally.duplicates += tally.duplicates
        self.tally.failed += tally.failed
        self.tally.late += tally.late

    def request_flush(self) -> int:
        mark = self.flush_upto = self.epoch
        self.epoch += 1
        return mark

    def flushed(self, mark: int) -> bool:
        return min(self.open_by_epoch, default=mark + 1) > mark

    def stats(self) -> BufferStats:
        t = self.tally
        return BufferStats(self.count, t.accepted, t.duplicates, t.failed, t.late)


def _report(
    on_error: ErrorHandler, error: BaseException, experiment_id: str, items: list[_Item]
) -> None:
    try:
        on_error(error, experiment_id, [i.reward for i in items])
    except Exception:  # a failing callback must not stop the sender
        log.exception("the on_error callback of the reward buffer failed")


def fail(
    on_error: ErrorHandler,
    error: BaseException,
    experiment_id: str,
    items: list[_Item],
    tally: Tally,
) -> None:
    tally.failed += len(items)
    _report(on_error, error, experiment_id, items)


def _down(error: BaseException) -> BaseException | None:
    """``error`` if it says the service is unreachable or failing (not these rewards)."""
    return error if isinstance(error, ServiceUnreachable | ServerError) else None


def deliver(
    send: SyncSend, on_error: ErrorHandler, experiment_id: str, items: list[_Item], tally: Tally
) -> BaseException | None:
    """Send ``items`` in one bulk request, in halves if it is refused for some of them.

    Returns the error when the service was unreachable or failing after the retries.
    """
    try:
        answer = send(experiment_id, [i.reward for i in items])
    except Exception as exc:
        if len(items) > 1 and splittable(exc):
            half = len(items) // 2
            deliver(send, on_error, experiment_id, items[:half], tally)
            return deliver(send, on_error, experiment_id, items[half:], tally)
        fail(on_error, exc, experiment_id, items, tally)
        return _down(exc)
    tally.accepted += answer.accepted
    tally.duplicates += answer.duplicates
    tally.late += answer.late or 0
    return None


async def adeliver(
    send: AsyncSend, on_error: ErrorHandler, experiment_id: str, items: list[_Item], tally: Tally
) -> BaseException | None:
    """:func:`deliver` for the async client."""
    try:
        answer = await send(experiment_id, [i.reward for i in items])
    except Exception as exc:
        if len(items) > 1 and splittable(exc):
            half = len(items) // 2
            await adeliver(send, on_error, experiment_id, items[:half], tally)
            return await adeliver(send, on_error, experiment_id, items[half:], tally)
        fail(on_error, exc, experiment_id, items, tally)
        return _down(exc)
    tally.accepted += answer.accepted
    tally.duplicates += answer.duplicates
    tally.late += answer.late or 0
    return None


def deliver_all(
    send: SyncSend, on_error: ErrorHandler, batches: list[tuple[str, list[_Item]]]
) -> None:
    """Send batches one by one; once the service is down, report the rest unsent."""
    down: BaseException | None = None
    for experiment_id, items in batches:
        if down is not None:
            fail(on_error, down, experiment_id, items, Tally())
        else:
            down = deliver(send, on_error, experiment_id, items, Tally())


class ThreadBuffer:
    """The sync client's buffer: a daemon thread sends the batches."""

    def __init__(self, send: SyncSend, on_error: ErrorHandler, pending: Pending) -> None:
        self._send = send
        self._on_error = on_error
        self._pending = pending
        self._cond = threading.Condition()
        self._closing = False
        self._thread: threading.Thread | None = None

    def add(self, experiment_id: str, reward: wire.Reward, timeout: float | None) -> None:
        with self._cond:
            ready = self._cond.wait_for(lambda: self._closing or not self._pending.full(), timeout)
            if self._closing:
                raise RuntimeError("the client is closed")
            if not ready:
                raise RewardBufferFull(
                    f"the reward buffer stayed full ({self._pending.max_items} rewards)"
                    f" for {timeout} s"
                )
            if self._pending.add(experiment_id, reward, time.monotonic()):
                self._cond.notify_all()
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="octobandit-rewards", daemon=True
                )
                self._thread.start()

    def flush(self, timeout: float | None = None) -> None:
        """Send every reward queued so far; return once each is delivered or reported."""
        with self._cond:
            mark = self._pending.request_flush()
            self._cond.notify_all()
            if not self._cond.wait_for(lambda: self._pending.flushed(mark), timeout):
                raise TimeoutError(f"the reward buffer was not flushed within {timeout} s")

    def close(self, timeout: float | None = None) -> None:
        """Send everything queued, then stop the thread (idempotent)."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def stats(self) -> BufferStats:
        with self._cond:
            return self._pending.stats()

    def _run(self) -> None:
        #: the last batch failed because the service was down: at close, the rest is
        #: reported without being sent
        down: BaseException | None = None
        while True:
            with self._cond:
                while True:
                    experiment_id, wait = self._pending.pick(time.monotonic(), self._closing)
                    if experiment_id is not None:
                        break
                    if wait is None and self._closing:
                        return
                    self._cond.wait(wait)
                items = self._pending.take(experiment_id)
            tally = Tally()
            try:
                if self._closing and down is not None:  # do not wait a retry budget per batch
                    fail(self._on_error, down, experiment_id, items, tally)
                else:
                    down = deliver(self._send, self._on_error, experiment_id, items, tally)
            finally:
                with self._cond:
                    self._pending.settle(items, tally)
                    self._cond.notify_all()


class TaskBuffer:
    """The async client's buffer: a task on the client's event loop sends the batches."""

    def __init__(self, send: AsyncSend, on_error: ErrorHandler, pending: Pending) -> None:
        self._send = send
        self._on_error = on_error
        self._pending = pending
        self._cond = asyncio.Condition()
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    async def add(self, experiment_id: str, reward: wire.Reward, timeout: float | None) -> None:
        async with self._cond:
            try:
                await asyncio.wait_for(
                    self._cond.wait_for(lambda: self._closing or not self._pending.full()),
                    timeout,
                )
            except TimeoutError:
                raise RewardBufferFull(
                    f"the reward buffer stayed full ({self._pending.max_items} rewards)"
                    f" for {timeout} s"
                ) from None
            if self._closing:
                raise RuntimeError("the client is closed")
            if self._pending.add(experiment_id, reward, time.monotonic()):
                self._cond.notify_all()
            if self._task is None or self._task.done():
                self._task = asyncio.get_running_loop().create_task(
                    self._run(), name="octobandit-rewards"
                )

    async def flush(self, timeout: float | None = None) -> None:
        async with self._cond:
            mark = self._pending.request_flush()
            self._cond.notify_all()
            try:
                await asyncio.wait_for(
                    self._cond.wait_for(lambda: self._pending.flushed(mark)), timeout
                )
            except TimeoutError:
                raise TimeoutError(
                    f"the reward buffer was not flushed within {timeout} s"
                ) from None

    async def close(self) -> None:
        async with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._task is not None:
            await self._task

    def stats(self) -> BufferStats:
        return self._pending.stats()

    def leftovers(self) -> list[tuple[str, list[_Item]]]:
        """What is still queued (for a last, synchronous send at interpreter exit)."""
        self._closing = True
        return self._pending.take_all()

    async def _run(self) -> None:
        down: BaseException | None = None  # as in ThreadBuffer._run
        while True:
            async with self._cond:
                while True:
                    experiment_id, wait = self._pending.pick(time.monotonic(), self._closing)
                    if experiment_id is not None:
                        break
                    if wait is None and self._closing:
                        return
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._cond.wait(), wait)
                items = self._pending.take(experiment_id)
            tally = Tally()
            try:
                if self._closing and down is not None:  # do not wait a retry budget per batch
                    fail(self._on_error, down, experiment_id, items, tally)
                else:
                    down = await adeliver(self._send, self._on_error, experiment_id, items, tally)
            finally:
                async with self._cond:
                    self._pending.settle(items, tally)
                    self._cond.notify_all()
