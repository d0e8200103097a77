"""``GET /metrics``: Prometheus text format, service-wide with any number of workers.

Two sources make one scrape (see docs/metrics.md):

- **Request metrics** (latency histogram and count per route template, method
  and status) are recorded by :class:`RequestMetrics`, a pure-ASGI layer around
  the whole app (inside the authentication layer), in the HTTP worker that
  served the request. Under ``octobandit serve`` the workers write them to
  prometheus-client's multiprocess files, in a directory ``serve`` creates for
  the run (``PROMETHEUS_MULTIPROC_DIR``) and removes at exit, so that any
  worker's scrape sums every worker's. Without that directory (an app made by
  :func:`~octobandit.api.app.create_app` in a process of its own) they live in
  the app's own registry.
- **Engine metrics** (decisions and rewards per experiment and arm, group
  commits, storage errors, snapshot ticks, the WAL size) are asked of the one
  engine at each scrape (``Engine.metrics``, over the engine socket under
  ``serve``): there is one engine, so its numbers are the service's.

The label lookup on the request path is one dict access (the labelled
children are cached), and no lock is held across an ``await``.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import os
import platform
import time
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import octobandit

log = logging.getLogger("octobandit.api")

#: the scope key where a route served outside the FastAPI router names its template
ROUTE_KEY = "octobandit.route"
METRICS_PATH = "/metrics"
#: label of requests that matched no route (404s): raw paths never become labels
UNMATCHED = "unmatched"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: request latency buckets (seconds)
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
#: per-arm series (decisions, rewards) shown at most: beyond it, experiments are left out
DEFAULT_MAX_ARM_SERIES = 10_000
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> str | None:
    """The multiprocess directory when prometheus-client runs in multiprocess mode (it
    chooses the mode when first imported, from the environment)."""
    from prometheus_client import values

    if values.ValueClass is values.MutexValue:
        return None
    return os.environ.get(MULTIPROC_ENV) or os.environ.get(MULTIPROC_ENV.lower()) or None


def route_of(scope: Scope) -> str:
    """The route template that served ``scope`` (after the app ran), never the raw path."""
    named: str | None = scope.get(ROUTE_KEY)
    if named is not None:
        return named
    route = scope.get("route")  # set by the router of Starlette / FastAPI on a match
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED


class _Tally:
    """A histogram child's observations since the last flush: per bucket, and their sum."""

    __slots__ = ("counts", "total")

    def __init__(self, size: int) -> None:
        self.counts = [0] * size
        self.total = 0.0


class RequestMetrics:
    """Pure-ASGI layer: each HTTP request's latency (histogram) and count, by route
    template, method and status (latency: route and method only).

    A request only adds to plain in-memory tallies (a bisect and a few additions);
    they are flushed into prometheus-client's metrics (the multiprocess files under
    ``serve``) at each scrape of this worker and at most a second after a request,
    so a scrape of another worker sees this one's requests at most a second late.
    """

    FLUSH_SECONDS = 1.0

    def __init__(self, app: ASGIApp, registry: CollectorRegistry | None) -> None:
        self.app = app
        self.duration = Histogram(
            "octobandit_http_request_duration_seconds",
            "Time from a request's arrival to the end of its answer, by route template.",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.requests = Counter(
            "octobandit_http_requests",
            "HTTP requests answered, by route template, method and status.",
            ["route", "method", "status"],
            registry=registry,
        )
        self._tallies: dict[tuple[str, str], _Tally] = {}
        self._counts: dict[tuple[str, str, int], int] = {}
        self._flush_due = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # if the app raises before answering (the guard answers 500 then)

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self.observe(route_of(scope), scope["method"], status, time.perf_counter() - start)

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one request (on the event loop: no lock; flushed by :meth:`flush`)."""
        if method not in _METHODS:
            method = "other"
        key = (route, method)
        tally = self._tallies.get(key)
        if tally is None:
            tally = self._tallies[key] = _Tally(len(LATENCY_BUCKETS) + 1)
        tally.counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        tally.total += seconds
        ckey = (route, method, status)
        self._counts[ckey] = self._counts.get(ckey, 0) + 1
        if not self._flush_due:
            self._flush_due = True
            with contextlib.suppress(RuntimeError):  # no running loop: flushed at a scrape
                asyncio.get_running_loop().call_later(self.FLUSH_SECONDS, self.flush)

    def flush(self) -> None:
        """Move the tallies into the prometheus-client metrics (runs on the event loop)."""
        self._flush_due = False
        tallies, self._tallies = self._tallies, {}
        counts, self._counts = self._counts, {}
        for (route, method), tally in tallies.items():
            child = self.duration.labels(route, method)
            buckets = getattr(child, "_buckets", None)
            total = getattr(child, "_sum", None)
            if buckets is None or total is None or len(buckets) != len(tally.counts):
                n = sum(tally.counts)  # another prometheus-client layout: count and sum exact
                for _ in range(n):
                    child.observe(tally.total / n)
                continue
            for value, n in zip(buckets, tally.counts, strict=True):
                if n:
                    value.inc(n)
            total.inc(tally.total)
        for (route, method, status), n in counts.items():
            self.requests.labels(route, method, str(status)).inc(n)


class _Families:
    """A collector of metric families made once (for one scrape)."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterable[Metric]:
        return self.families


def _histogram(name: str, doc: str, data: dict[str, Any]) -> HistogramMetricFamily:
    cumulative, buckets = 0, []
    for bound, count in zip([*data["bounds"], float("inf")], data["buckets"], strict=True):
        cumulative += count
        buckets.append(("+Inf" if bound == float("inf") else repr(float(bound)), cumulative))
    return HistogramMetricFamily(name, doc, buckets=buckets, sum_value=data["sum"])


def engine_families(report: dict[str, Any] | None, max_arm_series: int) -> list[Metric]:
    """The engine's metric families from :meth:`Engine.metrics` (``None``: it did not answer)."""
    up = GaugeMetricFamily(
        "octobandit_engine_up", "1 if the engine answered this scrape, else 0 (no engine metrics)."
    )
    up.add_metric([], 0 if report is None else 1)
    build = GaugeMetricFamily(
        "octobandit_build_info", "Always 1: the version of octobandit and of Python.",
        labels=["version", "python"],
    )  # fmt: skip
    build.add_metric([octobandit.__version__, platform.python_version()], 1)
    families: list[Metric] = [build, up]
    if report is None:
        return families
    decisions = CounterMetricFamily(
        "octobandit_decisions",
        "Decisions served per experiment and arm (the arm's stored count; see docs/metrics.md).",
        labels=["experiment", "arm"],
    )
    rewards = CounterMetricFamily(
        "octobandit_rewards",
        "Rewards counted per experiment and arm (the arm's stored count; see docs/metrics.md).",
        labels=["experiment", "arm"],
    )
    series = dropped = 0
    experiments = report["experiments"]
    for experiment_id, arms in experiments:
        if series + len(arms) > max_arm_series:
            dropped += len(arms)
            continue
        series += len(arms)
        for arm_id, n_decisions, n_rewards in arms:
            decisions.add_metric([experiment_id, arm_id], n_decisions)
            rewards.add_metric([experiment_id, arm_id], n_rewards)
    count = GaugeMetricFamily("octobandit_experiments", "Experiments in the store.")
    count.add_metric([], len(experiments))
    left_out = GaugeMetricFamily(
        "octobandit_metrics_arm_series_dropped",
        "Arms whose decisions and rewards are left out of this scrape (over the series cap).",
    )
    left_out.add_metric([], dropped)
    families += [decisions, rewards, count, left_out]
    families.append(
        _histogram(
            "octobandit_group_commit_requests",
            "Data-plane requests per group commit (one storage transaction).",
            report["commit_size"],
        )
    )
    families.append(
        _histogram(
            "octobandit_group_commit_duration_seconds",
            "Time to run and commit one group of data-plane requests.",
            report["commit_seconds"],
        )
    )
    errors = CounterMetricFamily(
        "octobandit_storage_errors",
        "Storage failures by kind (storage_full, storage_lost, storage_unavailable).",
        labels=["kind"],
    )
    for kind, n in sorted(report["storage_errors"].items()):
        errors.add_metric([kind], n)
    ticks = CounterMetricFamily(
        "octobandit_snapshot_ticks", "Snapshot ticks run (due snapshots looked for)."
    )
    ticks.add_metric([], report["ticks"])
    snapshots = CounterMetricFamily(
        "octobandit_snapshots", "Posterior snapshots taken by the ticks."
    )
    snapshots.add_metric([], report["snapshots"])
    families += [errors, ticks, snapshots]
    if report["wal_bytes"] is not None:
        wal = GaugeMetricFamily(
            "octobandit_sqlite_wal_bytes", "Size of the SQLite write-ahead log (SQLite only)."
        )
        wal.add_metric([], report["wal_bytes"])
        families.append(wal)
    return families


class Metrics:
    """The metrics of one app: its request layer and the ``/metrics`` answer."""

    def __init__(
        self,
        fetch: Callable[[], Any],
        *,
        max_arm_series: int = DEFAULT_MAX_ARM_SERIES,
    ) -> None:
        """``fetch``: a coroutine function giving :meth:`Engine.metrics` (``backend.call``)."""
        self.fetch = fetch
        self.max_arm_series = max_arm_series
        self.directory = multiprocess_dir()
        # multiprocess mode: the values live in the directory's files (no registry of ours)
        self.registry = None if self.directory else CollectorRegistry(auto_describe=True)
        self.layer: RequestMetrics | None = None

    def wrap(self, app: ASGIApp) -> RequestMetrics:
        self.layer = RequestMetrics(app, self.registry)
        return self.layer

    async def exposition(self, accept: str = "") -> tuple[bytes, str]:
        """The scrape's body and content type: Prometheus text 0.0.4, or what ``accept``
        (the scraper's ``Accept`` header) asks for among prometheus-client's formats."""
        if self.layer is not None:  # this worker's requests up to now
            self.layer.flush()
        try:
            report = await self.fetch()
        except Exception:  # the engine process is restarting: the workers' metrics still
            log.warning("/metrics: the engine did not answer", exc_info=True)
            report = None
        return await asyncio.to_thread(self._render, report, accept)  # reads the files

    def _render(self, report: dict[str, Any] | None, accept: str) -> tuple[bytes, str]:
        scrape = CollectorRegistry(auto_describe=False)
        scrape.register(_Families(engine_families(report, self.max_arm_series)))
        if self.directory is not None:
            from prometheus_client.multiprocess import MultiProcessCollector

            MultiProcessCollector(scrape, path=self.directory)  # type: ignore[no-untyped-call]
        else:
            assert self.registry is not None
            scrape.register(_Families(list(self.registry.collect())))
        encoder, content_type = choose_encoder(accept)
        return encoder(scrape), content_type

    async def serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer ``/metrics``: GET and HEAD (the query string is ignored), else 405."""
        from octobandit.wire import error_body

        method = scope["method"]
        if method not in ("GET", "HEAD"):
            body = error_body("method_not_allowed", "Method Not Allowed")
            headers = [(b"content-type", b"application/json"), (b"allow", b"GET, HEAD")]
            status = 405
        else:
            accept = b",".join(v for k, v in scope["headers"] if k == b"accept")
            body, content_type = await self.exposition(accept.decode("latin-1"))
            headers = [(b"content-type", content_type.encode("latin-1"))]
            status = 200
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})
