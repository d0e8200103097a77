"""Do more HTTP workers (or replicas) add throughput? Decisions and rewards per second
for 1 and 2 workers of the bare endpoint, of ``octobandit serve`` on SQLite, and (when
available) of 1 and 2 ``octobandit serve`` replicas sharing one PostgreSQL database,
alone or with their per-arm state in Redis.

Needs wrk (Debian/Ubuntu: ``apt-get update && apt-get install -y wrk``). Run from the
repository root, with the project installed (``pip install -e . orjson``):

    python bench/scale.py [--duration 10] [--rounds 3] [--configs bare-1,sqlite-1,...]
    python bench/scale.py --quick                 # 2 s runs, 2 rounds: checks that it works
    python bench/scale.py --postgres-url postgresql://user:pw@host/postgres \
        --redis-url redis://127.0.0.1:6379/0

Configurations (all on 127.0.0.1, loaded by wrk with 32 connections and 2 threads in
total):

- ``bare-1``, ``bare-2``: the bare Starlette endpoint (bench/baseline/bare_app.py) under
  plain uvicorn with ``--workers 1`` / ``--workers 2``; decisions and rewards are the
  same echo request there, measured once per round and reported in both tables;
- ``sqlite-1``, ``sqlite-2``: ``octobandit serve --workers 1`` / ``--workers 2`` on a
  fresh SQLite file (one port: the workers share the listening socket and the kernel
  gives each connection to whichever worker accepts it; the split is not measured);
- ``postgres-1``, ``postgres-2``: only with ``--postgres-url`` and only if
  ``octobandit serve --help`` offers ``--store``: 1 or 2 ``octobandit serve --store URL``
  processes (1 worker each) on separate ports, sharing a fresh database
  ``octobandit_scale_<random>`` created on that server (psycopg or psql) and dropped at
  the end. N replicas get N wrk processes started together, one per port, the
  connections and threads split evenly; throughput is their sum, latency the worst.
- ``pgredis-1``, ``pgredis-2``: only with ``--postgres-url`` and ``--redis-url``: the
  same replicas with ``--state REDIS_URL?prefix=<random>`` (the per-arm statistics and
  sticky assignments in Redis, the event log in PostgreSQL); the prefix's keys are
  deleted at the end.

Decisions are ``POST /v1/experiments/{id}/decisions`` on a 3-arm Thompson experiment
with ``{"context":{"country":"fr"}}``; rewards are ``POST .../rewards`` with
``{"arm_id":"armN","reward":1,"count":2}``. Every configuration's servers are started
afresh for each round (fresh database file, or a new experiment id on PostgreSQL) and
stopped after it; the configurations' order rotates from round to round and the order of
decisions and rewards alternates. After each octobandit run the service's stats must show
at least as many decisions / rewards as wrk saw answered with 2xx (wrk does not count
requests still in flight when a run ends).

The summary gives, per kind and configuration, the MEDIAN requests per second over the
rounds and the min–max (never the best round), the median p50 and p99, the ratio of a
2-worker (2-replica) median to the 1-worker median of the same backend, and the ratio of
each median to the ``bare-1`` median. Everything goes to bench/results/scale.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# bench/http.py would shadow the stdlib's http package that httpx imports: keep bench/ last
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE] + [str(HERE)]

import httpx  # noqa: E402
from _common import Wrk, free_port, start, stop, wait_up  # noqa: E402

RESULTS = HERE / "results" / "scale.json"
CONFIGS = [
    "bare-1", "bare-2", "sqlite-1", "sqlite-2", "postgres-1", "postgres-2", "pgredis-1",
    "pgredis-2",
]  # fmt: skip
#: configurations of replicas on PostgreSQL (one port each)
REPLICATED = ("postgres", "pgredis")
KINDS = ["decisions", "rewards"]
ARMS = [{"id": f"arm{i}"} for i in range(3)]
TARGET_RATIO, TARGET_P99 = 1.3, 2.0  # the targets: 2 vs 1 throughput, p99

DECIDE_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"context":{"country":"fr"}}'
"""
REWARD_LUA = """
local counter = 0
function request()
  counter = counter + 1
  local body = '{"arm_id":"arm' .. (counter %% 3) .. '","reward":1,"count":2}'
  return wrk.format("POST", "%(path)s", {["Content-Type"] = "application/json"}, body)
end
"""


def backend(config: str) -> str:
    return config.rsplit("-", 1)[0]


def count(config: str) -> int:
    return int(config.rsplit("-", 1)[1])


def octobandit_exe() -> str:
    return str(Path(sys.executable).with_name("octobandit"))


def serve_cmd(
    port: int,
    workers: int,
    db: Path | None = None,
    store: str | None = None,
    state: str | None = None,
) -> list[str]:
    cmd = [
        octobandit_exe(), "serve", "--host", "127.0.0.1", "--port", str(port),
        "--workers", str(workers), "--log-level", "warning",
    ]  # fmt: skip
    if state is not None:
        cmd += ["--state", state]
    if store is not None:
        return [*cmd, "--store", store]
    return [*cmd, "--db", str(db)]


def bare_cmd(port: int, workers: int) -> list[str]:
    return [
        sys.executable, "-m", "uvicorn", "bare_app:app", "--host", "127.0.0.1",
        "--port", str(port), "--workers", str(workers), "--loop", "uvloop",
        "--http", "httptools", "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip


def split(total: int, parts: int) -> list[int]:
    """``total`` split as evenly as possible into ``parts`` (at least 1 each)."""
    return [max(1, total // parts + (i < total % parts)) for i in range(parts)]


def load(urls: list[str], script: str, args: argparse.Namespace) -> dict[str, Any]:
    """wrk against each url at the same moment, connections and threads split evenly;
    throughput and counts summed, latency percentiles the worst of them."""
    conns = split(args.connections, len(urls))
    threads = split(args.threads, len(urls))
    procs = [
        Wrk(u, script, threads=t, connections=c, duration=args.duration)
        for u, t, c in zip(urls, threads, conns, strict=True)
    ]
    parts = [p.result() for p in procs]
    return {
        "requests_per_s": sum(p["requests_per_s"] for p in parts),
        "requests": sum(p["requests"] for p in parts),
        "p50_ms": max(p["p50_ms"] for p in parts),
        "p99_ms": max(p["p99_ms"] for p in parts),
        "non_2xx": sum(p["non_2xx"] for p in parts),
        "socket_errors": "; ".join(p["socket_errors"] for p in parts if p["socket_errors"]),
        "connections": conns,
        "threads": threads,
        "parts": parts if len(parts) > 1 else [],
    }


class Postgres:
    """A fresh database on the server of ``url`` (psycopg, else psql), dropped at close."""

    def __init__(self, url: str) -> None:
        self.admin_url = url
        self.name = f"octobandit_scale_{secrets.token_hex(4)}"
        self.tool = self._tool()
        self._sql(f'CREATE DATABASE "{self.name}"')
        parts = urllib.parse.urlsplit(url)
        self.url = urllib.parse.urlunsplit(parts._replace(path="/" + self.name))

    @staticmethod
    def _tool() -> str:
        try:
            import psycopg  # noqa: F401
        except ImportError:
            if shutil.which("psql") is None:
                raise RuntimeError("neither psycopg nor psql is available") from None
            return "psql"
        return "psycopg"

    def _sql(self, sql: str) -> None:
        if self.tool == "psycopg":
            import psycopg

            with psycopg.connect(self.admin_url, autocommit=True) as conn:
                conn.execute(sql)  # type: ignore[arg-type]
        else:
            cmd = ["psql", self.admin_url, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql]
            subprocess.run(cmd, check=True, capture_output=True)

    def close(self) -> None:
        self._sql(f'DROP DATABASE IF EXISTS "{self.name}"')


def serve_help() -> str:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [octobandit_exe(), "serve", "--help"], capture_output=True, text=True, env=env
    ).stdout


def with_prefix(url: str, prefix: str) -> str:
    parts = urllib.parse.urlsplit(url)
    query = [*urllib.parse.parse_qsl(parts.query), ("prefix", prefix)]
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def drop_prefix(state_url: str) -> None:
    """Delete the keys the pgredis runs left under their prefix."""
    import redis

    parts = urllib.parse.urlsplit(state_url)
    query = dict(urllib.parse.parse_qsl(parts.query))
    prefix = query.pop("prefix")
    plain = urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))
    client = redis.Redis.from_url(plain)
    for key in client.scan_iter(match=f"{prefix}:*", count=1000):
        client.delete(key)
    client.close()


def postgres_skip_reason(args: argparse.Namespace) -> str | None:
    if not args.postgres_url:
        return "no --postgres-url given"
    out = serve_help()
    if "--store" not in out:
        return "`octobandit serve --help` has no --store option (no PostgreSQL store in this tree)"
    return None


def stats_check(
    url: str, exp: str, runs: dict[str, dict[str, Any]]
) -> dict[str, Any]:  # what the service logged against what wrk saw answered with 2xx
    stats = httpx.get(f"{url}/v1/experiments/{exp}/stats", timeout=30).json()
    check: dict[str, Any] = {
        "logged_decisions": stats["total_decisions"],
        "logged_reward_count": sum(a["rewards"] for a in stats["arms"]),
    }
    if "decisions" in runs:
        r = runs["decisions"]
        check["answered_decisions"] = r["requests"] - r["non_2xx"]
    if "rewards" in runs:
        r = runs["rewards"]
        check["answered_rewards_x_count_2"] = 2 * (r["requests"] - r["non_2xx"])
    check["all_answered_logged"] = check["logged_decisions"] >= check.get(
        "answered_decisions", 0
    ) and check["logged_reward_count"] >= check.get("answered_rewards_x_count_2", 0)
    return check


def wait_known(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while httpx.get(url, timeout=5).status_code != 200:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} never answered 200")
        time.sleep(0.1)


def run_slot(
    config: str, r: int, args: argparse.Namespace, work: Path, pg: Postgres | None
) -> dict[str, Any]:
    """Start ``config``'s servers, load them, check the log, stop them."""
    n, kind = count(config), backend(config)
    ports = [free_port() for _ in range(n if kind in REPLICATED else 1)]
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCTOBANDIT_")}
    env["PYTHONPATH"] = str(HERE / "baseline")
    if kind == "bare":
        procs = [start(bare_cmd(ports[0], n), env)]
    elif kind == "sqlite":
        procs = [start(serve_cmd(ports[0], n, db=work / f"{config}-r{r}.db"), env)]
    else:
        assert pg is not None
        state = args.state_url if kind == "pgredis" else None
        procs = [start(serve_cmd(p, 1, store=pg.url, state=state), env) for p in ports]
    exp = f"scale-{config}-r{r}"
    slot: dict[str, Any] = {"config": config, "round": r, "ports": ports, "runs": {}}
    try:
        for u in urls:
            if kind == "bare":
                wait_up(u + "/echo", "POST")
            else:
                wait_up(u + "/healthz")
        if kind != "bare":
            spec = {"id": exp, "policy": {"type": "thompson"}, "arms": ARMS}
            httpx.post(urls[0] + "/v1/experiments", json=spec, timeout=30).raise_for_status()
            for u in urls:  # every replica knows the experiment before the load
                wait_known(f"{u}/v1/experiments/{exp}/stats")
        time.sleep(args.settle)  # let a second worker finish starting
        if kind == "bare":
            slot["runs"]["echo"] = load([u + "/echo" for u in urls], DECIDE_LUA, args)
        else:
            kinds = KINDS if r % 2 == 0 else KINDS[::-1]
            slot["kind_order"] = kinds
            for k in kinds:
                if k == "decisions":
                    targets = [f"{u}/v1/experiments/{exp}/decisions" for u in urls]
                    slot["runs"][k] = load(targets, DECIDE_LUA, args)
                else:
                    script = REWARD_LUA % {"path": f"/v1/experiments/{exp}/rewards"}
                    slot["runs"][k] = load(urls, script, args)
            slot["logged"] = stats_check(urls[0], exp, slot["runs"])
    finally:
        for p in procs:
            stop(p)
    return slot


def summarize(slots: list[dict[str, Any]], configs: list[str]) -> dict[str, Any]:
    def runs_of(config: str, kind: str) -> list[dict[str, Any]]:
        k = "echo" if backend(config) == "bare" else kind
        return [s["runs"][k] for s in slots if s["config"] == config]

    summary: dict[str, Any] = {}
    for kind in KINDS:
        table: dict[str, Any] = {}
        for config in configs:
            rounds = runs_of(config, kind)
            rps = [x["requests_per_s"] for x in rounds]
            table[config] = {
                "requests_per_s": {
                    "median": statistics.median(rps),
                    "min": min(rps),
                    "max": max(rps),
                },
                "p50_ms_median": statistics.median(x["p50_ms"] for x in rounds),
                "p99_ms_median": statistics.median(x["p99_ms"] for x in rounds),
                "non_2xx": sum(x["non_2xx"] for x in rounds),
                "connections": rounds[0]["connections"],
            }
        for config, row in table.items():
            one = f"{backend(config)}-1"
            if count(config) > 1 and one in table:
                base = table[one]
                row["ratio_to_1"] = (
                    row["requests_per_s"]["median"] / base["requests_per_s"]["median"]
                )
                row["p99_ratio_to_1"] = row["p99_ms_median"] / base["p99_ms_median"]
                row["meets_targets"] = (
                    row["ratio_to_1"] >= TARGET_RATIO and row["p99_ratio_to_1"] <= TARGET_P99
                )
            if "bare-1" in table:
                bare = table["bare-1"]["requests_per_s"]["median"]
                row["ratio_to_bare_1"] = row["requests_per_s"]["median"] / bare
        summary[kind] = table
    return summary


def print_tables(summary: dict[str, Any]) -> None:
    for kind, table in summary.items():
        print(
            f"\n{kind}\n{'config':<12}{'median req/s':>13}{'min–max':>15}{'p50 ms':>8}"
            f"{'p99 ms':>8}{'2 vs 1':>8}{'p99 2/1':>8}{'× bare-1':>9}  connections"
        )
        for config, s in table.items():
            rps = s["requests_per_s"]
            span = f"{rps['min']:.0f}–{rps['max']:.0f}"
            r21 = f"{s['ratio_to_1']:.2f}" if "ratio_to_1" in s else "–"
            p21 = f"{s['p99_ratio_to_1']:.2f}" if "p99_ratio_to_1" in s else "–"
            rb = f"{s['ratio_to_bare_1']:.2f}" if "ratio_to_bare_1" in s else "–"
            print(
                f"{config:<12}{rps['median']:>13.0f}{span:>15}{s['p50_ms_median']:>8.2f}"
                f"{s['p99_ms_median']:>8.2f}{r21:>8}{p21:>8}{rb:>9}  "
                + "+".join(map(str, s["connections"]))
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=32, help="in total, split over replicas")
    ap.add_argument("--threads", type=int, default=2, help="wrk threads in total")
    ap.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated subset")
    ap.add_argument("--postgres-url", default=None, help="server for the postgres-* configs")
    ap.add_argument("--redis-url", default=None, help="Redis for the pgredis-* configs")
    ap.add_argument("--settle", type=float, default=2.0, help="seconds between start and load")
    ap.add_argument("--quick", action="store_true", help="--duration 2 --rounds 2")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    if args.quick:
        args.duration, args.rounds = 2, 2
    configs = [c for c in args.configs.split(",") if c]
    if unknown := set(configs) - set(CONFIGS):
        sys.exit(f"unknown configs {sorted(unknown)}; choose from {CONFIGS}")
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get update && apt-get install -y wrk")

    skipped: dict[str, str] = {}
    pg: Postgres | None = None
    args.state_url = None
    if any(backend(c) == "pgredis" for c in configs):
        reason = None if args.redis_url else "no --redis-url given"
        if reason is None and "--state" not in serve_help():
            reason = "`octobandit serve --help` has no --state option"
        if reason is not None:
            skipped.update({c: reason for c in configs if backend(c) == "pgredis"})
            print(f"skipping pgredis configs: {reason}")
            configs = [c for c in configs if backend(c) != "pgredis"]
        else:
            args.state_url = with_prefix(args.redis_url, f"octobandit_scale_{secrets.token_hex(4)}")
    if any(backend(c) in REPLICATED for c in configs):
        reason = postgres_skip_reason(args)
        if reason is None:
            try:
                pg = Postgres(args.postgres_url)
            except (RuntimeError, subprocess.CalledProcessError, OSError) as exc:
                reason = f"cannot create the database: {exc}"
        if reason is not None:
            for c in configs:
                if backend(c) in REPLICATED:
                    skipped[c] = reason
            print(f"skipping postgres and pgredis configs: {reason}")
            configs = [c for c in configs if backend(c) not in REPLICATED]

    if not configs:
        sys.exit("no configuration left to run")
    work = Path(tempfile.mkdtemp(prefix="octobandit-scale-"))
    slots: list[dict[str, Any]] = []
    order: list[list[str]] = []
    try:
        for r in range(args.rounds):
            rotated = configs[r % len(configs) :] + configs[: r % len(configs)]
            order.append(rotated)
            for config in rotated:
                slot = run_slot(config, r, args, work, pg)
                slots.append(slot)
                shown = ", ".join(
                    f"{k} {v['requests_per_s']:.0f} req/s" for k, v in slot["runs"].items()
                )
                print(f"round {r + 1}: {config}: {shown}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if pg is not None:
            pg.close()
        if args.state_url:
            drop_prefix(args.state_url)

    summary = summarize(slots, configs)
    checks = [s["logged"] for s in slots if "logged" in s]
    result: dict[str, Any] = {
        "benchmark": "scale",
        "command": "python bench/scale.py " + " ".join(sys.argv[1:]),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "settings": {
            k: (str(v) if isinstance(v, Path) else v)
            for k, v in vars(args).items()
            if k not in ("postgres_url", "redis_url", "state_url")  # may hold a password
        },
        "postgres": {"given": bool(args.postgres_url), "tool": pg.tool if pg else None},
        "redis": {"given": bool(args.redis_url)},
        "skipped": skipped,
        "connection_split": {
            "bare-2, sqlite-2": "one port, 2 uvicorn workers sharing the listening socket; "
            "the kernel gives each connection to whichever worker accepts it (not measured)",
            "postgres-N, pgredis-N": "N wrk processes started together, one per replica "
            "port, connections and threads split evenly",
        },
        "targets": {"ratio_2_to_1_at_least": TARGET_RATIO, "p99_ratio_2_to_1_at_most": TARGET_P99},
        "order": order,
        "summary": summary,
        "all_answered_logged": all(c["all_answered_logged"] for c in checks),
        "runs": slots,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print_tables(summary)
    for c, reason in skipped.items():
        print(f"{c}: skipped ({reason})")
    failed = {
        k: {c: s["non_2xx"] for c, s in t.items() if s["non_2xx"]} for k, t in summary.items()
    }
    if any(failed.values()):
        print(f"non-2xx answers: {failed}")
    print(
        "every answered request is in the log"
        if result["all_answered_logged"]
        else "SOME ANSWERED REQUESTS ARE NOT IN THE LOG"
    )
    try:
        shown = args.out.resolve().relative_to(HERE.parent)
    except ValueError:
        shown = args.out
    print(f"wrote {shown}")


if __name__ == "__main__":
    main()
