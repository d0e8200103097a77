"""In-process cost of the request guard (Host, content type, body deadline, JSON 500).

Calls a minimal ASGI app directly and through :class:`octobandit.api.guards.Guard`
with a decision-like request whose body is already received (the usual case), and
prints, per variant, the median and min–max over five interleaved rounds in
microseconds per request (results in bench/results/guard_overhead.json):

    python bench/guard_overhead.py [--requests 100000]

Only differences between the lines mean something; the machine's load moves all of them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

# bench/http.py would shadow the standard library's http package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

from octobandit.api.guards import Guard, allowed_host_set  # noqa: E402

SCOPE = {
    "type": "http",
    "method": "POST",
    "path": "/v1/experiments/e/rewards",
    "headers": [
        (b"host", b"127.0.0.1:8000"),
        (b"user-agent", b"bench"),
        (b"content-type", b"application/json"),
        (b"content-length", b"25"),
    ],
}
BODY = {"type": "http.request", "body": b'{"arm_id":"a","reward":1}', "more_body": False}


async def bare(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


async def receive() -> Any:
    return BODY


RESULTS = Path(__file__).resolve().parent / "results" / "guard_overhead.json"


async def send(message: Any) -> None:
    pass


async def one_round(app: Any, requests: int) -> float:
    start = time.perf_counter()
    for _ in range(requests):
        await app(SCOPE, receive, send)
    return (time.perf_counter() - start) / requests * 1e6


async def main(requests: int, rounds: int = 5) -> None:
    hosts = allowed_host_set([])
    variants = {
        "bare app": bare,
        "guard, no body deadline": Guard(bare, hosts=hosts, body_timeout=None),
        "guard, body deadline 30 s": Guard(bare, hosts=hosts, body_timeout=30.0),
    }
    runs: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):  # interleaved: every variant once per round
        for name, app in variants.items():
            runs[name].append(await one_round(app, requests))
    summary = {}
    for name, values in runs.items():
        summary[name] = {
            "median_us": statistics.median(values),
            "min_us": min(values),
            "max_us": max(values),
        }
        s = summary[name]
        print(f"{name:<28} {s['median_us']:6.2f} µs/request ({s['min_us']:.2f}–{s['max_us']:.2f})")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "guard_overhead",
                "requests_per_round": requests,
                "rounds": rounds,
                "summary": summary,
                "runs": runs,
            },
            indent=1,
        )
        + "\n"
    )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--requests", type=int, default=100_000)
    asyncio.run(main(ap.parse_args().requests))
