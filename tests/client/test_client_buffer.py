"""The reward buffer: bounded, flushed in the background, on flush(), on close and at
exit; refused rewards are isolated and reported; after close the service's statistics
are exactly what was rewarded, whatever the order."""

from __future__ import annotations

import asyncio
import json
import math
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from octobandit.client import (
    AsyncClient,
    Client,
    Retry,
    Reward,
    RewardBufferFull,
)

GIVE_UP_AFTER_1S = Retry(attempts=2, backoff=1.0, jitter=0)
PATIENT = Retry(attempts=120, backoff=0.05, max_backoff=0.25)
DEAD = "http://127.0.0.1:9"  # nothing listens on the discard port


def _decisions(url: str, exp_id: str, n: int, arms: tuple[str, ...] = ("a", "b")) -> list[str]:
    with Client(url) as c:
        c.create_experiment(exp_id, arms=list(arms))
        return [d.decision_id for d in c.decide_batch(exp_id, n)]


def _reward_of(i: int) -> float:
    return float(i % 3 == 0)


class Failures:
    """An ``on_error`` that keeps what it is given."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, list[Reward]]] = []
        self.lock = threading.Lock()

    def __call__(self, error: BaseException, experiment_id: str, rewards: list[Reward]) -> None:
        with self.lock:
            self.calls.append(
                (getattr(error, "code", type(error).__name__), experiment_id, rewards)
            )

    def rewards(self) -> list[Reward]:
        return [r for _, _, batch in self.calls for r in batch]


def test_close_delivers_everything_from_many_threads(module_server: Any, exp_id: str) -> None:
    ids = {e: _decisions(module_server.url, f"{exp_id}-{e}", 400) for e in ("x", "y")}
    client = Client(module_server.url, flush_interval=60, batch_size=64)
    work = [(e, i, d) for e, ds in ids.items() for i, d in enumerate(ds)]

    def run(part: list[tuple[str, int, str]]) -> None:
        for e, i, d in part:
            client.reward(f"{exp_id}-{e}", d, _reward_of(i), buffered=True)

    threads = [threading.Thread(target=run, args=(work[k::4],)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    client.close()
    assert client.buffer_stats().queued == 0 and client.buffer_stats().accepted == 800
    with Client(module_server.url) as c:
        for e in ids:
            stats = c.stats(f"{exp_id}-{e}")
            assert sum(a.rewards for a in stats.arms) == 400
            assert stats.total_reward == sum(_reward_of(i) for i in range(400))
    with pytest.raises(RuntimeError, match="closed"):
        client.reward(f"{exp_id}-x", ids["x"][0], 1.0, buffered=True)


def test_async_close_delivers_everything_from_many_tasks(module_server: Any, exp_id: str) -> None:
    ids = _decisions(module_server.url, exp_id, 600)

    async def main() -> AsyncClient:
        client = AsyncClient(module_server.url, flush_interval=60, batch_size=50)

        async def run(part: list[tuple[int, str]]) -> None:
            for i, d in part:
                await client.reward(exp_id, d, _reward_of(i), buffered=True)
                await asyncio.sleep(0)

        work = list(enumerate(ids))
        await asyncio.gather(*(run(work[k::5]) for k in range(5)))
        async with client:
            pass
        return client

    client = asyncio.run(main())
    assert client.buffer_stats().accepted == 600 and client.buffer_stats().queued == 0
    with Client(module_server.url) as c:
        assert c.stats(exp_id).total_reward == sum(_reward_of(i) for i in range(600))


def _wait_for_rewards(url: str, exp_id: str, n: int, within: float = 10.0) -> float:
    started = time.monotonic()
    with Client(url) as c:
        while sum(a.rewards for a in c.stats(exp_id).arms) < n:
            assert time.monotonic() - started < within, "the buffer was not sent in time"
            time.sleep(0.05)
    return time.monotonic() - started


def test_the_buffer_is_sent_in_the_background(
    make_client: Any, module_server: Any, exp_id: str
) -> None:
    ids = _decisions(module_server.url, exp_id, 3)
    api = make_client(module_server.url, flush_interval=0.2)
    for d in ids:
        assert api.reward(exp_id, d, 1.0, buffered=True) is None
    if isinstance(api, Client):
        _wait_for_rewards(module_server.url, exp_id, 3)
    else:  # the async client's sender is a task: it runs while the loop does
        api.loop.run_until_complete(asyncio.sleep(1.0))
        _wait_for_rewards(module_server.url, exp_id, 3, within=0.5)
    assert api.buffer_stats().accepted == 3


def test_flush_sends_at_once_and_counts_duplicates(
    make_client: Any, module_server: Any, exp_id: str
) -> None:
    ids = _decisions(module_server.url, exp_id, 10)
    api = make_client(module_server.url, flush_interval=600)
    for d in [*ids, ids[0], ids[1]]:
        api.reward(exp_id, d, 1.0, buffered=True)
    api.flush(timeout=30)
    stats = api.buffer_stats()
    assert (stats.queued, stats.accepted, stats.duplicates, stats.failed) == (0, 10, 2, 0)
    assert api.stats(exp_id).total_reward == 10


def test_refused_rewards_are_isolated_and_reported(
    make_client: Any, module_server: Any, exp_id: str
) -> None:
    ids = _decisions(module_server.url, exp_id, 30)
    failures = Failures()
    api = make_client(module_server.url, flush_interval=600, on_error=failures)
    for i, d in enumerate(ids):
        api.reward(exp_id, d, 2.0 if i == 7 else _reward_of(i), buffered=True)  # binary: 2 is 422
    api.reward(exp_id, "no-such-decision", 1.0, buffered=True)
    api.reward(f"{exp_id}-gone", ids[0], 1.0, buffered=True)  # an unknown experiment
    api.flush()
    codes = sorted(code for code, _, _ in failures.calls)
    assert codes == ["decision_not_found", "experiment_not_found", "invalid"]
    refused = {(r.decision_id, r.reward) for r in failures.rewards()}
    assert refused == {(ids[7], 2.0), ("no-such-decision", 1.0), (ids[0], 1.0)}
    stats = api.buffer_stats()
    assert (stats.accepted, stats.failed, stats.queued) == (29, 3, 0)
    expected = sum(_reward_of(i) for i in range(30) if i != 7)
    assert api.stats(exp_id).total_reward == expected


def test_the_buffer_is_bounded(make_client: Any) -> None:
    failures = Failures()
    api = make_client(
        DEAD,
        buffer_size=5,
        batch_size=2,
        timeout=0.3,
        buffer_retry=GIVE_UP_AFTER_1S,
        on_error=failures,
    )
    for i in range(5):
        api.reward("e", f"d{i}", 1.0, buffered=True)
    started = time.monotonic()
    with pytest.raises(RewardBufferFull):
        api.reward("e", "d5", 1.0, buffered=True)
    assert time.monotonic() - started >= 0.25
    started = time.monotonic()
    api.close() if isinstance(api, Client) else api.shut()
    # three batches; once the first gave up, the other two are reported without a retry budget
    assert time.monotonic() - started < 2.5
    assert sorted(r.decision_id for r in failures.rewards()) == [f"d{i}" for i in range(5)]
    assert [(code, len(batch)) for code, _, batch in failures.calls] == [
        ("unreachable", 2),
        ("unreachable", 2),
        ("unreachable", 1),
    ]
    stats = api.buffer_stats()
    assert (stats.queued, stats.failed, stats.accepted) == (0, 5, 0)


def test_buffered_rewards_wait_for_a_restarted_service(
    make_client: Any, server_factory: Any, tmp_path: Path
) -> None:
    server = server_factory(tmp_path / "ob.db").start()
    ids = _decisions(server.url, "e", 50)
    api = make_client(server.url, flush_interval=0.05, batch_size=10, buffer_retry=PATIENT)
    for i, d in enumerate(ids[:20]):
        api.reward("e", d, _reward_of(i), buffered=True)
    api.flush()
    server.stop()
    for i, d in enumerate(ids[20:], start=20):
        api.reward("e", d, _reward_of(i), buffered=True)

    def restart() -> None:
        time.sleep(1.0)
        server_factory(server.db, port=server.port).start()

    thread = threading.Thread(target=restart)
    thread.start()
    api.flush(timeout=60)
    thread.join()
    assert api.buffer_stats().accepted == 50 and api.buffer_stats().failed == 0
    assert api.stats("e").total_reward == sum(_reward_of(i) for i in range(50))


SCRIPT = """
import asyncio, json, os, signal, sys
from octobandit.client import AsyncClient, Client
url, exp_id, mode = sys.argv[1:4]
ids = json.loads(sys.stdin.read())
if mode == "async-exit":
    async def main():
        client = AsyncClient(url, flush_interval=600)
        for d in ids:
            await client.reward(exp_id, d, 1.0, buffered=True)
    asyncio.run(main())  # the loop ends with the client open: atexit sends what is queued
else:
    client = Client(url, flush_interval=600)
    for d in ids:
        client.reward(exp_id, d, 1.0, buffered=True)
    if mode == "crash":
        os.kill(os.getpid(), signal.SIGKILL)
print("exiting", flush=True)
"""


@pytest.mark.parametrize("mode", ["exit", "async-exit", "crash"])
def test_at_exit_the_buffer_is_flushed_and_a_crash_loses_at_most_the_buffer(
    module_server: Any, exp_id: str, mode: str
) -> None:
    ids = _decisions(module_server.url, exp_id, 25)
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, module_server.url, exp_id, mode],
        input=json.dumps(ids),
        capture_output=True,
        text=True,
        timeout=120,
    )
    with Client(module_server.url) as c:
        rewards = sum(a.rewards for a in c.stats(exp_id).arms)
    if mode == "crash":
        assert proc.returncode == -signal.SIGKILL
        assert rewards == 0  # all 25 were queued (25 <= buffer_size): lost with the process
    else:
        assert proc.returncode == 0, proc.stderr
        assert rewards == 25 and not math.isnan(rewards)
