"""Decisions per second through the Python client, in one run, beside the bare endpoint:

- ``remote-sync``: ``Client.decide`` one at a time (one thread);
- ``remote-async``: ``AsyncClient.decide`` with 32 concurrent tasks;
- ``local``: ``client.local(...).decide()`` in one process, every decision logged to the
  service (the run's time includes the final ``flush()``: the service has them all);
- ``bare-sync``, ``bare-async``: the same sync and 32-concurrent httpx loops against the
  bare Starlette endpoint (bench/baseline/bare_app.py, uvicorn + uvloop + httptools,
  one worker): the HTTP ceiling of one client process.

Run from the repository root, with the project installed (``pip install -e . orjson``):

    python bench/sdk.py [--duration 5] [--rounds 3]
    python bench/sdk.py --quick        # 2 s runs, 2 rounds: checks that it works

Every round starts a fresh ``octobandit serve --workers 1`` (fresh SQLite file) and the
bare endpoint, measures every mode on a fresh 3-arm Thompson experiment (the order of the
modes rotates from round to round), and checks after the local run that the service's
stats count exactly the decisions made locally. The summary gives per mode the MEDIAN
decisions per second over the rounds and the min–max, and the ratio to the bare
endpoint's same loop. Target: local mode ≥ 100,000 decisions/s. Everything goes to
bench/results/sdk.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# bench/http.py would shadow the stdlib's http package that httpx imports: keep bench/ last
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE] + [str(HERE)]

import httpx  # noqa: E402
from _common import free_port, start, stop, wait_up  # noqa: E402

from octobandit.client import AsyncClient, Client  # noqa: E402

RESULTS = HERE / "results" / "sdk.json"
MODES = ["remote-sync", "remote-async", "local", "bare-sync", "bare-async"]
CONCURRENCY = 32
TARGET_LOCAL = 100_000


def serve(port: int, db: Path) -> Any:
    exe = str(Path(sys.executable).with_name("octobandit"))
    cmd = [exe, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
           "--db", str(db), "--log-level", "warning"]  # fmt: skip
    return start(cmd)


def bare(port: int) -> Any:
    cmd = [sys.executable, "-m", "uvicorn", "bare_app:app", "--app-dir", str(HERE / "baseline"),
           "--host", "127.0.0.1", "--port", str(port), "--workers", "1", "--loop", "uvloop",
           "--http", "httptools", "--no-access-log", "--log-level", "warning"]  # fmt: skip
    return start(cmd)


def remote_sync(url: str, exp: str, duration: float) -> dict[str, Any]:
    with Client(url) as client:
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < duration:
            client.decide(exp)
            n += 1
        return {"decisions": n, "seconds": time.perf_counter() - t0}


def remote_async(url: str, exp: str, duration: float) -> dict[str, Any]:
    async def main() -> dict[str, Any]:
        async with AsyncClient(url) as client:
            counts = [0] * CONCURRENCY
            t0 = time.perf_counter()

            async def worker(i: int) -> None:
                while time.perf_counter() - t0 < duration:
                    await client.decide(exp)
                    counts[i] += 1

            await asyncio.gather(*(worker(i) for i in range(CONCURRENCY)))
            return {"decisions": sum(counts), "seconds": time.perf_counter() - t0}

    return asyncio.run(main())


def local(url: str, exp: str, duration: float) -> dict[str, Any]:
    with Client(url) as client:
        decider = client.local(exp, refresh_interval=1.0)
        n, t0 = 0, time.perf_counter()
        decide = decider.decide
        while time.perf_counter() - t0 < duration:
            for _ in range(1000):
                decide()
            n += 1000
        decided = time.perf_counter() - t0
        decider.close()
        seconds = time.perf_counter() - t0
        counted = sum(a.decisions for a in client.stats(exp).arms)
    if counted != n or decider.refused:
        raise RuntimeError(f"local: decided {n}, the service counts {counted}")
    return {"decisions": n, "seconds": seconds, "decide_seconds": decided, "counted": counted}


def bare_sync(url: str, duration: float) -> dict[str, Any]:
    with httpx.Client(base_url=url) as http:
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < duration:
            http.post("/echo", content=b"{}", headers={"content-type": "application/json"})
            n += 1
        return {"decisions": n, "seconds": time.perf_counter() - t0}


def bare_async(url: str, duration: float) -> dict[str, Any]:
    async def main() -> dict[str, Any]:
        limits = httpx.Limits(max_connections=CONCURRENCY)
        async with httpx.AsyncClient(base_url=url, limits=limits) as http:
            counts = [0] * CONCURRENCY
            t0 = time.perf_counter()

            async def worker(i: int) -> None:
                while time.perf_counter() - t0 < duration:
                    await http.post(
                        "/echo", content=b"{}", headers={"content-type": "application/json"}
                    )
                    counts[i] += 1

            await asyncio.gather(*(worker(i) for i in range(CONCURRENCY)))
            return {"decisions": sum(counts), "seconds": time.perf_counter() - t0}

    return asyncio.run(main())


def run_round(r: int, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    port, bare_port = free_port(), free_port()
    server = serve(port, work / f"round{r}.db")
    echo = bare(bare_port)
    url, bare_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{bare_port}"
    try:
        wait_up(url + "/healthz")
        wait_up(bare_url + "/echo", "POST")
        time.sleep(args.settle)
        order = MODES[r % len(MODES) :] + MODES[: r % len(MODES)]
        runs: dict[str, Any] = {}
        with Client(url) as client:
            for mode in order:
                exp = f"sdk-{uuid.uuid4().hex[:8]}"
                client.create_experiment(exp, policy="thompson", arms=["a", "b", "c"])
                if mode == "remote-sync":
                    out = remote_sync(url, exp, args.duration)
                elif mode == "remote-async":
                    out = remote_async(url, exp, args.duration)
                elif mode == "local":
                    out = local(url, exp, args.duration)
                elif mode == "bare-sync":
                    out = bare_sync(bare_url, args.duration)
                else:
                    out = bare_async(bare_url, args.duration)
                out["per_s"] = out["decisions"] / out["seconds"]
                runs[mode] = out
                print(f"round {r + 1}: {mode}: {out['per_s']:,.0f}/s", flush=True)
        return {"round": r, "order": order, "runs": runs}
    finally:
        stop(server)
        stop(echo)


def summarize(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for mode in MODES:
        rates = [x["runs"][mode]["per_s"] for x in rounds]
        table[mode] = {"median": statistics.median(rates), "min": min(rates), "max": max(rates)}
    for mode, base in (("remote-sync", "bare-sync"), ("remote-async", "bare-async")):
        table[mode]["ratio_to_bare"] = table[mode]["median"] / table[base]["median"]
    table["local"]["ratio_to_bare_async"] = table["local"]["median"] / table["bare-async"]["median"]
    table["local"]["meets_target"] = table["local"]["median"] >= TARGET_LOCAL
    return table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per mode and round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--settle", type=float, default=1.0, help="seconds between start and load")
    ap.add_argument("--quick", action="store_true", help="--duration 2 --rounds 2")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    if args.quick:
        args.duration, args.rounds = 2.0, 2
    work = Path(tempfile.mkdtemp(prefix="octobandit-sdk-"))
    try:
        rounds = [run_round(r, args, work) for r in range(args.rounds)]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summary = summarize(rounds)
    print(f"\n{'mode':<14}{'median /s':>12}{'min–max':>22}  vs bare")
    for mode, row in summary.items():
        span = f"{row['min']:,.0f}–{row['max']:,.0f}"
        ratio = row.get("ratio_to_bare", row.get("ratio_to_bare_async"))
        shown = f"{ratio:.2f}" if ratio is not None else "–"
        print(f"{mode:<14}{row['median']:>12,.0f}{span:>22}  {shown}")
    met = "met" if summary["local"]["meets_target"] else "NOT met"
    print(f"local target ≥ {TARGET_LOCAL:,}/s: {met}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "args": {"duration": args.duration, "rounds": args.rounds, "quick": args.quick},
                "machine": {"python": platform.python_version(), "platform": platform.platform()},
                "concurrency": CONCURRENCY,
                "summary": summary,
                "rounds": rounds,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
