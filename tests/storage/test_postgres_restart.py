"""PostgreSQL restarted under load: 503 with a clear message meanwhile, never a 500 or
an acknowledgement for what was not written, and the service recovers by itself."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from octobandit.storage import open_store

BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres(*cmd: str) -> None:
    # no pipes: a server started by pg_ctl would hold them open (and the call never return)
    subprocess.run(
        ["runuser", "-u", "postgres", "--", *cmd],
        check=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=60,
    )


@pytest.fixture
def private_postgres() -> Iterator[tuple[str, Any]]:
    """A PostgreSQL server of the test's own on a loopback port (started with initdb)."""
    if not BIN or os.geteuid() != 0 or shutil.which("runuser") is None:
        reason = "needs PostgreSQL's server binaries and root (to run them as postgres)"
        if os.environ.get("OCTOBANDIT_REQUIRE_SERVICES") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    bin_dir = BIN[-1]
    home = tempfile.mkdtemp(prefix="octobandit-pg-")
    shutil.chown(home, "postgres", "postgres")
    data, port = os.path.join(home, "data"), free_port()
    _as_postgres(f"{bin_dir}/initdb", "-D", data, "-A", "trust", "-U", "postgres")
    options = f"-p {port} -k {home} -c listen_addresses=127.0.0.1 -c fsync=off"

    log = os.path.join(home, "server.log")

    def ctl(*args: str) -> None:
        _as_postgres(
            f"{bin_dir}/pg_ctl", "-D", data, "-l", log, "-o", options, "-w", "-t", "30", *args
        )

    ctl("start")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres", ctl
    finally:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", f"{bin_dir}/pg_ctl", "-D", data, "-m",
             "immediate", "stop"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            timeout=60,
        )  # fmt: skip
        shutil.rmtree(home, ignore_errors=True)


@pytest.mark.parametrize("with_redis", [False, True], ids=["postgresql", "postgresql+redis"])
def test_a_postgresql_restart_gets_503_then_the_service_recovers(
    private_postgres: tuple[str, Any],
    server_factory: Any,
    request: pytest.FixtureRequest,
    with_redis: bool,
) -> None:
    url, ctl = private_postgres
    state = request.getfixturevalue("redis_url") if with_redis else None
    server = server_factory(url, env={"OCTOBANDIT_STATE": state} if state else {}).start()
    spec = {"id": "e", "arms": [{"id": "a"}, {"id": "b"}]}
    assert httpx.post(server.url + "/v1/experiments", json=spec).status_code == 201
    statuses: Counter[int] = Counter()
    codes: Counter[str] = Counter()
    acked: set[str] = set()
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            while not stop.is_set():
                r = client.post("/v1/experiments/e/decisions", json={})
                statuses[r.status_code] += 1
                if r.status_code == 200:
                    acked.add(r.json()["decision_id"])
                else:
                    codes[r.json()["error"]["code"]] += 1
                    time.sleep(0.02)

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    ctl("stop", "-m", "fast")  # connections are cut, nothing listens for a while
    down = time.monotonic()
    # at least 2 s down; longer until a request was refused (a request that finds every
    # pooled connection gone waits up to the store's 10 s timeout before its 503)
    while time.monotonic() - down < 2.0 or (statuses[503] == 0 and time.monotonic() - down < 20):
        time.sleep(0.1)
    outage = dict(statuses)
    ctl("start")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and statuses[200] <= outage.get(200, 0) + 50:
        time.sleep(0.2)  # the service reconnects by itself
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert set(statuses) <= {200, 503}, statuses  # never a 500
    assert statuses[503] >= 1 and set(codes) <= {"storage_unavailable", "storage_full"}, codes
    assert statuses[200] > outage.get(200, 0) + 50, (outage, statuses)  # recovered
    health = httpx.get(server.url + "/healthz")
    assert health.status_code == 200, health.text
    store = open_store(url, state=state)
    try:  # every acknowledged decision is in the log, and counted once per arm
        events = [e for e in store.events("e") if e.kind == "decision"]
        record = store.get_experiment("e")
    finally:
        store.close()
    assert acked <= {e.decision_id for e in events}
    assert record is not None
    assert {a.arm_id: a.decisions for a in record.arms} == {
        arm: sum(1 for e in events if e.arm_id == arm) for arm in ("a", "b")
    }
