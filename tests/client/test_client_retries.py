"""Retries: idempotent calls and rewards by decision id survive a restarted server;
calls that are not idempotent are retried only when they cannot have had an effect."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from octobandit.client import (
    AsyncClient,
    Client,
    Retry,
    ServiceUnreachable,
    UnavailableError,
)
from octobandit.client._retry import Retry as RetryPolicy

#: patient enough for a restart of the service on this machine (about 30 s)
PATIENT = Retry(attempts=120, backoff=0.05, max_backoff=0.25)
FAST = Retry(attempts=4, backoff=0.001, max_backoff=0.001)


def _restart_later(server: Any, factory: Any, delay: float) -> threading.Thread:
    """Start a new service on the same port and database after ``delay`` seconds."""

    def run() -> None:
        time.sleep(delay)
        factory(server.db, port=server.port).start()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_a_run_goes_on_across_a_restart_of_the_service(
    make_client: Callable[..., Any], server_factory: Any, tmp_path: Path, how: str
) -> None:
    server = server_factory(tmp_path / "ob.db").start()
    api = make_client(server.url, retry=PATIENT)
    api.create_experiment("run", policy="thompson", arms=["a", "b", "c"])
    served: list[str] = []
    total = 0.0
    for i in range(40):
        if i == 20:  # mid-run, between two calls: the service goes away and comes back
            server.stop() if how == "stop" else server.kill()
            restart = _restart_later(server, server_factory, 1.0)
        d = api.decide("run", unit_id=f"u{i % 7}" if i % 2 else None)
        reward = 1.0 if d.arm_id == "b" else 0.0
        answer = api.reward("run", d.decision_id, reward)
        assert (answer.accepted, answer.duplicates) == (1, 0)
        served.append(d.arm_id)
        total += reward
    restart.join(30)
    stats = api.stats("run")
    assert stats.total_decisions == 40 and stats.total_reward == total
    assert sum(a.rewards for a in stats.arms) == 40
    assert api.get_experiment("run").arms[1].id == "b"


def test_idempotent_reads_wait_for_the_service_and_others_give_up_without_retry(
    make_client: Callable[..., Any], server_factory: Any, tmp_path: Path
) -> None:
    server = server_factory(tmp_path / "ob.db").start()
    api = make_client(server.url, retry=PATIENT)
    impatient = make_client(server.url, retry=Retry.never())
    api.create_experiment("e", arms=["a"])
    d = api.decide("e")
    server.stop()
    with pytest.raises(ServiceUnreachable) as info:
        impatient.stats("e")
    assert info.value.attempts == 1
    restart = _restart_later(server, server_factory, 1.0)
    started = time.monotonic()
    assert api.reward("e", d.decision_id, 1.0).accepted == 1  # waited for the new service
    assert time.monotonic() - started >= 0.9
    assert api.stats("e").total_reward == 1.0
    assert api.reward("e", d.decision_id, 1.0).duplicates == 1
    restart.join(30)


# -- the rules, on a scripted transport ---------------------------------------------


class Script:
    """Answers requests in turn from a list: a status with an error code, or an exception."""

    def __init__(self, *steps: Any) -> None:
        self.steps = list(steps)
        self.calls = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        step = self.steps[min(self.calls, len(self.steps) - 1)]
        self.calls += 1
        if isinstance(step, Exception):
            raise step
        status, body = step
        headers = {"retry-after": "0"} if status == 503 else {}
        return httpx.Response(status, content=body, headers=headers)


DECISION = b'{"decision_id":"d","experiment_id":"e","arm_id":"a","payload":null,"propensity":1.0}'
REWARDED = b'{"accepted":1,"duplicates":0}'


def _err(status: int, code: str) -> tuple[int, bytes]:
    return status, f'{{"error":{{"code":"{code}","message":"m"}}}}'.encode()


def _lost() -> Exception:
    return httpx.RemoteProtocolError("Server disconnected without sending a response")


def _refused() -> Exception:
    return httpx.ConnectError("connection refused")


CASES: list[tuple[str, list[Any], int, Any]] = [
    # (call, script, expected tries, expected result or exception class)
    ("decide", [_refused(), _refused(), (200, DECISION)], 3, "d"),
    ("decide", [_lost(), (200, DECISION)], 1, ServiceUnreachable),
    ("decide", [_err(503, "engine_unavailable"), (200, DECISION)], 1, UnavailableError),
    ("decide", [_err(503, "too_many_connections"), (200, DECISION)], 2, "d"),
    ("decide", [_err(503, "storage_full"), (200, DECISION)], 2, "d"),
    ("decide", [_err(503, "state_unavailable"), (200, DECISION)], 2, "d"),
    ("decide", [_err(503, "storage_lost"), (200, DECISION)], 1, UnavailableError),
    ("decide", [_err(502, "bad_gateway"), (200, DECISION)], 1, Exception),
    ("reward", [_lost(), _err(503, "engine_unavailable"), (200, REWARDED)], 3, 1),
    ("reward", [_err(502, "bad_gateway"), _err(504, "timeout"), (200, REWARDED)], 3, 1),
    ("reward", [_err(500, "internal"), (200, REWARDED)], 1, Exception),
    ("reward", [_err(422, "invalid"), (200, REWARDED)], 1, Exception),
    ("reward_arm", [_lost(), (200, REWARDED)], 1, ServiceUnreachable),
    ("reward_arm", [_refused(), (200, REWARDED)], 2, 1),
    ("delete_experiment", [_lost(), _err(404, "experiment_not_found")], 2, None),
    ("delete_experiment", [_err(404, "experiment_not_found")], 1, Exception),
    ("decide", [_refused()] * 10, 4, ServiceUnreachable),
]
ARGS: dict[str, tuple[Any, ...]] = {
    "decide": ("e",),
    "reward": ("e", "d", 1.0),
    "reward_arm": ("e", "a", 1.0),
    "delete_experiment": ("e",),
}


def _check(result: Any, expected: Any, calls: int, tries: int) -> None:
    assert calls == tries
    if expected == "d":
        assert result.decision_id == "d"
    elif expected == 1:
        assert result.accepted == 1
    else:
        assert result is expected


@pytest.mark.parametrize(("call", "steps", "tries", "expected"), CASES)
def test_what_is_retried_sync(call: str, steps: list[Any], tries: int, expected: Any) -> None:
    script = Script(*steps)
    with Client("http://svc", retry=FAST, transport=httpx.MockTransport(script)) as client:
        if isinstance(expected, type):
            with pytest.raises(expected) as info:
                getattr(client, call)(*ARGS[call])
            assert getattr(info.value, "attempts", tries) == tries
            assert script.calls == tries
        else:
            _check(getattr(client, call)(*ARGS[call]), expected, script.calls, tries)


@pytest.mark.parametrize(("call", "steps", "tries", "expected"), CASES)
def test_what_is_retried_async(call: str, steps: list[Any], tries: int, expected: Any) -> None:
    async def main() -> None:
        script = Script(*steps)
        transport = httpx.MockTransport(script)
        async with AsyncClient("http://svc", retry=FAST, transport=transport) as client:
            if isinstance(expected, type):
                with pytest.raises(expected):
                    await getattr(client, call)(*ARGS[call])
                assert script.calls == tries
            else:
                _check(await getattr(client, call)(*ARGS[call]), expected, script.calls, tries)

    asyncio.run(main())


def test_bulk_rewards_are_idempotent_only_by_decision_id() -> None:
    by_decision = Script(_lost(), (200, REWARDED))
    by_arm = Script(_lost(), (200, REWARDED))
    with Client("http://svc", retry=FAST, transport=httpx.MockTransport(by_decision)) as c:
        c.rewards("e", [{"decision_id": "d1", "reward": 1}, {"decision_id": "d2", "reward": 0}])
    with (
        Client("http://svc", retry=FAST, transport=httpx.MockTransport(by_arm)) as c,
        pytest.raises(ServiceUnreachable),
    ):
        c.rewards("e", [{"decision_id": "d1", "reward": 1}, {"arm_id": "a", "reward": 0}])
    assert (by_decision.calls, by_arm.calls) == (2, 1)


def test_backoff_grows_is_capped_jittered_and_follows_retry_after() -> None:
    policy = RetryPolicy(attempts=10, backoff=0.1, multiplier=2, max_backoff=1.0, jitter=0.5)
    for attempt, base in [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.8), (5, 1.0), (9, 1.0)]:
        delays = [policy.delay(attempt) for _ in range(50)]
        assert all(base * 0.5 <= d <= base for d in delays)
    assert policy.delay(1, "0.7") == 0.7 and policy.delay(1, "60") == 1.0
    assert 0.05 <= policy.delay(1, "Wed, 21 Oct 2015 07:28:00 GMT") <= 0.1
    with pytest.raises(ValueError):
        Retry(attempts=0)
