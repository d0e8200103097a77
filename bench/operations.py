"""Operations benchmark: decisions per second of service variants, side by side.

Needs wrk (``apt-get install -y wrk``). Run from the repository root, with the
project installed:

    python bench/operations.py [--duration 10] [--rounds 5] [--connections 32] [--threads 2]
    python bench/operations.py --quick        # 2 s runs, 2 rounds: checks that it works

Each variant is ``octobandit serve`` (one worker, its defaults) with some flags,
loaded by the same wrk command with some request headers: decisions on a 3-arm
Thompson experiment with a context in the body (as ``thompson`` in
bench/http.py). The first variant is the baseline:

- ``open``: no authentication (the default);
- ``auth_key``: ``--auth``, every request with ``Authorization: Bearer`` and a
  valid API key (target: at least 0.95 × ``open``);
- ``no_metrics``: ``--no-metrics`` (no request metrics layer, no ``/metrics``): what the
  metrics layer costs ``open``;
- ``auth_key_scraped_1s``: ``auth_key`` with ``/metrics`` scraped every second during the
  load: the decisions a scrape costs, and the scrape's own time under load.

Every variant's service is started before the first round and runs throughout
(each on its own SQLite file); in every round each variant runs once, in an order
that rotates from round to round, so that no variant always runs first or last.
The summary gives, per variant, the MEDIAN requests per second over the rounds
with the min–max, the median p50 and p99 latencies, the ratio of its median to
the baseline's median, and the median of the per-round ratios (variant / baseline
in the same round). Everything goes to bench/results/operations.json.

To add a variant (a ``/metrics`` scrape under load, say), append a
:class:`Variant` to :data:`VARIANTS`: its serve flags, its environment, its
request headers (``{key}`` is replaced by an admin API key of its store), and
optionally ``during``: a function started beside wrk in each of its runs (given
the service URL, the key and the run's duration) whose result is recorded with
the run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# bench/http.py shadows the stdlib's http: keep this folder last on the path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE] + [str(HERE)]

import httpx  # noqa: E402
from _common import Wrk, free_port, start, stop, wait_up  # noqa: E402

RESULTS = HERE / "results" / "operations.json"
EXPERIMENT = {
    "id": "ops",
    "policy": {"type": "thompson"},
    "arms": [{"id": f"arm{i}"} for i in range(3)],
}
BODY = '{"context":{"country":"fr"}}'


@dataclass
class Variant:
    name: str
    #: extra ``octobandit serve`` flags
    flags: list[str] = field(default_factory=list)
    #: extra environment of the service
    env: dict[str, str] = field(default_factory=dict)
    #: request headers of the load (``{key}``: an admin API key of the variant's store)
    headers: dict[str, str] = field(default_factory=dict)
    #: run beside wrk in each of the variant's runs: (url, key, seconds) -> a JSON value
    during: Callable[[str, str, float], Any] | None = None


def scrape_every(interval: float) -> Callable[[str, str, float], Any]:
    """A ``during`` function: scrape ``/metrics`` every ``interval`` seconds while the load
    runs; the scrapes' seconds (median, min, max) and the body's bytes."""

    def scrape(url: str, key: str, seconds: float) -> dict[str, Any]:
        times: list[float] = []
        size = 0
        end = time.monotonic() + seconds
        with httpx.Client(
            base_url=url, timeout=30, headers={"Authorization": f"Bearer {key}"}
        ) as c:
            time.sleep(min(interval, seconds / 4))  # let the load start
            while time.monotonic() < end - interval / 2:
                t = time.perf_counter()
                size = len(c.get("/metrics").raise_for_status().content)
                times.append(time.perf_counter() - t)
                time.sleep(max(0.0, interval - (time.perf_counter() - t)))
        return {"scrapes": len(times), "bytes": size, **summarize(times)} if times else {}

    return scrape


VARIANTS = [
    Variant("open"),
    Variant("auth_key", flags=["--auth"], headers={"Authorization": "Bearer {key}"}),
    # the request-metrics layer's cost: the default (open) has it, this one has not
    Variant("no_metrics", flags=["--no-metrics"]),
    # a /metrics scrape every second under the load (Prometheus scrapes every 15 s or so)
    Variant(
        "auth_key_scraped_1s",
        flags=["--auth"],
        headers={"Authorization": "Bearer {key}"},
        during=scrape_every(1.0),
    ),
]


def lua(headers: dict[str, str]) -> str:
    lines = ['wrk.method = "POST"', 'wrk.headers["Content-Type"] = "application/json"']
    lines += [f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items()]
    lines.append(f"wrk.body = '{BODY}'")
    return "\n".join(lines) + "\n"


class Service:
    """One variant's ``octobandit serve``, its store holding an admin key and the experiment."""

    def __init__(self, variant: Variant, workdir: Path) -> None:
        from octobandit.api.keys import new_key
        from octobandit.storage import SQLiteStorage

        self.variant = variant
        db = workdir / f"{variant.name}.db"
        self.key, record = new_key("bench", ["admin"])
        store = SQLiteStorage(str(db))
        try:
            store.add_api_key(record)
        finally:
            store.close()
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        exe = Path(sys.executable).with_name("octobandit")
        cmd = [
            str(exe), "serve", "--host", "127.0.0.1", "--port", str(port), "--db", str(db),
            "--workers", "1", "--log-level", "warning", *variant.flags,
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("OCTOBANDIT_")}
        self.proc = start(cmd, env={**env, **variant.env})
        wait_up(self.url + "/healthz")
        self.headers = {k: v.format(key=self.key) for k, v in variant.headers.items()}
        admin = {"Authorization": f"Bearer {self.key}"}
        r = httpx.post(self.url + "/v1/experiments", json=EXPERIMENT, headers=admin)
        r.raise_for_status()
        # the load must be accepted: a refused request would make the variant look fast
        probe = httpx.post(
            self.url + "/v1/experiments/ops/decisions",
            content=BODY,
            headers={"Content-Type": "application/json", **self.headers},
        )
        probe.raise_for_status()

    def run(self, args: argparse.Namespace) -> dict[str, Any]:
        load = Wrk(
            self.url + "/v1/experiments/ops/decisions",
            lua(self.headers),
            threads=args.threads,
            connections=args.connections,
            duration=args.duration,
        )
        extra: dict[str, Any] = {}
        helper = None
        if self.variant.during is not None:
            during = self.variant.during

            def beside() -> None:
                extra["during"] = during(self.url, self.key, args.duration)

            helper = threading.Thread(target=beside)
            helper.start()
        result = load.result()
        if helper is not None:
            helper.join()
        return {**result, **extra}

    def stop(self) -> None:
        stop(self.proc)


def summarize(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    ap.add_argument("--rounds", type=int, default=5, help="rounds (every variant once each)")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--variants", default=",".join(v.name for v in VARIANTS), help="comma-separated subset"
    )
    ap.add_argument("--quick", action="store_true", help="--duration 2 --rounds 2")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    if args.quick:
        args.duration, args.rounds = 2, 2
    chosen = args.variants.split(",")
    variants = [v for v in VARIANTS if v.name in chosen]
    if not variants or variants[0] is not VARIANTS[0]:
        ap.error(f"the variants must include the baseline {VARIANTS[0].name!r}")
    runs: dict[str, list[dict[str, Any]]] = {v.name: [] for v in variants}
    order: list[list[str]] = []
    with tempfile.TemporaryDirectory(prefix="octobandit-ops-") as tmp:
        services = []
        try:
            for variant in variants:
                services.append(Service(variant, Path(tmp)))
            for r in range(args.rounds):
                turn = services[r % len(services) :] + services[: r % len(services)]
                order.append([s.variant.name for s in turn])
                for service in turn:
                    runs[service.variant.name].append(service.run(args))
                    print(
                        f"round {r + 1} {service.variant.name:<20}"
                        f"{runs[service.variant.name][-1]['requests_per_s']:>10.0f} req/s",
                        flush=True,
                    )
        finally:
            for service in services:
                service.stop()
    base = variants[0].name
    summary: dict[str, Any] = {}
    for variant in variants:
        rps = [run["requests_per_s"] for run in runs[variant.name]]
        ratios = [
            run["requests_per_s"] / b["requests_per_s"]
            for run, b in zip(runs[variant.name], runs[base], strict=True)
        ]
        summary[variant.name] = {
            "requests_per_s": summarize(rps),
            "p50_ms_median": statistics.median(run["p50_ms"] for run in runs[variant.name]),
            "p99_ms_median": statistics.median(run["p99_ms"] for run in runs[variant.name]),
            "ratio_of_medians": statistics.median(rps)
            / statistics.median(x["requests_per_s"] for x in runs[base]),
            "ratio_per_round": summarize(ratios),
            "non_2xx": sum(run["non_2xx"] for run in runs[variant.name]),
        }
        scrapes = [run["during"] for run in runs[variant.name] if run.get("during")]
        if scrapes:  # the /metrics scrapes beside the load: per run, then across runs
            summary[variant.name]["scrape_s"] = summarize([d["median"] for d in scrapes])
            summary[variant.name]["scrape_bytes"] = scrapes[-1]["bytes"]
    result = {
        "benchmark": "operations",
        "command": "python bench/operations.py " + " ".join(sys.argv[1:]),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "variants": [
            {"name": v.name, "flags": v.flags, "env": v.env, "headers": list(v.headers)}
            for v in variants
        ],
        "baseline": base,
        "target": {"auth_key": ">= 0.95 x open"},
        "order": order,
        "summary": summary,
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"\n{'variant':<12}{'median req/s':>13}{'min–max':>17}{'p50 ms':>8}{'p99 ms':>8}"
        f"{'× base':>8}{'round ×, min–max':>20}"
    )
    for name, s in summary.items():
        rps, per = s["requests_per_s"], s["ratio_per_round"]
        span = f"{rps['min']:.0f}–{rps['max']:.0f}"
        rounds = f"{per['median']:.3f} ({per['min']:.3f}–{per['max']:.3f})"
        print(
            f"{name:<12}{rps['median']:>13.0f}{span:>17}"
            f"{s['p50_ms_median']:>8.2f}{s['p99_ms_median']:>8.2f}{s['ratio_of_medians']:>8.3f}"
            f"{rounds:>20}"
        )
    failed = {k: s["non_2xx"] for k, s in summary.items() if s["non_2xx"]}
    if failed:
        print(f"NON-2XX ANSWERS (the numbers are not valid): {failed}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
