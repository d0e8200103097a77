"""A full disk, for real: a server on a tiny tmpfs, filled, freed, restarted full.

Needs root to mount the tmpfs (CI runs as root); skipped with the reason otherwise.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _mount(target: Path, options: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs the suite as root)")
    try:
        r = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)],
            capture_output=True,
            text=True,
        )
    except FileNotFoundError:
        pytest.skip("no mount command here")
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 4 MB tmpfs, unmounted afterwards."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    _mount(mnt, "size=4m")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(directory: Path) -> Path:
    """Write (or extend) a filler file until the file system has no byte left."""
    filler = directory / "filler"
    with filler.open("ab", buffering=0) as f:
        for chunk in (1 << 16, 4096, 512, 1):
            try:
                while True:
                    f.write(b"\1" * chunk)
            except OSError:
                continue
    return filler


class Proc:
    """``octobandit serve`` on a free port; up means /healthz answers at all (200 or 503)."""

    def __init__(self, db: Path) -> None:
        self.url = f"http://127.0.0.1:{free_port()}"
        port = self.url.rsplit(":", 1)[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("OCTOBANDIT_")}
        cmd = [sys.executable, "-m", "octobandit.cli", "serve", "--port", port, "--db", str(db)]
        cmd += ["--log-level", "warning"]
        self.proc = subprocess.Popen(cmd, env=env, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"server exited with {self.proc.returncode}"
            try:
                httpx.get(self.url + "/healthz", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("server did not start within 30 s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=15)


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    for p in started:
        p.stop()


def _decide(url: str) -> httpx.Response:
    return httpx.post(url + "/v1/experiments/x/decisions", json={"n": 20}, timeout=30)


def _until_healthy(url: str, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if httpx.get(url + "/healthz").status_code == 200:
            return
        time.sleep(0.1)
    raise AssertionError(f"still degraded: {httpx.get(url + '/healthz').text}")


def _full_answers(url: str) -> int:
    """Decide until the disk refuses; returns the decisions acknowledged meanwhile."""
    acked = 0
    for _ in range(500):
        r = _decide(url)
        if r.status_code == 200:
            acked += 20
            continue
        assert r.status_code == 503, r.text
        error = r.json()["error"]
        assert error["code"] == "storage_full"
        assert "disk full" in error["message"] and "nothing was written" in error["message"]
        return acked
    raise AssertionError("the full disk never refused a write")


def _assert_degraded(url: str) -> None:
    r = httpx.get(url + "/healthz")
    assert r.status_code == 503
    body: dict[str, Any] = r.json()
    assert body["status"] == "degraded" and body["reason"] == "storage_full"


def test_full_disk_answers_503_and_recovers_by_itself(small_fs: Path, procs: list[Proc]) -> None:
    server = Proc(small_fs / "full.db")
    procs.append(server)
    url = server.url
    r = httpx.post(url + "/v1/experiments", json={"id": "x", "arms": [{"id": "a"}, {"id": "b"}]})
    assert r.status_code == 201
    acked = 20 * sum(_decide(url).status_code == 200 for _ in range(10))
    filler = fill(small_fs)
    acked += _full_answers(url)
    _assert_degraded(url)
    for i in range(200):  # the control plane too (room inside the WAL file may take a few)
        r = httpx.post(url + "/v1/experiments", json={"id": f"y{i}", "name": "y" * 200})
        if r.status_code != 201:
            break
    assert r.status_code == 503 and r.json()["error"]["code"] == "storage_full"
    stats = httpx.get(url + "/v1/experiments/x/stats")  # reads still work
    assert stats.status_code == 200 and stats.json()["total_decisions"] == acked

    filler.unlink()
    _until_healthy(url)
    assert _decide(url).status_code == 200
    assert httpx.get(url + "/v1/experiments/x/stats").json()["total_decisions"] == acked + 20


def test_restart_on_a_full_disk_serves_reads_then_recovers(
    small_fs: Path, procs: list[Proc]
) -> None:
    db = small_fs / "restart.db"
    server = Proc(db)
    procs.append(server)
    r = httpx.post(
        server.url + "/v1/experiments", json={"id": "x", "arms": [{"id": "a"}, {"id": "b"}]}
    )
    assert r.status_code == 201
    assert _decide(server.url).status_code == 200
    fill(small_fs)
    server.stop()  # a clean stop checkpoints and removes the WAL and shared-memory files
    filler = fill(small_fs)  # what they freed: the disk stays full

    server = Proc(db)  # must start on the full disk
    procs.append(server)
    url = server.url
    _assert_degraded(url)
    stats = httpx.get(url + "/v1/experiments/x/stats")
    assert stats.status_code == 200 and stats.json()["total_decisions"] == 20
    acked = 20 + _full_answers(url)  # room left inside existing files may take a few
    _assert_degraded(url)

    filler.unlink()
    _until_healthy(url)
    assert _decide(url).status_code == 200
    assert httpx.get(url + "/v1/experiments/x/stats").json()["total_decisions"] == acked + 20


def test_a_read_only_file_system_is_refused_in_one_line(tmp_path: Path) -> None:
    mnt = tmp_path / "ro"
    mnt.mkdir()
    _mount(mnt, "size=1m,ro")
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OCTOBANDIT_")}
        cmd = [sys.executable, "-m", "octobandit.cli", "serve", "--port", "1"]
        result = subprocess.run(
            [*cmd, "--db", str(mnt / "x.db")], env=env, capture_output=True, text=True, timeout=60
        )
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
    assert result.returncode != 0
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "not writable" in result.stderr
