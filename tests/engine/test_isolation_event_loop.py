"""Storage work never blocks the event loop: a stalled storage call leaves /healthz quick.

A real uvicorn server runs in a thread; the storage is stalled for 2 s in three
ways (a slow group commit, a slow control-plane read, another connection
holding SQLite's write lock so that ``BEGIN IMMEDIATE`` waits); meanwhile
``GET /healthz`` must answer within 0.5 s.
"""

from __future__ import annotations

import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import uvicorn

from octobandit.api.app import create_app
from octobandit.config import Settings
from octobandit.engine import Engine

STALL = 2.0
QUICK = 0.5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served(engine: Engine) -> Iterator[str]:
    engine.create_experiment({"id": "x", "arms": [{"id": "a"}, {"id": "b"}]})
    app = create_app(engine, Settings(tick_seconds=3600))
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def _stall_batch(engine: Engine, mp: pytest.MonkeyPatch, stalled: threading.Event) -> Any:
    batch = engine.storage.batch

    @contextmanager
    def slow() -> Iterator[Any]:
        with batch() as tx:
            stalled.set()
            time.sleep(STALL)
            yield tx

    mp.setattr(engine.storage, "batch", slow)
    return lambda url: httpx.post(url + "/v1/experiments/x/decisions", timeout=30)


def _stall_read(engine: Engine, mp: pytest.MonkeyPatch, stalled: threading.Event) -> Any:
    get = engine.storage.get_experiment

    def slow(experiment_id: str) -> Any:
        stalled.set()
        time.sleep(STALL)
        return get(experiment_id)

    mp.setattr(engine.storage, "get_experiment", slow)
    return lambda url: httpx.get(url + "/v1/experiments/x", timeout=30)


def _hold_write_lock(engine: Engine, mp: pytest.MonkeyPatch, stalled: threading.Event) -> Any:
    """Another connection (as another worker process would) holds the write lock."""
    other = sqlite3.connect(engine.storage.path, isolation_level=None, check_same_thread=False)  # type: ignore[attr-defined]
    other.execute("BEGIN IMMEDIATE")
    stalled.set()
    threading.Timer(STALL, lambda: (other.execute("COMMIT"), other.close())).start()
    return lambda url: httpx.post(url + "/v1/experiments/x/decisions", timeout=30)


Stall = Callable[[Engine, pytest.MonkeyPatch, threading.Event], Any]


@pytest.mark.parametrize("stall", [_stall_batch, _stall_read, _hold_write_lock])
def test_healthz_stays_quick_while_storage_stalls(
    engine: Engine, served: str, monkeypatch: pytest.MonkeyPatch, stall: Stall
) -> None:
    stalled = threading.Event()
    request = stall(engine, monkeypatch, stalled)
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(request, served)
        assert stalled.wait(10)
        time.sleep(0.1)  # the stalled call is under way on the storage thread
        started = time.monotonic()
        r = httpx.get(served + "/healthz", timeout=10)
        elapsed = time.monotonic() - started
        assert r.status_code == 200
        assert elapsed < QUICK, f"/healthz took {elapsed:.2f} s during a {STALL} s stall"
        assert not slow.done()  # it really was stalled meanwhile
        assert slow.result().status_code == 200
