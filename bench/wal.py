"""WAL size under sustained writes over HTTP: the bound holds (issue 7).

Starts the real service (``octobandit serve``, 1 then 2 workers, loopback
only) on a fresh database and loads it for ``--duration`` seconds with two
concurrent wrk runs: single decisions (with a small context) and rewards by
arm. Meanwhile a thread samples the sizes of the WAL and the database every
100 ms. Reports the largest and median WAL size against the configured bound
(``OCTOBANDIT_WAL_MAX_MB``; the documented bound is that plus the group
transactions already under way, one per worker) and the writes per second.

Needs wrk (Debian: ``apt-get update && apt-get install -y wrk``). Run from the
repository root, with the project installed:

    python bench/wal.py [--duration 60] [--workers 1,2]

Results: bench/results/wal.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# bench/http.py would shadow the stdlib's http package that httpx imports: keep bench/ last
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE] + [str(HERE)]

import httpx  # noqa: E402
from _common import Wrk, free_port, start, stop, wait_up  # noqa: E402

RESULTS = HERE / "results" / "wal.json"
MB = 1 << 20

LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '%s'
"""


def wrk(url: str, body: str, args: argparse.Namespace) -> Wrk:
    return Wrk(
        url, LUA % body, threads=1, connections=args.connections, duration=args.duration,
        timeout="10s",
    )  # fmt: skip


def completed(load: Wrk) -> dict[str, Any]:
    r = load.result()
    return {"requests": r["requests"], "non_2xx": r["non_2xx"]}


class Sampler(threading.Thread):
    """Sizes of the WAL and the database file every ``every`` seconds."""

    def __init__(self, db: Path, every: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.db, self.wal, self.every = db, Path(f"{db}-wal"), every
        self.samples: list[tuple[float, int, int]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        start = time.monotonic()
        while not self.stop.wait(self.every):
            sizes = []
            for path in (self.wal, self.db):
                try:
                    sizes.append(path.stat().st_size)
                except FileNotFoundError:
                    sizes.append(0)
            self.samples.append((time.monotonic() - start, sizes[0], sizes[1]))


def run(workers: int, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    db = work / f"wal{workers}.db"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCTOBANDIT_")}
    env.update(OCTOBANDIT_WAL_SOFT_MB=str(args.soft_mb), OCTOBANDIT_WAL_MAX_MB=str(args.max_mb))
    cmd = [
        sys.executable, "-m", "octobandit.cli", "serve", "--host", "127.0.0.1",
        "--port", str(port), "--db", str(db), "--workers", str(workers), "--log-level", "warning",
    ]  # fmt: skip
    server = start(cmd, env)
    try:
        wait_up(url + "/healthz")
        httpx.post(
            url + "/v1/experiments",
            json={
                "id": "wal",
                "policy": {"type": "thompson"},
                "arms": [{"id": f"arm{i}"} for i in range(3)],
            },
        ).raise_for_status()
        sampler = Sampler(db)
        sampler.start()
        t0 = time.monotonic()
        decisions = wrk(url + "/v1/experiments/wal/decisions", '{"context":{"country":"fr"}}', args)
        rewards = wrk(
            url + "/v1/experiments/wal/rewards",
            '{"arm_id":"arm1","reward":1,"count":2}',
            args,
        )
        loads = {"decisions": completed(decisions), "rewards": completed(rewards)}
        elapsed = time.monotonic() - t0
        sampler.stop.set()
        sampler.join()
        stats = httpx.get(url + "/v1/experiments/wal/stats").json()
    finally:
        stop(server)
    wal = [s[1] for s in sampler.samples]
    writes = sum(v["requests"] - v["non_2xx"] for v in loads.values())
    return {
        "workers": workers,
        "seconds": round(elapsed, 1),
        "samples": len(wal),
        "wal_max_mb": round(max(wal) / MB, 2),
        "wal_median_mb": round(statistics.median(wal) / MB, 2),
        "wal_p99_mb": round(sorted(wal)[int(0.99 * (len(wal) - 1))] / MB, 2),
        "db_final_mb": round(sampler.samples[-1][2] / MB, 1),
        "writes_per_s": round(writes / elapsed),
        "loads": loads,
        "logged_decisions": stats["total_decisions"],
        "within_bound": max(wal) <= args.max_mb * MB + workers * args.group_margin_mb * MB,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--duration", type=int, default=60, help="seconds of load per run")
    ap.add_argument("--workers", default="1,2", help="worker counts to run, comma-separated")
    ap.add_argument("--connections", type=int, default=32, help="per wrk run (two run at once)")
    ap.add_argument("--soft-mb", type=float, default=16.0, help="OCTOBANDIT_WAL_SOFT_MB")
    ap.add_argument("--max-mb", type=float, default=64.0, help="OCTOBANDIT_WAL_MAX_MB")
    ap.add_argument(
        "--group-margin-mb",
        type=float,
        default=4.0,
        help="allowance per worker for a group transaction under way when the WAL hits the max",
    )
    ap.add_argument("--out", type=Path, default=RESULTS, help="results file")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get update && apt-get install -y wrk")
    work = Path(tempfile.mkdtemp(prefix="octobandit-wal-"))
    runs = []
    try:
        for workers in (int(w) for w in args.workers.split(",")):
            runs.append(run(workers, args, work))
            r = runs[-1]
            print(
                f"workers={workers}: WAL max {r['wal_max_mb']} MB, median {r['wal_median_mb']} MB"
                f" (bound {args.max_mb} MB + {workers} x {args.group_margin_mb} MB),"
                f" database {r['db_final_mb']} MB, {r['writes_per_s']} writes/s",
                flush=True,
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {
        "benchmark": "wal",
        "command": "python bench/wal.py " + " ".join(sys.argv[1:]),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
