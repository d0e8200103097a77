"""Requests per second of the octobandit Seldon router against a trivial router (always
branch 0, :class:`AlwaysZero` below), both in seldon-core 1.18.2's own microservice.

``run(rounds, seconds)`` (called by bench/integrations.py) starts, in every round and
for each router in turn (the order alternates from round to round), a fresh
``seldon-core-microservice <router> --service-type ROUTER`` (Seldon's defaults: one
gunicorn worker, one thread; no gRPC server) and drives it for ``seconds`` with
``/route`` requests, then for ``seconds`` with ``/send-feedback`` requests, from
``threads`` client threads (httpx, one connection each). Every feedback names a distinct
decision that the route phase made (its tag and its branch in ``meta.routing``), as
Seldon's executor sends it: a reward of that decision; once they run out, feedback goes
without a tag (an arm-level reward). The octobandit router keeps its experiment in an
SQLite file of its own (``url`` may name an octobandit service instead). Answers other
than 200 fail the run. The result gives per router and endpoint the MEDIAN requests/s
over the rounds and the min–max, and the octobandit/trivial ratios.

The microservices run from the seldon-core venv (``$OCTOBANDIT_SELDON_VENV``, default
``.venv-seldon``; built by ``.ci/seldon-venv`` when missing). A smoke run::

    python bench/_seldon.py            # 2 rounds of 1 s: checks that it works
    python bench/_seldon.py --rounds 5 --seconds 10
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
# bench/http.py would shadow the stdlib's http package that httpx imports: keep bench/ last
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE] + [str(HERE)]

import httpx  # noqa: E402

OCTOBANDIT = "octobandit.integrations.seldon.Router"
TRIVIAL = "_seldon.AlwaysZero"
UNIT = "router"
REQUEST = {"data": {"ndarray": [[0.0, 0.0]], "names": ["feature_1", "feature_2"]}}


class AlwaysZero:
    """The trivial router: every request to branch 0, feedback ignored."""

    def __init__(self, n_branches: int = 3, **_: Any) -> None:
        self.n_branches = n_branches

    def route(self, features: Any, feature_names: Any) -> int:
        return 0

    def send_feedback(
        self, features: Any, feature_names: Any, reward: float, truth: Any, routing: Any = None
    ) -> list[Any]:
        return []


def seldon_venv() -> Path:
    venv = Path(os.environ.get("OCTOBANDIT_SELDON_VENV", REPO / ".venv-seldon"))
    subprocess.run(
        ["bash", str(REPO / ".ci" / "seldon-venv")],
        env={**os.environ, "OCTOBANDIT_SELDON_VENV": str(venv)},
        check=True,
    )
    return venv


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_router(venv: Path, router: str, parameters: dict[str, Any]) -> tuple[Any, str]:
    """A microservice for ``router`` (in a process group of its own) and its URL."""
    port = _free_port()
    typed = [
        {"name": k, "value": str(v), "type": "INT" if isinstance(v, int) else "STRING"}
        for k, v in parameters.items()
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCTOBANDIT_")}
    env.update(
        PYTHONPATH=str(REPO / "src"),  # this checkout's octobandit
        PREDICTIVE_UNIT_ID=UNIT,
        PREDICTIVE_UNIT_PARAMETERS=json.dumps(typed),
    )
    cmd = [
        str(venv / "bin" / "seldon-core-microservice"), router, "--service-type", "ROUTER",
        "--http-port", str(port), "--grpc-workers", "0", "--metrics-port", str(_free_port()),
        "--log-level", "WARNING",
    ]  # fmt: skip
    # the microservice appends its working directory to sys.path (last): bench/ for
    # _seldon.AlwaysZero, without shadowing the stdlib's http
    proc = subprocess.Popen(
        cmd, cwd=HERE, env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the microservice for {router} exited ({proc.returncode})")
        try:
            if httpx.get(url + "/health/ping", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    stop_router(proc)
    raise RuntimeError(f"the microservice for {router} did not start")


def stop_router(proc: Any) -> None:
    import signal

    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def _drive(url: str, path: str, bodies: Any, seconds: float, threads: int) -> dict[str, Any]:
    """``threads`` clients posting ``bodies()`` to ``path`` for ``seconds``: requests/s."""
    done = [0] * threads
    answers: list[list[dict[str, Any]]] = [[] for _ in range(threads)]
    failures: list[str] = []
    stop_at = time.monotonic() + seconds

    def client(i: int) -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            while time.monotonic() < stop_at and not failures:
                answer = http.post(path, json=bodies())
                if answer.status_code != 200:
                    failures.append(f"{path}: {answer.status_code} {answer.text[:300]}")
                    return
                done[i] += 1
                if path == "/route":
                    answers[i].append(answer.json())

    started = time.monotonic()
    pool = [threading.Thread(target=client, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    elapsed = time.monotonic() - started
    if failures:
        raise RuntimeError(failures[0])
    return {
        "requests": sum(done),
        "seconds": elapsed,
        "rps": sum(done) / elapsed,
        "answers": [a for part in answers for a in part],
    }


def measure(url: str, seconds: float, threads: int) -> dict[str, Any]:
    """``/route`` then ``/send-feedback`` on one microservice."""
    routed = _drive(url, "/route", lambda: REQUEST, seconds, threads)
    pending = routed.pop("answers")
    lock = threading.Lock()

    def feedback() -> dict[str, Any]:
        with lock:
            answer = pending.pop() if pending else None
        if answer is None:
            meta: dict[str, Any] = {"routing": {UNIT: 0}}
        else:
            branch = int(answer["data"]["ndarray"][0][0])
            meta = {"routing": {UNIT: branch}, "tags": answer.get("meta", {}).get("tags", {})}
        return {"request": REQUEST, "response": {"meta": meta}, "reward": 1.0}

    fed = _drive(url, "/send-feedback", feedback, seconds, threads)
    fed.pop("answers")
    return {"route": routed, "send-feedback": fed}


def run(
    rounds: int = 3,
    seconds: float = 5.0,
    *,
    threads: int = 4,
    n_branches: int = 3,
    url: str | None = None,
    venv: Path | None = None,
) -> dict[str, Any]:
    """Interleaved rounds of both routers; medians and min–max of requests/s."""
    venv = venv or seldon_venv()
    routers = {"octobandit": OCTOBANDIT, "trivial": TRIVIAL}
    samples: dict[str, dict[str, list[float]]] = {
        r: {"route": [], "send-feedback": []} for r in routers
    }
    with tempfile.TemporaryDirectory(prefix="bench-seldon-") as tmp:
        for i in range(rounds):
            order = list(routers) if i % 2 == 0 else list(reversed(routers))
            for name in order:
                parameters: dict[str, Any] = {"n_branches": n_branches}
                if name == "octobandit":
                    parameters.update(
                        epsilon="0.1",
                        url=url or str(Path(tmp) / f"round{i}.db"),
                        experiment=f"bench-seldon-{i}",
                    )
                proc, base = start_router(venv, routers[name], parameters)
                try:
                    result = measure(base, seconds, threads)
                finally:
                    stop_router(proc)
                for endpoint, got in result.items():
                    samples[name][endpoint].append(got["rps"])
    summary: dict[str, Any] = {}
    for name, endpoints in samples.items():
        summary[name] = {
            endpoint: {
                "median_rps": statistics.median(values),
                "min_rps": min(values),
                "max_rps": max(values),
                "rounds": values,
            }
            for endpoint, values in endpoints.items()
        }
    summary["ratio_octobandit_to_trivial"] = {
        endpoint: summary["octobandit"][endpoint]["median_rps"]
        / summary["trivial"][endpoint]["median_rps"]
        for endpoint in ("route", "send-feedback")
    }
    summary["setup"] = {
        "rounds": rounds,
        "seconds": seconds,
        "threads": threads,
        "n_branches": n_branches,
        "store": url or "sqlite file",
        "seldon_core": "1.18.2",
        "server": "seldon-core-microservice, 1 gunicorn worker, 1 thread (defaults)",
    }
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--url", default=None, help="an octobandit service for the router")
    args = parser.parse_args()
    result = run(args.rounds, args.seconds, threads=args.threads, url=args.url)
    for name in ("octobandit", "trivial"):
        for endpoint, r in result[name].items():
            print(
                f"{name:10} {endpoint:14} median {r['median_rps']:8.0f} req/s "
                f"(min–max {r['min_rps']:.0f}–{r['max_rps']:.0f})"
            )
    ratio = result["ratio_octobandit_to_trivial"]
    print(f"octobandit / trivial: route {ratio['route']:.2f}", end=", ")
    print(f"feedback {ratio['send-feedback']:.2f}")


if __name__ == "__main__":
    main()
