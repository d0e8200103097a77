"""Crash test: SIGKILLs under concurrent load lose no acknowledged write.

A real server takes decisions and rewards (by decision id, by arm with a count,
single and in bulk) from several client threads on two experiments while it is
killed with SIGKILL at a random moment, four times (one round with two worker
processes), and restarted on the same database file each time. Afterwards every
acknowledged decision and reward is in the event log, and every arm's stored
statistics equal the fold of the event log (the same fold as
tests/engine/test_event_log.py).
"""

from __future__ import annotations

import importlib.util
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from octobandit.storage import SQLiteStorage, Storage, open_store

pytestmark = pytest.mark.slow

ROUNDS = [1, 1, 2, 1]  # worker processes in each round; the server is SIGKILLed after each
THREADS = 6
EXPERIMENTS = {"bin": "binary", "cont": "continuous"}
ARMS = ["a", "b", "c"]


def _load_fold() -> Any:
    """The event-log fold of tests/engine/test_event_log.py (one definition for both)."""
    path = Path(__file__).resolve().parents[1] / "engine" / "test_event_log.py"
    spec = importlib.util.spec_from_file_location("_event_log_fold", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_fold_module = _load_fold()
fold, stored_row = _fold_module.fold, _fold_module.stored_row
agrees_with_fold = _fold_module.agrees_with_fold


@dataclass
class Acked:
    """What the server acknowledged (answered 200), across all threads and rounds."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    decisions: dict[tuple[str, str], str] = field(default_factory=dict)  # (exp, id) -> arm
    unrewarded: list[tuple[str, str]] = field(default_factory=list)
    by_id: dict[tuple[str, str], float] = field(default_factory=dict)  # (exp, id) -> reward
    by_arm: Counter[tuple[str, str, float, float]] = field(default_factory=Counter)
    failed: int = 0  # requests without an answer (the server was killed)
    statuses: Counter[int] = field(default_factory=Counter)  # of the answered requests
    codes: Counter[str] = field(default_factory=Counter)  # error codes of non-200 answers


class _Prefixed:
    """POSTs to one server through a shared client, counting the answers' statuses."""

    def __init__(self, http: httpx.Client, url: str, acked: Acked) -> None:
        self.http, self.url, self.acked = http, url, acked

    def post(self, path: str, json: Any) -> httpx.Response:
        r = self.http.post(self.url + path, json=json)
        with self.acked.lock:
            self.acked.statuses[r.status_code] += 1
            if r.status_code != 200:
                self.acked.codes[r.json()["error"]["code"]] += 1
        return r


def _value(rng: random.Random, exp: str) -> float:
    return float(rng.random() < 0.5) if exp == "bin" else round(rng.gauss(10, 3), 6)


def _load(urls: list[str], acked: Acked, stop: threading.Event, seed: int) -> None:
    """Requests to a random one of ``urls`` each (the list may change meanwhile)."""
    rng = random.Random(seed)
    serial = 0
    with httpx.Client(timeout=10) as http:
        while not stop.is_set():
            client = _Prefixed(http, rng.choice(urls), acked)
            exp = rng.choice(list(EXPERIMENTS))
            u = rng.random()
            try:
                if u < 0.45:  # decisions: one, or several in a request
                    body = {"n": rng.randint(2, 4)} if rng.random() < 0.3 else {}
                    r = client.post(f"/v1/experiments/{exp}/decisions", json=body)
                    if r.status_code == 200:
                        out = r.json()
                        with acked.lock:
                            for d in out.get("decisions", [out]):
                                acked.decisions[(exp, d["decision_id"])] = d["arm_id"]
                                acked.unrewarded.append((exp, d["decision_id"]))
                    continue
                if u < 0.8:  # rewards by decision id, one or in bulk
                    with acked.lock:
                        mine = [p for p in acked.unrewarded if p[0] == exp][: rng.randint(1, 3)]
                        for p in mine:
                            acked.unrewarded.remove(p)
                    if not mine:
                        continue
                    items = [{"decision_id": d, "reward": _value(rng, exp)} for _, d in mine]
                    body = items[0] if len(items) == 1 else {"rewards": items}
                    r = client.post(f"/v1/experiments/{exp}/rewards", json=body)
                    if r.status_code == 200:
                        assert r.json() == {"accepted": len(items), "duplicates": 0}
                        with acked.lock:
                            for it in items:
                                acked.by_id[(exp, it["decision_id"])] = it["reward"]
                    continue
                # rewards by arm with a count; a serial number makes each one traceable
                serial += 1
                reward = float(serial + seed * 100_000) if exp == "cont" else _value(rng, exp)
                item = {"arm_id": rng.choice(ARMS), "reward": reward, "count": rng.randint(1, 5)}
                r = client.post(f"/v1/experiments/{exp}/rewards", json=item)
                if r.status_code == 200:
                    with acked.lock:
                        acked.by_arm[(exp, item["arm_id"], reward, float(item["count"]))] += 1
            except httpx.HTTPError:
                with acked.lock:
                    acked.failed += 1
                time.sleep(0.01)


def test_sigkill_under_load_loses_no_acknowledged_write(
    server_factory: Any, tmp_path: Path
) -> None:
    db = tmp_path / "crash.db"
    rng = random.Random(7)
    server = server_factory(db).start()
    for exp, reward in EXPERIMENTS.items():
        spec = {"id": exp, "reward": {"type": reward}, "arms": [{"id": a} for a in ARMS]}
        assert httpx.post(server.url + "/v1/experiments", json=spec).status_code == 201
    server.stop()
    acked = Acked()
    per_round: list[tuple[int, int]] = []
    for round_no, workers in enumerate(ROUNDS):
        server = server_factory(db, workers=workers).start()
        stop = threading.Event()
        threads = [
            threading.Thread(target=_load, args=([server.url], acked, stop, 10 * round_no + t))
            for t in range(THREADS)
        ]
        before = (len(acked.decisions), acked.failed)
        for t in threads:
            t.start()
        time.sleep(rng.uniform(1.0, 3.0))
        server.kill()  # SIGKILL, mid-load: no shutdown code runs
        stop.set()
        for t in threads:
            t.join(timeout=30)
        per_round.append((len(acked.decisions) - before[0], acked.failed - before[1]))

    for n_decisions, n_failed in per_round:  # the load really ran, and the kill cut into it
        assert n_decisions >= 20 and n_failed >= 1, per_round

    server = server_factory(db).start()  # recovers after the last kill
    assert httpx.get(server.url + "/v1/experiments/bin/stats").status_code == 200
    server.stop()

    storage = SQLiteStorage(str(db))
    try:
        verify(storage, acked)
    finally:
        storage.close()


def _replicas_under_load(
    urls: list[str], seed: int
) -> tuple[Acked, threading.Event, list[threading.Thread]]:
    """Create the experiments on the first replica, then start THREADS load threads
    spreading their requests over ``urls`` (which the caller may change meanwhile)."""
    for exp, reward in EXPERIMENTS.items():
        spec = {"id": exp, "reward": {"type": reward}, "arms": [{"id": a} for a in ARMS]}
        assert httpx.post(urls[0] + "/v1/experiments", json=spec).status_code == 201
    acked, stop = Acked(), threading.Event()
    threads = [
        threading.Thread(target=_load, args=(urls, acked, stop, seed + t)) for t in range(THREADS)
    ]
    for t in threads:
        t.start()
    return acked, stop, threads


def verify(storage: Storage, acked: Acked) -> None:
    """Every acknowledged write is in the log, none twice, and the statistics are its fold."""
    events = list(storage.events())
    logged_decisions = {
        (e.experiment_id, e.decision_id): e.arm_id for e in events if e.kind == "decision"
    }
    logged_by_id = {
        (e.experiment_id, e.decision_id): e.reward
        for e in events
        if e.kind == "reward" and e.decision_id is not None
    }
    logged_by_arm = Counter(
        (e.experiment_id, e.arm_id, e.reward, e.count)
        for e in events
        if e.kind == "reward" and e.decision_id is None
    )
    lost = {k: v for k, v in acked.decisions.items() if logged_decisions.get(k) != v}
    assert not lost, f"{len(lost)} acknowledged decisions missing"
    lost = {k: v for k, v in acked.by_id.items() if logged_by_id.get(k) != v}
    assert not lost, f"{len(lost)} acknowledged rewards by decision id missing"
    missing = acked.by_arm - logged_by_arm
    assert not missing, f"acknowledged rewards by arm missing: {missing}"
    assert len(acked.by_id) > 0 and sum(acked.by_arm.values()) > 0
    twice = Counter(
        (e.experiment_id, e.decision_id)
        for e in events
        if e.kind == "reward" and e.decision_id is not None
    )
    assert max(twice.values()) == 1, "a decision rewarded twice"

    # the fold of the log, within the rounding of adding a group's rewards as one delta
    folded, sizes = fold(events), fold(events, magnitude=True)
    terms = sum(1 for e in events if e.kind == "reward")
    for exp in EXPERIMENTS:
        record = storage.get_experiment(exp)
        assert record is not None
        for arm in record.arms:
            key = (exp, arm.arm_id)
            assert agrees_with_fold(folded[key], sizes[key], stored_row(arm), terms), key


@pytest.mark.parametrize("with_redis", [False, True], ids=["postgresql", "postgresql+redis"])
def test_killing_replicas_on_postgresql_loses_nothing(
    postgres_url: str, server_factory: Any, request: pytest.FixtureRequest, with_redis: bool
) -> None:
    """Two replicas on one PostgreSQL database (alone, or with the state in Redis) under
    load from threads that spread their requests over both; one replica at a time is
    SIGKILLed at a random moment and a new one started, ten times. Nothing acknowledged
    is lost or counted twice, and the statistics are the fold of the log."""
    rng = random.Random(11)
    state = request.getfixturevalue("redis_url") if with_redis else None
    env = {"OCTOBANDIT_STATE": state} if state else {}
    replicas = [server_factory(postgres_url, env=env).start() for _ in range(2)]
    urls = [r.url for r in replicas]
    acked, stop, threads = _replicas_under_load(urls, seed=500)
    kills = []
    for _ in range(10):
        time.sleep(rng.uniform(0.5, 1.5))
        j = rng.randrange(2)
        before = len(acked.decisions)
        replicas[j].kill()  # SIGKILL of its whole process group, mid-load
        replicas[j] = server_factory(postgres_url, env=env).start()
        urls[j] = replicas[j].url
        kills.append(len(acked.decisions) - before)
    time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert acked.failed >= 1 and len(acked.decisions) >= 100, (acked.failed, kills)
    assert set(acked.statuses) <= {200, 503}, acked.statuses  # never a 500
    storage = open_store(postgres_url, state=state)
    try:
        verify(storage, acked)
    finally:
        storage.close()


def test_redis_flushed_and_restarted_under_load(
    postgres_url: str, server_factory: Any, private_redis: Any
) -> None:
    """Two replicas on PostgreSQL + Redis under load: Redis is flushed (FLUSHALL), later
    killed and restarted empty. While it is down, writes get 503 ``state_unavailable``
    (never a 500, never an acknowledgement of what was not logged); afterwards the
    service recovers by itself and the state is the fold of the log."""
    env = {"OCTOBANDIT_STATE": private_redis.url}
    replicas = [server_factory(postgres_url, env=env).start() for _ in range(2)]
    urls = [r.url for r in replicas]
    acked, stop, threads = _replicas_under_load(urls, seed=700)
    import redis

    time.sleep(1.5)
    with redis.Redis.from_url(private_redis.url) as client:
        client.flushall()
    time.sleep(1.5)
    private_redis.stop()  # killed: what it held is gone
    time.sleep(1.5)
    down = acked.statuses[503]
    private_redis.start()  # back, empty
    time.sleep(2.0)
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert set(acked.statuses) <= {200, 503}, acked.statuses  # never a 500
    assert down >= 1 and set(acked.codes) <= {"state_unavailable"}, acked.codes
    assert acked.statuses[200] >= 200, acked.statuses
    answered = sum(acked.statuses.values())
    time.sleep(0.2)
    with httpx.Client(timeout=10) as http:  # recovered: writes are answered again
        r = http.post(urls[1] + "/v1/experiments/bin/decisions", json={})
        assert r.status_code == 200, r.text
        acked.decisions[("bin", r.json()["decision_id"])] = r.json()["arm_id"]
    assert answered > down
    storage = open_store(postgres_url, state=private_redis.url)
    try:
        verify(storage, acked)
    finally:
        storage.close()
