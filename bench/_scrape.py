"""The cost of a ``/metrics`` scrape, and of the request metrics on decisions per second.

:func:`scrape_cost` times ``n`` scrapes of a running service (for bench/operations.py).
Run as a script, it starts ``octobandit serve``, creates experiments with traffic
(20 experiments × 5 arms by default), then, over interleaved rounds,

- times the scrapes (median and min–max seconds per scrape, and the body's bytes);
- calls a minimal ASGI app directly and through the request metrics layer, in process
  (µs per request);
- with ``--overhead``, runs wrk on decisions against the service and, side by side,
  the same service started with ``--no-metrics``, alternately (needs wrk):

    python bench/_scrape.py [--experiments 20] [--arms 5] [--scrapes 50] [--rounds 3]
                            [--workers 1] [--overhead] [--duration 10] [--quick]

Results in bench/results/scrape.json (``--out``). Only differences between lines measured
in the same run mean something; the machine's load moves all of them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# bench/http.py would shadow the standard library's http package (that httpx imports)
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.append(str(HERE))

import httpx  # noqa: E402
from _common import free_port, start, stop, wait_up, wrk  # noqa: E402

RESULTS = HERE / "results" / "scrape.json"
#: for bench/operations.py: the service without the metrics layer (``serve`` arguments)
NO_METRICS_VARIANT = ("--no-metrics", ["--no-metrics"])
DECIDE_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{}'
"""


def scrape_cost(base_url: str, n: int, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """Time ``n`` scrapes of ``base_url``/metrics on one keep-alive connection (after one
    untimed scrape): median, min and max seconds per scrape, the body's bytes and samples."""
    times: list[float] = []
    with httpx.Client(base_url=base_url, timeout=60, headers=headers) as client:
        body = client.get("/metrics").raise_for_status().content
        for _ in range(n):
            start_at = time.perf_counter()
            body = client.get("/metrics").raise_for_status().content
            times.append(time.perf_counter() - start_at)
    samples = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
    return {
        "scrapes": n,
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
        "bytes": len(body),
        "samples": samples,
    }


def layer_cost(requests: int, rounds: int) -> dict[str, dict[str, float]]:
    """µs per request of a minimal ASGI app called directly and through the request
    metrics layer (in-process registry), interleaved rounds: median, min and max."""
    import asyncio

    from prometheus_client import CollectorRegistry

    from octobandit.api.metrics import RequestMetrics

    scope = {"type": "http", "method": "POST", "path": "/v1/experiments/e/decisions"}
    body = {"type": "http.request", "body": b"{}", "more_body": False}

    async def bare(scope: Any, receive: Any, send: Any) -> None:
        scope["octobandit.route"] = "/v1/experiments/{experiment_id}/decisions"
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    async def receive() -> Any:
        return body

    async def send(message: Any) -> None:
        pass

    variants = {"bare app": bare, "metrics layer": RequestMetrics(bare, CollectorRegistry())}

    async def one(app: Any) -> float:
        start_at = time.perf_counter()
        for _ in range(requests):
            await app(dict(scope), receive, send)
        return (time.perf_counter() - start_at) / requests * 1e6

    async def run() -> dict[str, list[float]]:
        runs: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(rounds):
            for name, app in variants.items():
                runs[name].append(await one(app))
        return runs

    return {name: spread(v) for name, v in asyncio.run(run()).items()}


def populate(base_url: str, experiments: int, arms: int, decisions: int) -> None:
    """``experiments`` × ``arms`` with ``decisions`` decisions (half rewarded) each."""
    with httpx.Client(base_url=base_url, timeout=60) as client:
        for e in range(experiments):
            spec = {"id": f"exp-{e}", "arms": [{"id": f"arm-{a}"} for a in range(arms)]}
            client.post("/v1/experiments", json=spec).raise_for_status()
            batch = client.post(f"/v1/experiments/exp-{e}/decisions", json={"n": decisions})
            rewards = [
                {"decision_id": d["decision_id"], "reward": 1.0}
                for d in batch.raise_for_status().json()["decisions"][::2]
            ]
            client.post(f"/v1/experiments/exp-{e}/rewards", json={"rewards": rewards})


def serve_cmd(port: int, db: Path, workers: int, extra: list[str]) -> list[str]:
    exe = Path(sys.executable).with_name("octobandit")
    return [
        str(exe), "serve", "--host", "127.0.0.1", "--port", str(port), "--db", str(db),
        "--workers", str(workers), "--log-level", "warning", *extra,
    ]  # fmt: skip


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--experiments", type=int, default=20)
    ap.add_argument("--arms", type=int, default=5)
    ap.add_argument("--decisions", type=int, default=200, help="per experiment, beforehand")
    ap.add_argument("--scrapes", type=int, default=50, help="timed scrapes per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--overhead", action="store_true", help="decisions/s with and without metrics")
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk run (--overhead)")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--layer-requests", type=int, default=100_000, help="in-process calls")
    ap.add_argument("--quick", action="store_true", help="tiny settings: proves it runs")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    if args.quick:
        args.scrapes, args.rounds, args.duration = 5, 2, 1
        args.connections, args.threads, args.layer_requests = 4, 1, 2000
    work = Path(tempfile.mkdtemp(prefix="octobandit-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCTOBANDIT_")}
    services: dict[str, list[str]] = {"metrics": []}
    if args.overhead:
        services[NO_METRICS_VARIANT[0]] = NO_METRICS_VARIANT[1]
    urls: dict[str, str] = {}
    procs = []
    try:
        for name, extra in services.items():
            port = free_port()
            db = work / f"{name.strip('-')}.db"
            procs.append(start(serve_cmd(port, db, args.workers, extra), env))
            urls[name] = f"http://127.0.0.1:{port}"
        for url in urls.values():
            wait_up(url + "/healthz")
            populate(url, args.experiments, args.arms, args.decisions)
        scrapes: list[dict[str, Any]] = []
        rates: dict[str, list[float]] = {name: [] for name in urls}
        for _ in range(args.rounds):  # interleaved: every measurement once per round
            scrapes.append(scrape_cost(urls["metrics"], args.scrapes))
            if args.overhead:
                for name, url in urls.items():
                    result = wrk(
                        url + "/v1/experiments/exp-0/decisions",
                        DECIDE_LUA,
                        threads=args.threads,
                        connections=args.connections,
                        duration=args.duration,
                    )
                    rates[name].append(result["requests_per_s"])
        summary: dict[str, Any] = {
            "scrape_s": spread([s["median_s"] for s in scrapes]),
            "scrape_bytes": scrapes[-1]["bytes"],
            "scrape_samples": scrapes[-1]["samples"],
        }
        print(
            f"/metrics scrape ({args.experiments} experiments × {args.arms} arms, "
            f"{summary['scrape_bytes']} bytes, {summary['scrape_samples']} samples): "
            f"{summary['scrape_s']['median'] * 1e3:.2f} ms "
            f"({summary['scrape_s']['min'] * 1e3:.2f}–{summary['scrape_s']['max'] * 1e3:.2f})"
        )
        summary["layer_us"] = layer_cost(args.layer_requests, args.rounds)
        for name, s in summary["layer_us"].items():
            spread_us = f"({s['min']:.2f}–{s['max']:.2f})"
            print(f"in process, {name:<14} {s['median']:6.2f} µs/request {spread_us}")
        if args.overhead:
            summary["decisions_per_s"] = {name: spread(v) for name, v in rates.items()}
            for name, s in summary["decisions_per_s"].items():
                print(f"decisions/s, {name:<12} {s['median']:9.0f} ({s['min']:.0f}–{s['max']:.0f})")
            pairs = zip(rates["metrics"], rates[NO_METRICS_VARIANT[0]], strict=True)
            ratio = [with_metrics / without for with_metrics, without in pairs]
            summary["metrics_over_no_metrics"] = spread(ratio)
        args.out.parent.mkdir(exist_ok=True)
        args.out.write_text(
            json.dumps(
                {
                    "benchmark": "scrape",
                    "settings": {k: str(v) for k, v in vars(args).items()},
                    "summary": summary,
                    "rounds": {"scrapes": scrapes, "decisions_per_s": rates},
                },
                indent=1,
            )
            + "\n"
        )
        print(f"wrote {args.out}")
    finally:
        for proc in procs:
            stop(proc)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
