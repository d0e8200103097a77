"""In-process cost of the request guard (Host, content type, body deadline, JSON 500).

Calls a minimal ASGI app directly and through :class:`octobandit.api.guards.Guard`
with a decision-like request whose body is already received (the usual case), and
prints the best of five rounds per variant in microseconds per request:

    python bench/guard_overhead.py [--requests 100000]

Only differences between the lines mean something; the machine's load moves all of them.
"""

from __future__ import annotations

import argparse
import asyncio
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


async def send(message: Any) -> None:
    pass


async def measure(app: Any, requests: int) -> float:
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(requests):
            await app(SCOPE, receive, send)
        best = min(best, (time.perf_counter() - start) / requests)
    return best * 1e6


async def main(requests: int) -> None:
    hosts = allowed_host_set([])
    variants = {
        "bare app": bare,
        "guard, no body deadline": Guard(bare, hosts=hosts, body_timeout=None),
        "guard, body deadline 30 s": Guard(bare, hosts=hosts, body_timeout=30.0),
    }
    for name, app in variants.items():
        print(f"{name:<28} {await measure(app, requests):6.2f} µs/request")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--requests", type=int, default=100_000)
    asyncio.run(main(ap.parse_args().requests))
