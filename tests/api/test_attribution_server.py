"""Attribution windows on the real service: over HTTP, across a SIGKILL (windows that
closed while it was down are settled once after the restart, also when it is killed in
the middle of settling a backlog), and with two workers or replicas ticking at once."""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from octobandit.storage import SQLiteStorage, Storage, open_store

FAST_TICK = {"OCTOBANDIT_TICK_SECONDS": "0.2"}
ARMS = ["a", "b", "c"]


def create(url: str, window: float, **reward: Any) -> None:
    spec = {
        "id": "w",
        "arms": [{"id": a} for a in ARMS],
        "reward": {"attribution_window": window, **reward},
    }
    r = httpx.post(url + "/v1/experiments", json=spec)
    assert r.status_code == 201, r.text
    assert r.json()["reward"] == {
        "type": "binary",
        "attribution_window": window,
        "default": 0.0,
        "aggregation": "first",
        **reward,
    }


def decide(url: str, n: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while len(out) < n:
        r = httpx.post(url + "/v1/experiments/w/decisions", json={"n": min(500, n - len(out))})
        assert r.status_code == 200, r.text
        out += r.json()["decisions"]
    return out


def reward(url: str, ids: list[str]) -> dict[str, int]:
    body = {"rewards": [{"decision_id": d, "reward": 1.0} for d in ids]}
    r = httpx.post(url + "/v1/experiments/w/rewards", json=body)
    assert r.status_code == 200, r.text
    answer: dict[str, int] = r.json()
    return answer


def wait_settled(url: str, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        stats: dict[str, Any] = httpx.get(url + "/v1/experiments/w/stats", timeout=10).json()
        if stats["pending_decisions"] == 0:
            return stats
        assert time.monotonic() < deadline, stats
        time.sleep(0.2)


def exactly_once(store: Storage, decisions: list[dict[str, Any]], converted: set[str]) -> None:
    """Every decision has one outcome: its reward if it was converted, else the default."""
    outcome: dict[str, list[tuple[str, float]]] = {}
    for e in store.events("w"):
        if e.kind in ("reward", "default"):
            outcome.setdefault(e.decision_id or "", []).append((e.kind, e.reward or 0.0))
    assert set(outcome) == {d["decision_id"] for d in decisions}
    for d in decisions:
        expected = ("reward", 1.0) if d["decision_id"] in converted else ("default", 0.0)
        assert outcome[d["decision_id"]] == [expected]


def check_stats(stats: dict[str, Any], decisions: list[dict[str, Any]], converted: set[str]):
    decided = Counter(d["arm_id"] for d in decisions)
    wins = Counter(d["arm_id"] for d in decisions if d["decision_id"] in converted)
    arms = {a["arm_id"]: a for a in stats["arms"]}
    assert {a: arms[a]["decisions"] for a in ARMS} == {a: decided[a] for a in ARMS}
    assert {a: arms[a]["rewards"] for a in ARMS} == {a: decided[a] for a in ARMS}
    assert {a: arms[a]["reward_sum"] for a in ARMS} == {a: wins[a] for a in ARMS}


def test_windows_over_http(server_factory: Any, tmp_path: Path) -> None:
    server = server_factory(tmp_path / "w.db", env=FAST_TICK).start()
    create(server.url, 1.5)
    decisions = decide(server.url, 300)
    converted = {d["decision_id"] for d in decisions[::4]}
    assert reward(server.url, sorted(converted)) == {"accepted": 75, "duplicates": 0, "late": 0}
    stats = httpx.get(server.url + "/v1/experiments/w/stats").json()
    assert stats["pending_decisions"] == 300  # rewarded or not: counted at the close
    assert sum(a["pending"] for a in stats["arms"]) == 300
    assert sum(a["rewards"] for a in stats["arms"]) == 0
    stats = wait_settled(server.url)
    check_stats(stats, decisions, converted)
    late = reward(server.url, [decisions[1]["decision_id"]])
    assert late == {"accepted": 0, "duplicates": 0, "late": 1}
    arm_level = httpx.post(
        server.url + "/v1/experiments/w/rewards", json={"arm_id": "a", "reward": 1.0}
    )
    assert arm_level.status_code == 422 and arm_level.json()["error"]["field"] == "arm_id"
    server.stop()
    store = SQLiteStorage(str(tmp_path / "w.db"))
    try:
        exactly_once(store, decisions, converted)
    finally:
        store.close()


def test_windows_that_closed_during_a_sigkill_are_settled_once(
    server_factory: Any, tmp_path: Path
) -> None:
    db = tmp_path / "k.db"
    server = server_factory(db, env=FAST_TICK).start()
    create(server.url, 1.0)
    decisions = decide(server.url, 400)
    converted = {d["decision_id"] for d in decisions[::5]}
    assert reward(server.url, sorted(converted))["accepted"] == 80
    server.kill()  # before any window closed
    time.sleep(1.5)  # every window closes while the service is down
    server = server_factory(db, env=FAST_TICK).start()
    check_stats(wait_settled(server.url), decisions, converted)
    server.stop()
    store = SQLiteStorage(str(db))
    try:
        exactly_once(store, decisions, converted)
    finally:
        store.close()


def test_killed_again_and_again_while_settling_a_backlog(
    server_factory: Any, tmp_path: Path
) -> None:
    """A backlog settled over several ticks, the service SIGKILLed at random moments in
    between: in the end every decision has exactly one outcome."""
    db = tmp_path / "b.db"
    server = server_factory(db, env=FAST_TICK).start()
    create(server.url, 2.0)
    decisions: list[dict[str, Any]] = []
    converted: set[str] = set()
    for _ in range(60):  # each batch's conversions reported at once, inside its window
        batch = decide(server.url, 500)
        decisions += batch
        wins = [d["decision_id"] for d in batch[::10]]
        converted.update(wins)
        assert reward(server.url, wins)["accepted"] == len(wins)
    server.kill()
    time.sleep(2.0)  # all 30,000 windows closed: a backlog of several ticks
    rng = random.Random(4)
    for _ in range(4):
        server = server_factory(db, env=FAST_TICK).start()
        time.sleep(rng.uniform(0.0, 0.6))
        server.kill()
    server = server_factory(db, env=FAST_TICK).start()
    check_stats(wait_settled(server.url, timeout=120), decisions, converted)
    server.stop()
    store = SQLiteStorage(str(db))
    try:
        exactly_once(store, decisions, converted)
    finally:
        store.close()


def two_services(
    kind: str, request: pytest.FixtureRequest, server_factory: Any, tmp_path: Path
) -> tuple[list[str], Callable[[], Storage]]:
    if kind == "sqlite-2-workers":
        db = tmp_path / "two.db"
        server = server_factory(db, workers=2, env=FAST_TICK).start()
        return [server.url], lambda: SQLiteStorage(str(db))
    if kind == "sqlite-2-services":  # two services, each with its own engine, on one file
        db = tmp_path / "two.db"
        servers = [server_factory(db, env=FAST_TICK).start() for _ in range(2)]
        return [s.url for s in servers], lambda: SQLiteStorage(str(db))
    url = request.getfixturevalue("postgres_url")
    state = request.getfixturevalue("redis_url") if kind.endswith("redis") else None
    env = {**FAST_TICK, **({"OCTOBANDIT_STATE": state} if state else {})}
    servers = [server_factory(url, env=env).start() for _ in range(2)]
    return [s.url for s in servers], lambda: open_store(url, state=state)


@pytest.mark.parametrize(
    "kind", ["sqlite-2-workers", "sqlite-2-services", "postgresql", "postgresql+redis"]
)
def test_two_workers_or_replicas_apply_each_default_once(
    kind: str, request: pytest.FixtureRequest, server_factory: Any, tmp_path: Path
) -> None:
    urls, opener = two_services(kind, request, server_factory, tmp_path)
    create(urls[0], 1.0)
    decisions: list[dict[str, Any]] = []
    converted: set[str] = set()
    for i in range(20):  # traffic through both, while both tick
        batch = decide(urls[i % len(urls)], 100)
        decisions += batch
        wins = [d["decision_id"] for d in batch[:: 3 + i % 2]]
        converted.update(wins)
        assert reward(urls[(i + 1) % len(urls)], wins)["accepted"] == len(wins)
        time.sleep(0.1)
    for url in urls:
        check_stats(wait_settled(url), decisions, converted)
    store = opener()
    try:
        exactly_once(store, decisions, converted)
    finally:
        store.close()
