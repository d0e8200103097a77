"""The engine process's server and its client: grouping, errors, loss of the process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from octobandit.api.errors import answer_status, http_status
from octobandit.engine import Engine
from octobandit.engine.process import EngineProcess
from octobandit.engine.remote import RemoteEngine
from octobandit.errors import Conflict, NotFound, StorageUnusable

SPEC = {"id": "e", "arms": [{"id": "a"}, {"id": "b"}]}


def test_requests_from_two_workers_are_all_answered_and_logged(
    engine: Engine, tmp_path: Path, engine_server: Any
) -> None:
    async def run(path: str) -> list[tuple[str | None, bytes]]:
        one, two = RemoteEngine(path), RemoteEngine(path)
        await one.call("create_experiment", SPEC)
        answers = await asyncio.gather(
            *(c.data("e", "decisions", b"{}") for c in (one, two) for _ in range(150))
        )
        one.close()
        two.close()
        return answers

    with engine_server(engine, str(tmp_path / "s")) as path:
        answers = asyncio.run(run(path))
    assert {answer_status(error) for error, _ in answers} == {200}
    ids = {json.loads(body)["decision_id"] for _, body in answers}
    assert len(ids) == 300
    stats = engine.stats("e")
    assert sum(arm["decisions"] for arm in stats["arms"]) == 300


def test_bad_bodies_get_the_same_errors_as_in_process(
    engine: Engine, tmp_path: Path, engine_server: Any
) -> None:
    async def run(path: str) -> list[tuple[str | None, bytes]]:
        remote = RemoteEngine(path)
        await remote.call("create_experiment", SPEC)
        answers = [
            await remote.data("e", "decisions", b'{"n": "x"}'),
            await remote.data("e", "decisions", b"{"),
            await remote.data("nope", "decisions", b"{}"),
            await remote.data("e", "rewards", b'{"decision_id": "00", "reward": 1}'),
        ]
        remote.close()
        return answers

    with engine_server(engine, str(tmp_path / "s")) as path:
        answers = asyncio.run(run(path))
    codes = [(answer_status(error), json.loads(body)["error"]["code"]) for error, body in answers]
    assert codes[0] == (422, "invalid")
    assert codes[1] == (400, "invalid_json")
    assert codes[2] == (404, "experiment_not_found")
    assert codes[3][0] == 404


def test_errors_of_calls_keep_their_class_and_code(
    engine: Engine, tmp_path: Path, engine_server: Any
) -> None:
    async def run(path: str) -> tuple[BaseException, BaseException]:
        remote = RemoteEngine(path)
        await remote.call("create_experiment", SPEC)
        errors = []
        for name, args in (("get_experiment", ("nope",)), ("create_experiment", (SPEC,))):
            try:
                await remote.call(name, *args)
            except Exception as exc:
                errors.append(exc)
        remote.close()
        return errors[0], errors[1]

    with engine_server(engine, str(tmp_path / "s")) as path:
        missing, duplicate = asyncio.run(run(path))
    assert isinstance(missing, NotFound) and missing.code == "experiment_not_found"
    assert isinstance(duplicate, Conflict) and http_status(duplicate) == 409


def test_a_garbled_peer_is_dropped_and_others_are_served(
    engine: Engine, tmp_path: Path, engine_server: Any
) -> None:
    async def run(path: str) -> tuple[str | None, bytes]:
        remote = RemoteEngine(path)
        await remote.call("create_experiment", SPEC)
        with socket.socket(socket.AF_UNIX) as bad:
            bad.connect(path)
            bad.sendall(b"\x00\x00\x00\x05\xc1\xc1\xc1\xc1\xc1")  # 0xc1: never valid msgpack
            with socket.socket(socket.AF_UNIX) as odd:  # valid msgpack, not [id, kind, body]
                odd.connect(path)
                odd.sendall(b"\x00\x00\x00\x01\x05")
                await asyncio.sleep(0.3)  # both are read before the next request
                answer = await asyncio.wait_for(remote.data("e", "decisions", b"{}"), 10)
        remote.close()
        return answer

    with engine_server(engine, str(tmp_path / "s")) as path:
        error, _ = asyncio.run(run(path))
    assert answer_status(error) == 200


def test_without_the_engine_writes_get_503_and_health_says_why(
    engine: Engine, tmp_path: Path, engine_server: Any
) -> None:
    path = str(tmp_path / "s")

    async def before(remote: RemoteEngine) -> None:
        await remote.call("create_experiment", SPEC)
        assert answer_status((await remote.data("e", "decisions", b"{}"))[0]) == 200

    async def during(remote: RemoteEngine) -> tuple[tuple[str | None, bytes], object]:
        await asyncio.sleep(0.1)  # the lost connection is noticed
        return await remote.data("e", "decisions", b"{}"), await remote.health()

    async def run() -> None:
        remote = RemoteEngine(path, health_timeout=0.5)
        with engine_server(engine, path):
            await before(remote)
        (error, body), health = await during(remote)
        assert answer_status(error) == 503
        assert json.loads(body)["error"]["code"] == "engine_unavailable"
        assert health == {
            "reason": "engine_unavailable",
            "message": json.loads(body)["error"]["message"],
        }
        with engine_server(engine, path):  # back: the next request reconnects
            assert answer_status((await remote.data("e", "decisions", b"{}"))[0]) == 200
            assert await remote.health() is None
        remote.close()

    asyncio.run(run())


def test_an_unusable_database_is_refused_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "bad.db"
    db.write_bytes(b"this is not a database" * 100)
    monkeypatch.setenv("OCTOBANDIT_DB", str(db))
    with pytest.raises(StorageUnusable) as caught:
        EngineProcess(ready_timeout=30).start()
    assert "\n" not in caught.value.message
    assert "database" in caught.value.message


def test_the_engine_process_stops_when_the_service_is_killed(tmp_path: Path) -> None:
    """SIGKILL of the service (no shutdown code runs) still stops its engine process."""
    script = textwrap.dedent(
        """
        import os, sys, time
        from octobandit.engine.process import EngineProcess
        engine = EngineProcess().start()
        print(engine._proc.pid, flush=True)
        time.sleep(600)
        """
    )
    env = {**os.environ, "OCTOBANDIT_DB": str(tmp_path / "k.db")}
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, env=env)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        with open(f"/proc/{child}/stat") as f:  # a zombie has stopped
            if f.read().split()[2] == "Z":
                break
        time.sleep(0.1)
    else:
        os.kill(child, signal.SIGKILL)
        pytest.fail("the engine process outlived the service")
