"""Requests per second of the Flask-MAB example app (examples/flask_mab_app) with and
without the bandit: the per-request cost of a decision.

The app is served by waitress (4 threads) in its own process on loopback, with the
embedded engine on a fresh SQLite file. ``/`` is the example's page with its two
``choose_arm`` bandits; ``/plain`` is the same view and template without them. wrk
sends no cookies, so every request to ``/`` is a new user: two logged decisions (colour
and text) per request. Rounds interleave the two endpoints (the order alternates);
the summary gives the median requests/s and the min–max over the rounds, and the
overhead per request in milliseconds (1/median(with) − 1/median(without)).

    python bench/_flask.py              # smoke: 2 rounds of 1 s
    from _flask import run; run(rounds=5, seconds=10)   # from bench/integrations.py

Falls back to a Python http.client loop when wrk is not installed.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
# bench/http.py would shadow the stdlib's http: keep bench/ last on the path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH] + [str(BENCH)]

SERVER = """
import importlib.util, logging, sys
from waitress import serve
logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # depth warnings under load
spec = importlib.util.spec_from_file_location("example", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
app = module.create_app({"MAB_STORAGE_OPTS": {"filepath": sys.argv[2]}})
serve(app, host="127.0.0.1", port=int(sys.argv[3]), threads=4, _quiet=True)
"""

ENDPOINTS = {"without_bandit": "/plain", "with_bandit": "/"}


def _python_load(url: str, seconds: float, connections: int) -> dict[str, Any]:
    """Requests/s of ``connections`` keep-alive loops (when wrk is missing)."""
    from http.client import HTTPConnection

    host, _, rest = url.removeprefix("http://").partition("/")
    counts = [0] * connections
    stop = time.monotonic() + seconds

    def loop(i: int) -> None:
        conn = HTTPConnection(host, timeout=10)
        while time.monotonic() < stop:
            conn.request("GET", "/" + rest)
            conn.getresponse().read()
            counts[i] += 1
        conn.close()

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(connections)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"requests_per_s": sum(counts) / (time.monotonic() - start), "requests": sum(counts)}


def _load(url: str, seconds: float, connections: int) -> dict[str, Any]:
    from shutil import which

    if which("wrk") is None:
        return _python_load(url, seconds, connections)
    from _common import wrk

    duration = max(1, round(seconds))  # wrk takes whole seconds
    return wrk(url, "wrk.method = 'GET'\n", threads=1, connections=connections, duration=duration)


def run(rounds: int, seconds: float, *, connections: int = 8) -> dict[str, Any]:
    """Interleaved rounds of ``seconds`` per endpoint; the medians, min–max and the
    overhead of the two decisions of a request."""
    from _common import free_port, start, stop, wait_up

    work = Path(tempfile.mkdtemp(prefix="octobandit-flask-"))
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    app = str(ROOT / "examples" / "flask_mab_app" / "app.py")
    cmd = [sys.executable, "-c", SERVER, app, str(work / "bandits.json"), str(port)]
    server = start(cmd, env=env)
    base = f"http://127.0.0.1:{port}"
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in ENDPOINTS}
    try:
        wait_up(base + "/plain")
        for r in range(rounds):
            order = list(ENDPOINTS) if r % 2 == 0 else list(reversed(ENDPOINTS))
            for name in order:
                out = _load(base + ENDPOINTS[name], seconds, connections)
                runs[name].append(out)
                print(f"round {r + 1}: {name}: {out['requests_per_s']:,.0f} req/s", flush=True)
    finally:
        stop(server)
    summary: dict[str, Any] = {}
    for name, outs in runs.items():
        rates = [o["requests_per_s"] for o in outs]
        summary[name] = {"median": statistics.median(rates), "min": min(rates), "max": max(rates)}
    with_b, without = summary["with_bandit"]["median"], summary["without_bandit"]["median"]
    try:
        decided = _decisions(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {
        "rounds": rounds,
        "seconds": seconds,
        "connections": connections,
        "server": "waitress, 4 threads, embedded engine on SQLite",
        "requests_per_s": summary,
        "ratio": with_b / without,
        "overhead_ms_per_request": 1000 / with_b - 1000 / without,
        "decisions_logged": decided,
        "requests_with_bandit": sum(o["requests"] for o in runs["with_bandit"]),
        "runs": runs,
    }


def _decisions(work: Path) -> dict[str, int]:
    """The decisions the server logged per experiment (at least one per answered request)."""
    sys.path.insert(0, str(ROOT / "src"))
    from octobandit.integrations import connect

    bandits = connect(str(work / "bandits.octobandit.db"), tick_seconds=0)
    try:
        return {e: bandits.stats(e).total_decisions for e in ("color_btn", "txt_btn")}
    finally:
        bandits.close()


if __name__ == "__main__":
    import json

    result = run(rounds=2, seconds=1.0)
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=2))
