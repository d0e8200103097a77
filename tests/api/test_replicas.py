"""Several workers or replicas on one store, under concurrent load: acknowledgements,
the event log and the statistics agree exactly."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from octobandit.storage import SQLiteStorage, open_store
from octobandit.storage.base import Event, Storage

ARMS = ["a", "b", "c"]
CLIENTS = 48
DECISIONS = 1_200


async def _load(urls: list[str], seed: int) -> dict[str, Any]:
    """CLIENTS concurrent clients, each on a random replica per request: a decision, then
    (70 %) a 0/1 reward for it; every 4th round also 2 pulls of an arm rewarded 0.5."""
    rng = random.Random(seed)
    acked: dict[str, Any] = {"decisions": Counter(), "rewarded": Counter(), "sum": Counter()}
    acked_ids: set[str] = set()
    failures = Counter()
    todo = iter(range(DECISIONS))

    async def client(http: httpx.AsyncClient) -> None:
        for step in todo:
            url = rng.choice(urls) + "/v1/experiments/e"
            r = await http.post(url + "/decisions", json={})
            if r.status_code != 200:
                failures[r.status_code] += 1
                continue
            d = r.json()
            acked["decisions"][d["arm_id"]] += 1
            acked_ids.add(d["decision_id"])
            if rng.random() < 0.7:
                value = float(rng.random() < 0.4)
                r = await http.post(
                    rng.choice(urls) + "/v1/experiments/e/rewards",
                    json={"decision_id": d["decision_id"], "reward": value},
                )
                if r.status_code == 200:
                    acked["rewarded"][d["arm_id"]] += 1
                    acked["sum"][d["arm_id"]] += value
                else:
                    failures[r.status_code] += 1
            if step % 4 == 0:
                arm = rng.choice(ARMS)
                r = await http.post(
                    url + "/rewards", json={"arm_id": arm, "reward": 0.5, "count": 2}
                )
                if r.status_code == 200:
                    acked["rewarded"][arm] += 2
                    acked["sum"][arm] += 1.0
                else:
                    failures[r.status_code] += 1

    async with httpx.AsyncClient(timeout=30) as http:
        await asyncio.gather(*(client(http) for _ in range(CLIENTS)))
    return {**acked, "ids": acked_ids, "failures": failures}


def _check(store: Storage, urls: list[str], acked: dict[str, Any]) -> None:
    events: list[Event] = [e for e in store.events("e")]
    logged_ids = {e.decision_id for e in events if e.kind == "decision"}
    assert not acked["failures"], acked["failures"]
    assert logged_ids == acked["ids"]  # every acknowledged decision, and only those
    decisions = Counter(e.arm_id for e in events if e.kind == "decision")
    rewarded: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for e in events:
        if e.kind == "reward":
            assert e.arm_id is not None and e.count is not None and e.reward is not None
            rewarded[e.arm_id] += e.count
            total[e.arm_id] += e.reward * e.count
    assert decisions == acked["decisions"]
    assert rewarded == acked["rewarded"] and total == acked["sum"]
    for url in urls:  # every replica reports the same statistics: the fold of the log
        arms = {a["arm_id"]: a for a in httpx.get(url + "/v1/experiments/e/stats").json()["arms"]}
        assert {a: arms[a]["decisions"] for a in ARMS} == {a: decisions[a] for a in ARMS}
        assert {a: arms[a]["rewards"] for a in ARMS} == {a: rewarded[a] for a in ARMS}
        assert {a: arms[a]["reward_sum"] for a in ARMS} == {a: total[a] for a in ARMS}


@pytest.fixture
def sqlite_two_workers(
    server_factory: Any, tmp_path: Path
) -> Iterator[tuple[list[str], Callable[[], Storage]]]:
    db = tmp_path / "replicas.db"
    server = server_factory(db, workers=2).start()
    yield [server.url], lambda: SQLiteStorage(str(db))


def test_two_workers_on_sqlite(sqlite_two_workers: tuple[list[str], Callable[[], Storage]]) -> None:
    urls, open_store = sqlite_two_workers
    spec = {"id": "e", "arms": [{"id": a} for a in ARMS]}
    assert httpx.post(urls[0] + "/v1/experiments", json=spec).status_code == 201
    acked = asyncio.run(_load(urls, seed=8))
    store = open_store()
    try:
        _check(store, urls, acked)
    finally:
        store.close()


@pytest.fixture(params=["postgresql", "postgresql+redis"])
def postgres_three_replicas(
    request: pytest.FixtureRequest, postgres_url: str, server_factory: Any
) -> Iterator[tuple[list[str], Callable[[], Storage]]]:
    """Three services (separate processes and ports, one engine process each) on one
    PostgreSQL database, alone or with the per-arm state in Redis."""
    state = request.getfixturevalue("redis_url") if request.param.endswith("redis") else None
    env = {"OCTOBANDIT_STATE": state} if state else {}
    servers = [server_factory(postgres_url, env=env).start() for _ in range(3)]
    yield [s.url for s in servers], lambda: open_store(postgres_url, state=state)


def test_three_replicas_on_postgresql(
    postgres_three_replicas: tuple[list[str], Callable[[], Storage]],
) -> None:
    urls, open_store_ = postgres_three_replicas
    spec = {"id": "e", "arms": [{"id": a} for a in ARMS]}
    assert httpx.post(urls[1] + "/v1/experiments", json=spec).status_code == 201
    acked = asyncio.run(_load(urls, seed=9))
    store = open_store_()
    try:
        _check(store, urls, acked)
    finally:
        store.close()


def test_a_unit_gets_the_same_arm_from_every_replica(
    postgres_three_replicas: tuple[list[str], Callable[[], Storage]],
) -> None:
    """40 new units, each asking all three replicas at once for its first decision."""
    urls, _ = postgres_three_replicas
    spec = {"id": "e", "arms": [{"id": a} for a in ARMS]}
    assert httpx.post(urls[0] + "/v1/experiments", json=spec).status_code == 201

    async def run() -> list[set[str]]:
        async with httpx.AsyncClient(timeout=30) as http:

            async def unit(u: int) -> set[str]:
                answers = await asyncio.gather(
                    *(
                        http.post(f"{url}/v1/experiments/e/decisions", json={"unit_id": f"u{u}"})
                        for url in urls
                        for _ in range(2)
                    )
                )
                assert all(r.status_code == 200 for r in answers)
                return {r.json()["arm_id"] for r in answers}

            return await asyncio.gather(*(unit(u) for u in range(40)))

    arms = asyncio.run(run())
    assert all(len(a) == 1 for a in arms), arms
    assert len(set().union(*arms)) > 1  # the units were not all sent to one arm


FULL_CLIENTS = 64
FULL_DECISIONS = 20_000
FULL_REWARDS = 100_000
BULK = 50  # rewards by arm per bulk request


async def _full_load(urls: list[str], seed: int) -> dict[str, Any]:
    """FULL_CLIENTS clients on random replicas: FULL_DECISIONS decisions, each rewarded
    by its id in bulk requests of 5, and rewards by arm in bulk requests of BULK, so that
    FULL_REWARDS rewards are acknowledged in all."""
    rng = random.Random(seed)
    acked: dict[str, Any] = {"decisions": Counter(), "rewarded": Counter(), "sum": Counter()}
    acked_ids: set[str] = set()
    failures: Counter[Any] = Counter()
    by_arm = (FULL_REWARDS - FULL_DECISIONS) // BULK
    todo = iter(range(FULL_DECISIONS // 5 + by_arm))

    async def post(http: httpx.AsyncClient, path: str, body: Any) -> httpx.Response | None:
        r = await http.post(rng.choice(urls) + "/v1/experiments/e" + path, json=body)
        if r.status_code != 200:
            failures[(r.status_code, r.text[:200])] += 1
            return None
        return r

    async def client(http: httpx.AsyncClient) -> None:
        for step in todo:
            if step < FULL_DECISIONS // 5:
                r = await post(http, "/decisions", {"n": 5})
                if r is None:
                    continue
                rewards = []
                for d in r.json()["decisions"]:
                    acked["decisions"][d["arm_id"]] += 1
                    acked_ids.add(d["decision_id"])
                    rewards.append((d, float(rng.random() < 0.4)))
                body = {
                    "rewards": [{"decision_id": d["decision_id"], "reward": v} for d, v in rewards]
                }
                if await post(http, "/rewards", body) is not None:
                    for d, v in rewards:
                        acked["rewarded"][d["arm_id"]] += 1
                        acked["sum"][d["arm_id"]] += v
            else:
                items = [(rng.choice(ARMS), float(rng.random() < 0.5)) for _ in range(BULK)]
                body = {"rewards": [{"arm_id": a, "reward": v} for a, v in items]}
                if await post(http, "/rewards", body) is not None:
                    for a, v in items:
                        acked["rewarded"][a] += 1
                        acked["sum"][a] += v

    # idle connections are dropped by the client (2 s) before the server's keep-alive
    # timeout (uvicorn: 5 s) can close one under a request: on a loaded machine that race
    # was a ReadError that says nothing of the service
    limits = httpx.Limits(max_connections=FULL_CLIENTS, keepalive_expiry=2.0)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        await asyncio.gather(*(client(http) for _ in range(FULL_CLIENTS)))
    return {**acked, "ids": acked_ids, "failures": failures}


def test_full_size_exactness_on_three_replicas(
    postgres_three_replicas: tuple[list[str], Callable[[], Storage]],
) -> None:
    """64 clients over three replicas, 20,000 decisions and 100,000 rewards: every
    acknowledgement is in the log once, and every replica's statistics are its fold."""
    urls, open_store_ = postgres_three_replicas
    spec = {"id": "e", "arms": [{"id": a} for a in ARMS]}
    assert httpx.post(urls[2] + "/v1/experiments", json=spec).status_code == 201
    acked = asyncio.run(_full_load(urls, seed=21))
    assert sum(acked["decisions"].values()) == FULL_DECISIONS
    assert sum(acked["rewarded"].values()) == FULL_REWARDS
    store = open_store_()
    try:
        _check(store, urls, acked)
    finally:
        store.close()
