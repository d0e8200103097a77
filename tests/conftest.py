from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from octobandit.api.app import create_app
from octobandit.client import AsyncClient, Client
from octobandit.config import Settings
from octobandit.engine import Engine
from octobandit.engine.server import EngineServer, bind
from octobandit.storage import SQLiteStorage, Storage

#: the server the PostgreSQL tests create their databases on
POSTGRES_URL = os.environ.get("POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """The URL of a fresh, empty PostgreSQL database, dropped after the test.

    Skipped when PostgreSQL (or psycopg) is missing, unless
    ``OCTOBANDIT_REQUIRE_SERVICES=1``: then that fails the test.
    """
    required = os.environ.get("OCTOBANDIT_REQUIRE_SERVICES") == "1"
    try:
        import psycopg

        admin = psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=3)
    except Exception as exc:
        reason = f"PostgreSQL unreachable at {POSTGRES_URL} (set POSTGRES_URL): {exc}"
        if required:
            pytest.fail(reason)
        pytest.skip(reason)
    name = f"octobandit_t_{secrets.token_hex(6)}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield urllib.parse.urlsplit(POSTGRES_URL)._replace(path=f"/{name}").geturl()
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


#: the Redis the Redis-state tests use (each test under its own key prefix)
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


def _service_missing(reason: str) -> None:
    if os.environ.get("OCTOBANDIT_REQUIRE_SERVICES") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def _with_prefix(url: str, prefix: str) -> str:
    parts = urllib.parse.urlsplit(url)
    query = [*urllib.parse.parse_qsl(parts.query), ("prefix", prefix)]
    return parts._replace(query=urllib.parse.urlencode(query)).geturl()


def _drop_prefix(client: Any, prefix: str) -> None:
    for key in client.scan_iter(match=f"{prefix}:*", count=1000):
        client.delete(key)


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A state-store URL on ``REDIS_URL`` under a fresh key prefix (its keys deleted after).

    Skipped when Redis (or redis-py) is missing, unless ``OCTOBANDIT_REQUIRE_SERVICES=1``.
    """
    try:
        import redis

        client = redis.Redis.from_url(REDIS_URL, socket_timeout=3)
        client.ping()
    except Exception as exc:
        _service_missing(f"Redis unreachable at {REDIS_URL} (set REDIS_URL): {exc}")
    prefix = f"obt{secrets.token_hex(5)}"
    try:
        yield _with_prefix(REDIS_URL, prefix)
    finally:
        _drop_prefix(client, prefix)
        client.close()


class RedisCluster:
    """A 3-node Redis Cluster (no replicas) on loopback ports, in a temporary directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ports = _cluster_ports(3)
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> RedisCluster:
        server = shutil.which("redis-server")
        cli = shutil.which("redis-cli")
        if server is None or cli is None:
            _service_missing("redis-server and redis-cli are needed for the Redis Cluster tests")
        assert server is not None and cli is not None
        for port in self.ports:
            node = self.root / str(port)
            node.mkdir()
            self.procs.append(
                subprocess.Popen(
                    [server, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled",
                     "yes", "--cluster-config-file", "nodes.conf", "--save", "",
                     "--appendonly", "no", "--dir", str(node), "--logfile", "redis.log"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )
            )  # fmt: skip
        for port in self.ports:
            wait_for_port(port)
        subprocess.run(
            [cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports),
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            info = subprocess.run(
                [cli, "-p", str(self.ports[0]), "cluster", "info"],
                capture_output=True, text=True, timeout=10,
            )  # fmt: skip
            if "cluster_state:ok" in info.stdout:
                return self
            time.sleep(0.2)
        raise RuntimeError("the Redis Cluster did not come up")

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.ports[0]}/0"

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


class RedisServer:
    """A private redis-server on a loopback port (no persistence: a restart comes back empty)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        server = shutil.which("redis-server")
        if server is None:
            _service_missing("redis-server is needed for the Redis restart tests")
        assert server is not None
        self.proc = subprocess.Popen(
            [server, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.root), "--logfile", "redis.log"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own (FLUSHALL and restarts touch nothing else)."""
    server = RedisServer(tmp_path).start()
    try:
        yield server
    finally:
        server.stop()


def _cluster_ports(n: int) -> list[int]:
    """``n`` free ports whose cluster bus ports (port + 10000) are free too."""
    import random

    def free(port: int) -> bool:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
        return True

    out: list[int] = []
    while len(out) < n:
        port = random.randrange(20000, 40000)
        if port not in out and free(port) and free(port + 10000):
            out.append(port)
    return out


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """A Redis Cluster of three nodes started on loopback for the session."""
    cluster = RedisCluster(tmp_path_factory.mktemp("redis-cluster"))
    try:
        yield cluster.start()
    finally:
        cluster.stop()


@pytest.fixture
def redis_cluster_url(redis_cluster: RedisCluster) -> str:
    """A state-store URL on the session's Redis Cluster under a fresh key prefix."""
    return _with_prefix(redis_cluster.url, f"obt{secrets.token_hex(5)}")


@pytest.fixture
def store_opener(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[[str], Callable[[], Storage]]]:
    """``store_opener(kind)`` gives a function opening store objects on one fresh
    database of ``kind`` (all closed after the test): ``sqlite``, ``postgresql``,
    ``postgresql+redis`` (the per-arm state in Redis under a fresh key prefix) or
    ``postgresql+redis-cluster`` (in a 3-node Redis Cluster started on loopback)."""
    from octobandit.storage import open_store

    opened: list[Storage] = []

    def make(kind: str) -> Callable[[], Storage]:
        url = (
            str(tmp_path / f"{kind}.db")
            if kind == "sqlite"
            else request.getfixturevalue("postgres_url")
        )
        state = {
            "postgresql+redis": lambda: request.getfixturevalue("redis_url"),
            "postgresql+redis-cluster": lambda: request.getfixturevalue("redis_cluster_url"),
        }.get(kind, lambda: None)()

        def opener() -> Storage:
            opened.append(open_store(url, state=state))
            return opened[-1]

        return opener

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    storage = SQLiteStorage(str(tmp_path / "test.db"))
    yield Engine(storage, seed=1234)
    storage.close()


@pytest.fixture(params=["in_process", "engine_process"])
def client(request: pytest.FixtureRequest, engine: Engine, tmp_path: Path) -> Iterator[TestClient]:
    """The API over the engine in this process, and over the engine's own server
    (as ``octobandit serve`` runs it: every call crosses the engine socket)."""
    if request.param == "in_process":
        app = create_app(engine, Settings())
        with TestClient(app, base_url="http://localhost") as c:
            yield c
        return
    with engine_server(engine, str(tmp_path / "engine.sock")) as path:
        app = create_app(None, Settings(engine_socket=path))
        with TestClient(app, base_url="http://localhost") as c:
            yield c


@pytest.fixture(name="engine_server")
def engine_server_fixture() -> Any:
    """:func:`engine_server`, for test modules (they cannot import from a conftest)."""
    return engine_server


@contextlib.contextmanager
def engine_server(engine: Engine, path: str) -> Iterator[str]:
    """An :class:`EngineServer` for ``engine`` on a thread, listening at ``path``."""
    server = EngineServer(engine, path, tick_seconds=3600)
    listener = bind(path)
    thread = threading.Thread(target=server.serve, args=(listener,), daemon=True)
    thread.start()
    try:
        yield path
    finally:
        server.stop()
        thread.join(timeout=10)


def _engine_socket_dir(pid: int) -> str | None:
    """The socket directory of an engine process (from its command line), else None."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            args = f.read().split(b"\0")
    except OSError:
        return None
    if b"octobandit.engine.server" not in args[:-2]:
        return None
    return os.path.dirname(args[args.index(b"octobandit.engine.server") + 1].decode())


def descendants(pid: int) -> list[int]:
    """The processes below ``pid`` (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """The real service as a subprocess (``python -m octobandit.cli serve``)."""

    def __init__(
        self,
        db: Path,
        workers: int = 1,
        env: dict[str, str] | None = None,
        port: int | None = None,
    ) -> None:
        self.db = db
        self.workers = workers
        self.extra_env = env or {}
        self.port = port or free_port()  # a given port: a restart where clients expect it
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Server:
        cmd = [
            sys.executable, "-m", "octobandit.cli", "serve",
            "--port", str(self.port), "--db", str(self.db),
            "--workers", str(self.workers), "--log-level", "warning",
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("OCTOBANDIT_")}
        env.update(self.extra_env)
        self.proc = subprocess.Popen(cmd, env=env, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("server did not start within 30 s")

    def kill(self) -> None:
        """SIGKILL the service and every process it started (its engine process runs in a
        session of its own): no shutdown code runs anywhere."""
        assert self.proc is not None
        family = descendants(self.proc.pid)
        leftovers = [d for d in map(_engine_socket_dir, family) if d]
        os.killpg(self.proc.pid, signal.SIGKILL)
        for pid in family:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        for directory in leftovers:  # what a SIGKILLed engine process leaves behind
            shutil.rmtree(directory, ignore_errors=True)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[type[Server]]:
    started: list[Server] = []

    class _Factory(Server):
        def start(self) -> Server:
            started.append(self)
            return super().start()

    yield _Factory
    for s in started:
        s.stop()


@pytest.fixture(scope="module")
def module_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One real service for a whole test module (its tests keep to their own experiments)."""
    server = Server(tmp_path_factory.mktemp("server") / "octobandit.db").start()
    try:
        yield server
    finally:
        server.stop()


# -- the Python client (tests/client) ---------------------------------------------------


class Blocking:
    """An :class:`AsyncClient` driven from plain test code: every coroutine method runs
    to completion on a private event loop, so one test body covers both clients."""

    def __init__(self, client: AsyncClient) -> None:
        self.client = client
        self.loop = asyncio.new_event_loop()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.client, name)
        if not inspect.iscoroutinefunction(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            return self.loop.run_until_complete(attr(*args, **kwargs))

        return call

    def shut(self) -> None:
        if not self.loop.is_closed():
            self.loop.run_until_complete(self.client.close())
            self.loop.close()


@pytest.fixture(params=["sync", "async"])
def make_client(request: pytest.FixtureRequest) -> Iterator[Callable[..., Any]]:
    """``make_client(url, **options)``: a :class:`Client`, or an :class:`AsyncClient`
    behind :class:`Blocking`; closed after the test."""
    made: list[Any] = []

    def make(url: str, **options: Any) -> Any:
        if request.param == "sync":
            made.append(Client(url, **options))
        else:
            made.append(Blocking(AsyncClient(url, **options)))
        return made[-1]

    yield make
    for c in made:
        c.shut() if isinstance(c, Blocking) else c.close()


@pytest.fixture
def api(make_client: Callable[..., Any], module_server: Any) -> Any:
    """A client (sync or async) of the module's service."""
    return make_client(module_server.url)


@pytest.fixture
def exp_id() -> str:
    """A fresh experiment id (tests share the module's service)."""
    return f"t-{uuid.uuid4().hex[:10]}"
