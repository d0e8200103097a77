"""HTTP benchmark: octobandit's data plane vs a bare Starlette endpoint, side by side.

Needs wrk (Debian/Ubuntu: ``apt-get update && apt-get install -y wrk``). Run from
the repository root, with the project installed (``pip install -e . orjson``):

    python bench/http.py [--duration 10] [--rounds 3] [--connections 32] [--threads 2]
    python bench/http.py --quick          # 2 s runs, 2 rounds: checks that it works

The service runs exactly as users start it, ``octobandit serve`` (one worker, its
defaults: uvloop, httptools with the header timeout and connection limit, the
Host and content-type guards, no access log); the bare endpoint runs under plain
uvicorn (one worker, uvloop, httptools, no access log). Both listen on 127.0.0.1
and are loaded by the same wrk command. In every
round each endpoint kind of the service runs right after a run of the bare
endpoint (bare, kind, bare, kind, ...; the kinds' order rotates from round to
round so that no kind always runs first or last):

- ``thompson``: decisions on a 3-arm Thompson experiment, a context in the body;
- ``epsilon_greedy``: the same on a 3-arm ε-greedy experiment;
- ``sticky``: decisions with a new ``unit_id`` on every request;
- ``reward_by_id``: rewards by ``decision_id``, each to a distinct decision made
  beforehand (outside the timed runs);
- ``decide_reward``: a decision, then a reward for it (the decision id is parsed
  from the response), alternating on each connection;
- ``reward_by_arm``: rewards by ``arm_id`` and ``count``.

The service logs every decision and reward durably (SQLite WAL, group commit)
before answering. For each kind the summary gives the MEDIAN requests per second
over the rounds and the min–max, the median p50 and p99 latencies, and the ratio
of the kind's median to the median of the bare runs paired with it, in the same
run (never the best round). Every run's numbers go to bench/results/http.json,
with the count of decisions and rewards the service logged against the count wrk
saw answered (logged >= answered: wrk does not count requests still in flight
when a run ends). ``decide_reward`` counts both requests; its wrk script reads
every answer in Lua, and so does the script of the bare runs paired with it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# this file is named http.py: keep its folder last on the path so `import http` finds the stdlib
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE] + [str(HERE)]

import httpx  # noqa: E402
from _common import free_port, start, stop, wait_up  # noqa: E402
from _common import wrk as run_wrk  # noqa: E402

RESULTS = HERE / "results" / "http.json"
CONTEXT = '"context":{"country":"fr"}'
ARMS = [{"id": f"arm{i}"} for i in range(3)]
EXPERIMENTS = {
    "thompson": {"type": "thompson"},
    "epsilon_greedy": {"type": "epsilon_greedy", "epsilon": 0.1},
    "sticky": {"type": "thompson"},
    "reward_by_id": {"type": "thompson"},
    "decide_reward": {"type": "thompson"},
    "reward_by_arm": {"type": "thompson"},
}
KINDS = list(EXPERIMENTS)
DECIDE_ONLY = ("thompson", "epsilon_greedy")  # a fixed body posted to .../decisions

POST_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '%(body)s'
"""
DECIDE_BODY = POST_LUA % {"body": "{" + CONTEXT + "}"}

# each wrk thread numbers its own units: ids are unique across threads and rounds
STICKY_LUA = """
local threads = {}
function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end
local counter = 0
function request()
  counter = counter + 1
  local body = '{"unit_id":"r%(round)d-t' .. tid .. '-' .. counter .. '",%(context)s}'
  return wrk.format("POST", "%(path)s", {["Content-Type"] = "application/json"}, body)
end
"""

# thread t of T rewards ids t+1, t+1+T, t+1+2T, ... of the file: every reward goes to a
# distinct decision until the file runs out (then ids repeat and count as duplicates)
REWARD_ID_LUA = """
local threads = {}
function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end
local ids = {}
local nthreads = %(threads)d
local next_id = 0
function init(args)
  for line in io.lines("%(ids)s") do ids[#ids + 1] = line end
  next_id = tid + 1
end
function request()
  local id = ids[((next_id - 1) %% #ids) + 1]
  next_id = next_id + nthreads
  local body = '{"decision_id":"' .. id .. '","reward":1}'
  return wrk.format("POST", "%(path)s", {["Content-Type"] = "application/json"}, body)
end
"""

# decide, read the decision id from the answer, reward it; the ids waiting for their
# reward are a per-thread queue, so each connection alternates decision and reward
DECIDE_REWARD_LUA = """
local pending = {}
local head, tail = 1, 0
local decide = wrk.format("POST", "%(prefix)s/decisions",
  {["Content-Type"] = "application/json"}, '{%(context)s}')
function request()
  if head <= tail then
    local id = pending[head]
    pending[head] = nil
    head = head + 1
    local body = '{"decision_id":"' .. id .. '","reward":1}'
    return wrk.format("POST", "%(prefix)s/rewards", {["Content-Type"] = "application/json"}, body)
  end
  return decide
end
function response(status, headers, body)
  local id = string.match(body, '"decision_id":"(%%x+)"')
  if id then
    tail = tail + 1
    pending[tail] = id
  end
end
"""

# the bare runs paired with decide_reward ("bare_reading") read every answer the same
# way, so that both sides pay wrk's Lua response callback
BARE_READING = "bare_reading"
BARE_PARSE_LUA = (
    DECIDE_BODY
    + """
local seen = 0
function response(status, headers, body)
  if string.match(body, '"decision_id":"(%x+)"') then seen = seen + 1 end
end
"""
)

REWARD_ARM_LUA = """
local counter = 0
function request()
  counter = counter + 1
  local body = '{"arm_id":"arm' .. (counter %% 3) .. '","reward":1,"count":2}'
  return wrk.format("POST", "%(path)s", {["Content-Type"] = "application/json"}, body)
end
"""


def wrk(url: str, script: str, args: argparse.Namespace) -> dict[str, Any]:
    """One wrk run; requests per second, latency percentiles (ms) and failures."""
    return run_wrk(
        url, script, threads=args.threads, connections=args.connections, duration=args.duration
    )


def uvicorn_cmd(target: str, port: int, factory: bool = False) -> list[str]:
    cmd = [
        sys.executable, "-m", "uvicorn", target, "--host", "127.0.0.1", "--port", str(port),
        "--workers", "1", "--loop", "uvloop", "--http", "httptools",
        "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    return [*cmd, "--factory"] if factory else cmd


def serve_cmd(port: int, db: Path) -> list[str]:
    """The service exactly as users run it: ``octobandit serve`` (one worker, its defaults)."""
    exe = Path(sys.executable).with_name("octobandit")
    return [
        str(exe), "serve", "--host", "127.0.0.1", "--port", str(port), "--db", str(db),
        "--workers", "1", "--log-level", "warning",
    ]  # fmt: skip


def make_decisions(client: httpx.Client, exp: str, count: int, path: Path) -> None:
    """``count`` decisions in ``exp`` (1,000 per request), their ids written to ``path``."""
    with path.open("w") as f:
        while count > 0:
            n = min(count, 1000)
            r = client.post(f"/v1/experiments/{exp}/decisions", json={"n": n})
            r.raise_for_status()
            f.writelines(d["decision_id"] + "\n" for d in r.json()["decisions"])
            count -= n


def summarize(rounds: list[dict[str, Any]], key: str) -> dict[str, float]:
    values = [r[key] for r in rounds]
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    ap.add_argument("--rounds", type=int, default=3, help="rounds (bare + kind, for every kind)")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--kinds", default=",".join(KINDS), help="comma-separated subset of kinds")
    ap.add_argument("--quick", action="store_true", help="--duration 2 --rounds 2")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    if args.quick:
        args.duration, args.rounds = 2, 2
    kinds = [k for k in args.kinds.split(",") if k]
    if unknown := set(kinds) - set(KINDS):
        sys.exit(f"unknown kinds {sorted(unknown)}; choose from {KINDS}")
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
    svc = start(serve_cmd(svc_port, work / "bench.db"), env)
    svc_url, bare_url = f"http://127.0.0.1:{svc_port}", f"http://127.0.0.1:{bare_port}"
    bases = ["bare", BARE_READING] if "decide_reward" in kinds else ["bare"]
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in [*bases, *kinds]}
    order: list[list[str]] = []
    # the bare runs just before each kind's runs: (name in runs, index)
    paired_bare: dict[str, list[tuple[str, int]]] = {k: [] for k in kinds}
    pool = [0]  # decisions made beforehand for the reward_by_id runs
    try:
        wait_up(bare_url + "/echo", "POST")
        wait_up(svc_url + "/healthz")
        client = httpx.Client(base_url=svc_url, timeout=60)
        for kind in kinds:
            spec = {"id": kind, "policy": EXPERIMENTS[kind], "arms": ARMS}
            client.post("/v1/experiments", json=spec).raise_for_status()

        def prefix(kind: str) -> str:
            return f"/v1/experiments/{kind}"

        def script(kind: str, r: int) -> str:
            p = prefix(kind)
            if kind in DECIDE_ONLY:
                return DECIDE_BODY
            if kind == "sticky":
                return STICKY_LUA % {"round": r, "context": CONTEXT, "path": p + "/decisions"}
            if kind == "reward_by_id":
                # enough distinct decisions for this run at 1.5x the fastest rate seen so far
                fastest = max(x["requests_per_s"] for v in runs.values() for x in v)
                count = max(20_000, math.ceil(1.5 * fastest * args.duration))
                pool[0] += count
                ids = work / f"ids{r}.txt"
                make_decisions(client, kind, count, ids)
                return REWARD_ID_LUA % {"threads": args.threads, "ids": ids, "path": p + "/rewards"}
            if kind == "decide_reward":
                return DECIDE_REWARD_LUA % {"prefix": p, "context": CONTEXT}
            return REWARD_ARM_LUA % {"path": p + "/rewards"}

        def url(kind: str) -> str:  # scripts that build their own requests take the root
            return svc_url + prefix(kind) + "/decisions" if kind in DECIDE_ONLY else svc_url

        for r in range(args.rounds):
            rotated = kinds[r % len(kinds) :] + kinds[: r % len(kinds)]
            order.append([])
            for kind in rotated:  # the bare endpoint runs just before each kind
                base = BARE_READING if kind == "decide_reward" else "bare"
                lua = BARE_PARSE_LUA if kind == "decide_reward" else DECIDE_BODY
                runs[base].append(wrk(bare_url + "/echo", lua, args))
                paired_bare[kind].append((base, len(runs[base]) - 1))
                runs[kind].append(wrk(url(kind), script(kind, r), args))
                order[-1] += [base, kind]
                print(
                    f"round {r + 1}: {base} {runs[base][-1]['requests_per_s']:.0f} req/s,"
                    f" {kind} {runs[kind][-1]['requests_per_s']:.0f} req/s"
                )
        logged = {k: client.get(prefix(k) + "/stats").json() for k in kinds}
        client.close()
        db = work / "bench.db"
        files = {  # the database after the load, before shutdown checkpoints it
            "db_bytes": db.stat().st_size,
            "wal_bytes": db.with_name("bench.db-wal").stat().st_size,
        }
    finally:
        stop(svc)
        stop(bare)
        shutil.rmtree(work, ignore_errors=True)

    def answered(kind: str) -> int:
        return sum(x["requests"] - x["non_2xx"] for x in runs.get(kind, []))

    summary: dict[str, Any] = {}
    for kind, rounds in runs.items():
        rps = summarize(rounds, "requests_per_s")
        paired = [runs[b][i] for b, i in paired_bare.get(kind, [])] or rounds
        base = statistics.median(x["requests_per_s"] for x in paired)
        summary[kind] = {
            "requests_per_s": rps,
            "p50_ms_median": statistics.median(x["p50_ms"] for x in rounds),
            "p99_ms_median": statistics.median(x["p99_ms"] for x in rounds),
            "paired_bare_median_requests_per_s": base,
            "ratio_to_bare_median": rps["median"] / base,
            "non_2xx": sum(x["non_2xx"] for x in rounds),
        }
    # what the service logged, against what wrk saw answered (wrk does not count the
    # requests still in flight when a run ends, so logged >= answered)
    log_check: dict[str, Any] = {}
    for kind in kinds:
        stats = logged[kind]
        log_check[kind] = {
            "logged_decisions": stats["total_decisions"],
            "logged_reward_count": sum(a["rewards"] for a in stats["arms"]),
        }
    if "reward_by_id" in kinds:
        log_check["reward_by_id"]["decisions_made_beforehand"] = pool[0]
    for kind in ("thompson", "epsilon_greedy", "sticky"):
        if kind in kinds:
            log_check[kind]["answered_decisions"] = answered(kind)
    if "reward_by_id" in kinds:
        log_check["reward_by_id"]["answered_rewards"] = answered("reward_by_id")
    if "reward_by_arm" in kinds:
        log_check["reward_by_arm"]["answered_rewards_x_count_2"] = 2 * answered("reward_by_arm")
    if "decide_reward" in kinds:
        log_check["decide_reward"]["answered_requests"] = answered("decide_reward")
    for kind, c in log_check.items():  # every answered request is in the log
        events = c["logged_decisions"] + c["logged_reward_count"]
        if kind == "reward_by_id":
            events -= c["decisions_made_beforehand"]
        answered_events = next(v for k, v in c.items() if k.startswith("answered"))
        c["all_answered_logged"] = events >= answered_events
    result: dict[str, Any] = {
        "benchmark": "http",
        "command": "python bench/http.py " + " ".join(sys.argv[1:]),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "order": order,
        "paired_bare_runs": paired_bare,
        "summary": summary,
        "runs": runs,
        "logged": log_check,
        "files": files,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"\n{'endpoint':<16}{'median req/s':>13}{'min–max':>17}{'p50 ms':>8}{'p99 ms':>8}"
        f"{'× bare':>8}"
    )
    for kind, s in summary.items():
        rps = s["requests_per_s"]
        span = f"{rps['min']:.0f}–{rps['max']:.0f}"
        print(
            f"{kind:<16}{rps['median']:>13.0f}{span:>17}"
            f"{s['p50_ms_median']:>8.2f}{s['p99_ms_median']:>8.2f}"
            f"{s['ratio_to_bare_median']:>8.2f}"
        )
    failed = {k: s["non_2xx"] for k, s in summary.items() if s["non_2xx"]}
    if failed:
        print(f"non-2xx answers: {failed}")
    print(f"logged: {json.dumps(log_check)}")
    if not all(c["all_answered_logged"] for c in log_check.values()):
        print("SOME ANSWERED REQUESTS ARE NOT IN THE LOG")
    print(f"database after the load: {json.dumps(files)}")
    try:
        shown = args.out.resolve().relative_to(HERE.parent)
    except ValueError:
        shown = args.out
    print(f"wrote {shown}")


if __name__ == "__main__":
    main()
