"""The parts of the auth layer on their own: route scopes, the key table, its cache and
the failure buckets (on a fake clock)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from octobandit.api import auth
from octobandit.api.auth import FailureLimiter, KeyCache, requirement
from octobandit.api.keys import KeyTable, check_scopes, key_hash, new_key
from octobandit.errors import InvalidInput


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/healthz", (None, None)),
        ("POST", "/healthz", (None, None)),  # 405 from the app: nothing to protect
        ("GET", "/ui/", (None, None)),
        ("GET", "/ui/app.js", (None, None)),
        ("POST", "/ui/x", ("admin", None)),
        ("GET", "/metrics", ("read", None)),
        ("GET", "/docs", ("read", None)),
        ("GET", "/openapi.json", ("read", None)),
        ("OPTIONS", "/v1/experiments", ("admin", None)),
        ("GET", "/v1/experiments", ("read", None)),
        ("POST", "/v1/experiments", ("admin", None)),
        ("GET", "/v1/experiments/e1/stats", ("read", "e1")),
        ("POST", "/v1/experiments/e1/decisions", ("decide", "e1")),
        ("POST", "/v1/experiments/e1/rewards", ("decide", "e1")),
        ("POST", "/v1/experiments/e1/decisions/logged", ("decide", "e1")),
        ("PUT", "/v1/experiments/e1/decisions", ("admin", "e1")),
        ("POST", "/v1/experiments/e1/reset", ("admin", "e1")),
        ("PUT", "/v1/experiments/e1/arms/a/stats", ("admin", "e1")),
        ("DELETE", "/v1/experiments/e1", ("admin", "e1")),
        ("POST", "/v1/experiments/e1/decisions/other", ("admin", "e1")),
    ],
)
def test_each_route_needs_the_scope_the_docs_give(
    method: str, path: str, expected: tuple[str | None, str | None]
) -> None:
    assert requirement(method, path, public_metrics=False) == expected


def test_public_metrics_need_no_key() -> None:
    assert requirement("GET", "/metrics", public_metrics=True) == (None, None)


def test_the_key_table_finds_active_keys_only() -> None:
    key, record = new_key("k", ["decide"], ["e1"], expires_at=100.0, now=0.0)
    other, revoked = new_key("r", ["admin"], now=0.0)
    revoked.revoked_at = 5.0
    assert record.hash == key_hash(key) and key not in repr(record)
    table = KeyTable([record, revoked])
    found = table.find(key, now=99.9)
    assert found is not None and found.allows("decide") and not found.allows("read")
    assert found.may_touch("e1") and not found.may_touch("e2")
    assert table.find(key, now=100.0) is None  # expired
    assert table.find(other, now=1.0) is None  # revoked
    assert table.find(key + "x", now=1.0) is None
    assert len(table) == 1


def test_admin_allows_every_scope_and_unknown_scopes_are_refused() -> None:
    key, record = new_key("a", ["admin"])
    principal = KeyTable([record]).find(key, now=record.created_at)
    assert principal is not None and all(principal.allows(s) for s in ("read", "decide"))
    assert check_scopes(["decide", "read", "read"]) == ("read", "decide")
    with pytest.raises(InvalidInput, match="unknown scope"):
        check_scopes(["write"])
    with pytest.raises(InvalidInput, match="at least one"):
        check_scopes([" "])


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now


def test_the_key_cache_refreshes_in_the_background_then_blocks_when_stale(
    monkeypatch: Any,
) -> None:
    clock = Clock()
    monkeypatch.setattr(auth, "time", SimpleNamespace(monotonic=clock.monotonic, time=clock.time))
    generations = [new_key(f"g{i}", ["read"], now=0.0)[1] for i in range(3)]
    calls: list[int] = []

    async def load() -> list[Any]:
        calls.append(len(calls))
        return [generations[len(calls) - 1]]

    async def scenario() -> None:
        cache = KeyCache(load, ttl=1.0)
        first = await cache.get()  # never loaded: waits for the load
        assert first is not None and list(first.records.values()) == [generations[0]]
        clock.now += 0.9
        assert await cache.get() is first and len(calls) == 1  # fresh: no load
        clock.now += 0.2  # 1.1 s old: answered from the old table, reloaded beside
        assert await cache.get() is first
        await asyncio.sleep(0)  # the background reload runs
        second = await cache.get()
        assert second is not first and list(second.records.values()) == [generations[1]]
        clock.now += 2.5  # more than 2 × ttl old: the reload is waited for
        third = await cache.get()
        assert third is not None and list(third.records.values()) == [generations[2]]
        assert len(calls) == 3

    asyncio.run(scenario())


def test_a_failing_store_keeps_the_last_keys_for_a_while(monkeypatch: Any) -> None:
    clock = Clock()
    monkeypatch.setattr(auth, "time", SimpleNamespace(monotonic=clock.monotonic, time=clock.time))
    fail = False

    async def load() -> list[Any]:
        if fail:
            raise OSError("engine gone")
        return []

    async def scenario() -> None:
        nonlocal fail
        cache = KeyCache(load, ttl=1.0)
        table = await cache.get()
        fail = True
        clock.now += auth.MAX_STALE - 1
        assert await cache.get() is table
        clock.now += 2
        assert await cache.get() is None  # too stale: the layer answers 503

    asyncio.run(scenario())


def test_the_failure_bucket_empties_after_the_burst_and_refills_at_its_rate() -> None:
    limiter = FailureLimiter(burst=3)  # 3 failures, refilled at 3 a minute: one per 20 s
    t = 0.0
    for _ in range(3):
        assert limiter.retry_after("a", t) is None
        limiter.fail("a", t)
    assert limiter.retry_after("a", t) == 20
    assert limiter.retry_after("b", t) is None  # per address
    t += 10.0
    assert limiter.retry_after("a", t) == 10
    t += 10.0 + 1e-9
    assert limiter.retry_after("a", t) is None
    limiter.fail("a", t)
    assert limiter.retry_after("a", t) == 20


def test_the_layer_over_an_engine_in_this_process(engine: Any) -> None:
    """``create_app(engine, Settings(auth=True))``: the keys come from the engine's store
    through the group committer (no engine process)."""
    from fastapi.testclient import TestClient

    from octobandit.api.app import create_app
    from octobandit.config import Settings

    key, record = new_key("in-process", ["read"])
    engine.storage.add_api_key(record)
    app = create_app(engine, Settings(auth=True))
    with TestClient(app, base_url="http://localhost") as client:
        assert client.get("/v1/experiments").status_code == 401
        ok = client.get("/v1/experiments", headers={"Authorization": f"Bearer {key}"})
        assert ok.status_code == 200 and ok.json() == {"experiments": []}
        refused = client.post(
            "/v1/experiments", json={"id": "x"}, headers={"Authorization": f"Bearer {key}"}
        )
        assert refused.status_code == 403
        assert client.get("/healthz").status_code == 200
    assert engine.storage.list_experiments() == []


def test_failures_are_logged_without_the_token(engine: Any, caplog: Any) -> None:
    from fastapi.testclient import TestClient

    from octobandit.api.app import create_app
    from octobandit.config import Settings

    guess = "ob_" + "s3cr3t" * 7
    app = create_app(engine, Settings(auth=True, auth_failure_burst=2))
    headers = {"Authorization": f"Bearer {guess}"}
    with (
        caplog.at_level("WARNING", logger="octobandit.auth"),
        TestClient(app, base_url="http://localhost") as client,
    ):
        statuses = [client.get("/v1/experiments/e1/stats", headers=headers) for _ in range(3)]
    assert [r.status_code for r in statuses] == [401, 401, 429]
    refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 2  # the 429 is not logged again
    assert all("/v1/experiments/e1/stats" in m and "GET" in m for m in refusals)
    assert not any(guess in r.getMessage() or "s3cr3t" in r.getMessage() for r in caplog.records)


def test_a_key_limited_to_experiments_cannot_read_the_metrics(engine: Any) -> None:
    from fastapi.testclient import TestClient

    from octobandit.api.app import create_app
    from octobandit.config import Settings

    key, record = new_key("limited", ["read"], ["e1"])
    engine.storage.add_api_key(record)
    app = create_app(engine, Settings(auth=True))
    with TestClient(app, base_url="http://localhost") as client:
        r = client.get("/metrics", headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
