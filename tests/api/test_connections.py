"""Connection limits against the real server: header, body and keep-alive timeouts, a
connection limit, the Host check and the warning for a non-loopback bind."""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.slow

FAST = {
    "OCTOBANDIT_HEADER_TIMEOUT": "1",
    "OCTOBANDIT_BODY_TIMEOUT": "1",
    "OCTOBANDIT_KEEP_ALIVE_TIMEOUT": "1",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    return sock


def _read_until_closed(sock: socket.socket, limit: float = 8.0) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and how long that took."""
    start = time.monotonic()
    sock.settimeout(limit)
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return data, time.monotonic() - start


def _status_and_json(raw: bytes) -> tuple[int, Any]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


@pytest.fixture
def fast_server(server_factory: Any, tmp_path: Path) -> Any:
    return server_factory(tmp_path / "c.db", env=FAST).start()


def test_half_a_header_line_is_closed_after_the_header_timeout(fast_server: Any) -> None:
    sock = _connect(fast_server.port)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHo")
    raw, took = _read_until_closed(sock)
    assert 0.5 < took < 5, took
    status, body = _status_and_json(raw)
    assert status == 408 and body["error"]["code"] == "timeout"
    sock.close()


def test_headers_in_pieces_within_the_timeout_are_served(fast_server: Any) -> None:
    sock = _connect(fast_server.port)
    for piece in (b"GET /healthz HTTP/1.1\r\n", b"Host: 127.0.0.1\r\n", b"\r\n"):
        sock.sendall(piece)
        time.sleep(0.3)  # 0.6 s in all, under the 1 s header timeout
    raw, _ = _read_until_closed(sock)
    assert raw.startswith(b"HTTP/1.1 200"), raw
    sock.close()


def test_a_silent_connection_is_closed_after_the_header_timeout(fast_server: Any) -> None:
    sock = _connect(fast_server.port)
    raw, took = _read_until_closed(sock)
    assert 0.5 < took < 5 and raw.startswith(b"HTTP/1.1 408")
    sock.close()


def test_a_malformed_request_gets_a_json_400(fast_server: Any) -> None:
    sock = _connect(fast_server.port)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nBad Header Line\r\n\r\n")
    raw, _ = _read_until_closed(sock)
    status, body = _status_and_json(raw)
    assert status == 400 and body["error"]["code"] == "bad_request"
    sock.close()


def test_a_stalled_body_gets_408_and_the_connection_closes(fast_server: Any) -> None:
    httpx.post(fast_server.url + "/v1/experiments", json={"id": "e", "arms": [{"id": "a"}]})
    for path in ("/v1/experiments/e/rewards", "/v1/experiments/e/arms"):
        sock = _connect(fast_server.port)
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            'Content-Length: 100\r\n\r\n{"arm_id": '.encode()
        )
        raw, took = _read_until_closed(sock)
        assert took < 5, took
        status, body = _status_and_json(raw)
        assert status == 408 and body["error"]["code"] == "timeout", raw
        sock.close()
    stats = httpx.get(fast_server.url + "/v1/experiments/e/stats").json()
    assert stats["total_reward"] == 0 and len(stats["arms"]) == 1


def test_an_idle_keep_alive_connection_is_closed(fast_server: Any) -> None:
    sock = _connect(fast_server.port)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    raw, took = _read_until_closed(sock)
    assert raw.startswith(b"HTTP/1.1 200") and b'"status"' in raw
    assert 0.5 < took < 5, took  # the keep-alive timeout, then closed
    sock.close()


def test_idle_connections_make_room_and_busy_ones_get_a_json_503(
    server_factory: Any, tmp_path: Path
) -> None:
    env = {**FAST, "OCTOBANDIT_BODY_TIMEOUT": "3", "OCTOBANDIT_MAX_CONNECTIONS": "8"}
    server = server_factory(tmp_path / "m.db", env=env).start()
    # 12 idle connections (8 + 4 extra): the oldest idle ones are closed to make room
    idle = [_connect(server.port) for _ in range(12)]
    time.sleep(0.3)
    assert httpx.get(server.url + "/healthz", timeout=5).status_code == 200
    for sock in idle:
        sock.close()
    time.sleep(0.3)
    # 8 connections busy with a request (a body that stalls): nothing can be evicted
    busy = []
    for _ in range(8):
        sock = _connect(server.port)
        sock.sendall(
            b"POST /v1/experiments HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 50\r\n\r\n{"
        )
        busy.append(sock)
    time.sleep(0.3)
    r = httpx.get(server.url + "/healthz", timeout=5)
    assert r.status_code == 503 and r.json()["error"]["code"] == "too_many_connections"
    assert r.headers["connection"] == "close" and r.headers["retry-after"] == "1"
    for sock in busy:  # their body deadline answers 408 and frees them
        raw, _ = _read_until_closed(sock)
        assert raw.startswith(b"HTTP/1.1 408"), raw
        sock.close()
    assert httpx.get(server.url + "/healthz", timeout=5).status_code == 200


def test_idle_connections_beyond_the_descriptor_limit_do_not_lock_requests_out(
    tmp_path: Path,
) -> None:
    """The reported case: 256 descriptors, 300 idle connections, then a request."""
    port = free_port()
    cmd = [
        sys.executable, "-m", "octobandit.cli", "serve", "--port", str(port),
        "--db", str(tmp_path / "fd.db"), "--log-level", "error",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCTOBANDIT_")}

    def limit_descriptors() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))

    proc = subprocess.Popen(cmd, env=env, preexec_fn=limit_descriptors, start_new_session=True)
    idle: list[socket.socket] = []
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                assert httpx.get(url + "/healthz", timeout=1).status_code == 200
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.1)
        idle = [_connect(port) for _ in range(300)]
        time.sleep(0.5)
        for _ in range(5):  # well within the 10 s default header timeout
            assert httpx.get(url + "/healthz", timeout=5).status_code == 200
    finally:
        for sock in idle:
            sock.close()
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def test_the_real_server_checks_the_host_header(server_factory: Any, tmp_path: Path) -> None:
    server = server_factory(tmp_path / "h.db").start()
    for host in ("localhost:1234", "127.0.0.1", "[::1]"):
        assert httpx.get(server.url + "/healthz", headers={"host": host}).status_code == 200
    r = httpx.post(server.url + "/v1/experiments/x/reset", headers={"host": "rebind.example"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden_host"
    server.stop()
    env = {"OCTOBANDIT_ALLOWED_HOSTS": "rebind.example, other.example:8000"}
    server = server_factory(tmp_path / "h.db", env=env).start()
    r = httpx.get(server.url + "/v1/experiments", headers={"host": "rebind.example:80"})
    assert r.status_code == 200
    r = httpx.get(server.url + "/v1/experiments", headers={"host": "third.example"})
    assert r.status_code == 403


def test_a_non_loopback_bind_with_insecure_logs_a_warning(tmp_path: Path) -> None:
    port = free_port()
    cmd = [
        sys.executable, "-m", "octobandit.cli", "serve", "--host", "0.0.0.0", "--insecure",
        "--port", str(port), "--db", str(tmp_path / "w.db"), "--log-level", "warning",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCTOBANDIT_")}
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, start_new_session=True, text=True)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert "WARNING" in line and "0.0.0.0" in line and "authentication" in line, line
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def test_the_serve_options_set_the_timeouts_and_allowed_hosts(tmp_path: Path) -> None:
    port = free_port()
    cmd = [
        sys.executable, "-m", "octobandit.cli", "serve", "--port", str(port),
        "--db", str(tmp_path / "o.db"), "--log-level", "warning",
        "--header-timeout", "0.5", "--keep-alive-timeout", "0.5", "--body-timeout", "0.5",
        "--max-connections", "50", "--allowed-hosts", "flags.example",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCTOBANDIT_")}
    proc = subprocess.Popen(cmd, env=env, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                r = httpx.get(url + "/healthz", headers={"host": "flags.example"}, timeout=1)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.1)
        assert r.status_code == 200
        sock = _connect(port)
        raw, took = _read_until_closed(sock)
        assert raw.startswith(b"HTTP/1.1 408") and took < 3, (raw, took)
        sock.close()
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
