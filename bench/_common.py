"""Helpers shared by the HTTP benchmarks (bench/http.py, bench/wal.py, bench/scale.py):
free ports, waiting for a server, starting and stopping a server's process group, and
running wrk and reading its report.

bench/http.py shadows the stdlib's ``http`` package (that httpx imports) when bench/ is
first on ``sys.path``; the scripts put bench/ last before importing this module.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import tempfile
import time
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(url: str, method: str = "GET", timeout: float = 30) -> None:
    """Wait until ``url`` answers ``method`` with a status below 500."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.request(method, url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def start(cmd: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """A server in its own process group (so that stop() also ends its children)."""
    return subprocess.Popen(cmd, env=env, start_new_session=True)


def stop(proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=timeout)


class Wrk:
    """One wrk process, started at construction; ``result()`` waits for it and parses it."""

    def __init__(
        self,
        url: str,
        script: str,
        *,
        threads: int,
        connections: int,
        duration: float,
        timeout: str = "5s",
    ) -> None:
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
            f.write(script)
        self.script = f.name
        cmd = [
            "wrk", "--latency", "-t", str(threads), "-c", str(connections),
            "-d", f"{duration}s", "--timeout", timeout, "-s", self.script, url,
        ]  # fmt: skip
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)

    def result(self) -> dict[str, Any]:
        out, _ = self.proc.communicate()
        os.unlink(self.script)
        if self.proc.returncode:
            raise RuntimeError(f"wrk failed ({self.proc.returncode}): {out}")
        return parse_wrk(out)


def parse_wrk(out: str) -> dict[str, Any]:
    """Requests per second, requests, p50 and p99 (ms) and failures from wrk --latency."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]

    def pct(p: str) -> float:
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        assert m, out
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {
        "requests_per_s": rps,
        "requests": total,
        "p50_ms": pct("50"),
        "p99_ms": pct("99"),
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": errors.group(1) if errors else "",
    }


def wrk(
    url: str, script: str, *, threads: int, connections: int, duration: float
) -> dict[str, Any]:
    """One wrk run, waited for."""
    return Wrk(url, script, threads=threads, connections=connections, duration=duration).result()
