"""HTTP benchmark: octobandit's decisions and rewards vs a bare Starlette endpoint.

Needs wrk (Debian: ``apt-get update && apt-get install -y wrk``). Run from the
repository root, with the project installed (``pip install -e .`` and orjson):

    python bench/http.py [--duration 10] [--connections 32] [--threads 2]

Both servers run under the same uvicorn settings (one worker, uvloop,
httptools, no access log) on 127.0.0.1, one after the other, and are loaded by
the same wrk command. The service logs every decision and reward durably
(SQLite WAL, group commit) before answering. Results: bench/results/http.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# this file is named http.py: keep its folder off the path so `import http` finds the stdlib
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

import httpx  # noqa: E402

RESULTS = HERE / "results" / "http.json"

POST_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '%s'
"""

# each wrk thread walks its own slice of the decision ids
REWARD_LUA = """
local ids = {}
local counter = 0
local threads = {}
function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end
function init(args)
  for line in io.lines("%s") do ids[#ids + 1] = line end
  counter = tid * 100003
end
function request()
  counter = counter + 1
  local id = ids[(counter %% #ids) + 1]
  local body = '{"decision_id":"' .. id .. '","reward":1}'
  return wrk.format("POST", "%s", {["Content-Type"] = "application/json"}, body)
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def start(cmd: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(cmd, env=env, start_new_session=True)


def stop(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=20)


def wrk(url: str, script: str, args: argparse.Namespace) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    cmd = [
        "wrk", "--latency", "-t", str(args.threads), "-c", str(args.connections),
        "-d", f"{args.duration}s", "--timeout", "5s", "-s", f.name, url,
    ]  # fmt: skip
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    os.unlink(f.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def pct(p: str) -> float:
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        assert m, out
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {
        "requests_per_s": rps,
        "p50_ms": pct("50"),
        "p99_ms": pct("99"),
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": errors.group(1) if errors else "",  # type: ignore[dict-item]
    }


def uvicorn_cmd(target: str, port: int, factory: bool = False) -> list[str]:
    cmd = [
        sys.executable, "-m", "uvicorn", target, "--host", "127.0.0.1", "--port", str(port),
        "--workers", "1", "--loop", "uvloop", "--http", "httptools",
        "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    return [*cmd, "--factory"] if factory else cmd


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds; best kept")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get update && apt-get install -y wrk")

    work = Path(tempfile.mkdtemp(prefix="octobandit-bench-"))
    bare_port, svc_port = free_port(), free_port()
    env = {
        **os.environ,
        "OCTOBANDIT_DB": str(work / "bench.db"),
        "PYTHONPATH": str(HERE / "baseline"),
    }
    bare = start(uvicorn_cmd("bare_app:app", bare_port), env)
    svc = start(uvicorn_cmd("octobandit.api.app:app_from_env", svc_port, factory=True), env)
    svc_url, bare_url = f"http://127.0.0.1:{svc_port}", f"http://127.0.0.1:{bare_port}"
    try:
        wait_up(svc_url + "/healthz")
        wait_up(bare_url + "/echo")
        httpx.post(
            svc_url + "/v1/experiments",
            json={
                "id": "bench",
                "policy": {"type": "thompson"},
                "arms": [{"id": f"arm{i}"} for i in range(3)],
            },
        ).raise_for_status()
        ids_file = work / "ids.txt"
        with ids_file.open("w") as f, httpx.Client(base_url=svc_url) as c:
            for _ in range(200):
                r = c.post("/v1/experiments/bench/decisions", json={"n": 1000})
                f.writelines(d["decision_id"] + "\n" for d in r.json()["decisions"])
        body = '{"context":{"country":"fr"}}'
        runs: dict[str, list[dict[str, float]]] = {"bare": [], "decisions": [], "rewards": []}
        for _ in range(args.rounds):
            runs["bare"].append(wrk(bare_url + "/echo", POST_LUA % body, args))
            runs["decisions"].append(
                wrk(svc_url + "/v1/experiments/bench/decisions", POST_LUA % body, args)
            )
            runs["rewards"].append(
                wrk(
                    svc_url,
                    REWARD_LUA % (ids_file, "/v1/experiments/bench/rewards"),
                    args,
                )
            )
        stats = httpx.get(svc_url + "/v1/experiments/bench/stats").json()
    finally:
        stop(svc)
        stop(bare)
    best = {k: max(v, key=lambda r: r["requests_per_s"]) for k, v in runs.items()}
    base = best["bare"]["requests_per_s"]
    result: dict[str, Any] = {
        "benchmark": "http",
        "command": "python bench/http.py " + " ".join(sys.argv[1:]),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "settings": vars(args),
        "runs": runs,
        "best": best,
        "ratio_to_bare": {
            "decisions": best["decisions"]["requests_per_s"] / base,
            "rewards": best["rewards"]["requests_per_s"] / base,
        },
        "logged_decisions": stats["total_decisions"],
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'endpoint':<12}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'ratio':>8}")
    for name, r in best.items():
        print(
            f"{name:<12}{r['requests_per_s']:>10.0f}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}"
            f"{r['requests_per_s'] / base:>8.2f}"
        )
    print(f"wrote {RESULTS.relative_to(HERE.parent)}")


if __name__ == "__main__":
    main()
