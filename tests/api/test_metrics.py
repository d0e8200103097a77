"""``GET /metrics``: parsed by prometheus-client's own parser, counted against what was sent.

Over the API in this process and over the engine's own server (the ``client``
fixture), and the real service with two HTTP workers.
"""

from __future__ import annotations

import collections
import glob
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from octobandit.api.app import create_app
from octobandit.api.metrics import RequestMetrics
from octobandit.config import Settings
from octobandit.engine import Engine
from octobandit.errors import StorageFull

DECISIONS = "/v1/experiments/{experiment_id}/decisions"
REWARDS = "/v1/experiments/{experiment_id}/rewards"


@pytest.fixture(params=["in_process", "engine_process"])
def client(
    request: pytest.FixtureRequest, engine: Engine, tmp_path: Path, engine_server: Any
) -> Iterator[TestClient]:
    """The API over the engine in this process, and over the engine's own server; the
    snapshot ticks are left to the tests (the engine is theirs to call between requests)."""
    if request.param == "in_process":
        app = create_app(engine, Settings(tick_seconds=3600))
        with TestClient(app, base_url="http://localhost") as c:
            yield c
        return
    with engine_server(engine, str(tmp_path / "engine.sock")) as path:
        app = create_app(None, Settings(engine_socket=path))
        with TestClient(app, base_url="http://localhost") as c:
            yield c


def scrape(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Every sample of a scrape by sample name (parsed by prometheus-client)."""
    samples: dict[str, list[tuple[dict[str, str], float]]] = collections.defaultdict(list)
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[s.name].append((s.labels, s.value))
    return samples


def value(samples: dict[str, Any], name: str, **labels: str) -> float | None:
    """The value of the one sample ``name`` with these labels (among others), else None."""
    found = [v for lab, v in samples.get(name, []) if labels.items() <= lab.items()]
    assert len(found) <= 1, (name, labels, found)
    return found[0] if found else None


def per_arm(samples: dict[str, Any], name: str, experiment: str) -> dict[str, float]:
    return {lab["arm"]: v for lab, v in samples.get(name, []) if lab["experiment"] == experiment}


def make(client: TestClient | httpx.Client, experiment_id: str, arms: int = 3) -> None:
    spec = {"id": experiment_id, "arms": [{"id": f"arm-{i}"} for i in range(arms)]}
    assert client.post("/v1/experiments", json=spec).status_code == 201


def test_counters_equal_the_decisions_and_rewards_sent(client: TestClient) -> None:
    make(client, "m1")
    make(client, "m2", arms=2)
    sent = {"m1": collections.Counter[str](), "m2": collections.Counter[str]()}
    rewarded = {"m1": collections.Counter[str](), "m2": collections.Counter[str]()}
    for i in range(30):
        experiment = "m1" if i % 3 else "m2"
        d = client.post(f"/v1/experiments/{experiment}/decisions").json()
        sent[experiment][d["arm_id"]] += 1
        if i % 2 == 0:
            body = {"decision_id": d["decision_id"], "reward": 1.0}
            r = client.post(f"/v1/experiments/{experiment}/rewards", json=body)
            assert r.json()["accepted"] == 1
            rewarded[experiment][d["arm_id"]] += 1
    # bulk: n decisions in one request count n
    batch = client.post("/v1/experiments/m2/decisions", json={"n": 4}).json()["decisions"]
    for d in batch:
        sent["m2"][d["arm_id"]] += 1
    # the aggregate form: count pulls on an arm
    client.post("/v1/experiments/m2/rewards", json={"arm_id": "arm-0", "reward": 0.5, "count": 7})
    rewarded["m2"]["arm-0"] += 7
    # a refused request counts nothing
    assert client.post("/v1/experiments/m1/decisions", json={"n": 0}).status_code == 422

    samples = scrape(client.get("/metrics").text)
    for experiment in ("m1", "m2"):
        arms = [f"arm-{i}" for i in range(3 if experiment == "m1" else 2)]
        assert per_arm(samples, "octobandit_decisions_total", experiment) == {
            a: sent[experiment][a] for a in arms
        }
        assert per_arm(samples, "octobandit_rewards_total", experiment) == {
            a: rewarded[experiment][a] for a in arms
        }
    assert value(samples, "octobandit_experiments") == 2
    assert value(samples, "octobandit_engine_up") == 1
    build = samples["octobandit_build_info"]
    assert len(build) == 1 and build[0][1] == 1 and build[0][0]["version"]


def test_request_histograms_count_the_requests_per_route_template(client: TestClient) -> None:
    make(client, "h1")
    make(client, "h2")
    for experiment in ("h1", "h2"):
        for _ in range(5):
            client.post(f"/v1/experiments/{experiment}/decisions")
        client.get(f"/v1/experiments/{experiment}/stats")
    client.post("/v1/experiments/h1/rewards", json={"arm_id": "arm-0", "reward": 1.0})
    client.post("/v1/experiments/nope/decisions")  # 404: still the route template
    client.get("/no/such/path")
    samples = scrape(client.get("/metrics").text)
    count = "octobandit_http_request_duration_seconds_count"
    assert value(samples, count, route=DECISIONS, method="POST") == 11
    assert value(samples, count, route=REWARDS, method="POST") == 1
    stats = "/v1/experiments/{experiment_id}/stats"
    assert value(samples, count, route=stats, method="GET") == 2
    assert value(samples, count, route="unmatched", method="GET") == 1
    requests = "octobandit_http_requests_total"
    assert value(samples, requests, route=DECISIONS, method="POST", status="200") == 10
    assert value(samples, requests, route=DECISIONS, method="POST", status="404") == 1
    # raw paths never become labels
    routes = {lab["route"] for lab, _ in samples[count]}
    assert not any("h1" in r or "no/such" in r for r in routes), routes
    # the +Inf bucket holds every request, and the buckets are cumulative
    buckets = [
        (lab["le"], v)
        for lab, v in samples["octobandit_http_request_duration_seconds_bucket"]
        if lab["route"] == DECISIONS
    ]
    assert dict(buckets)["+Inf"] == 11
    values = [v for _, v in buckets]
    assert values == sorted(values)


def test_group_commits_and_ticks(client: TestClient, engine: Engine) -> None:
    make(client, "g1")
    for _ in range(6):
        client.post("/v1/experiments/g1/decisions")
    samples = scrape(client.get("/metrics").text)
    # TestClient sends one request at a time: every group holds one request
    assert value(samples, "octobandit_group_commit_requests_count") == 6
    assert value(samples, "octobandit_group_commit_requests_sum") == 6
    assert value(samples, "octobandit_group_commit_requests_bucket", le="1.0") == 6
    assert value(samples, "octobandit_group_commit_duration_seconds_count") == 6
    assert value(samples, "octobandit_snapshot_ticks_total") == 0
    engine.tick()
    engine.tick()
    samples = scrape(client.get("/metrics").text)
    assert value(samples, "octobandit_snapshot_ticks_total") == 2
    assert value(samples, "octobandit_snapshots_total") is not None
    wal = value(samples, "octobandit_sqlite_wal_bytes")  # an SQLite file store
    assert wal is not None and wal >= 0


def test_a_deleted_experiment_has_no_series(client: TestClient) -> None:
    make(client, "gone")
    make(client, "kept")
    client.post("/v1/experiments/gone/decisions")
    client.post("/v1/experiments/kept/decisions")
    before = scrape(client.get("/metrics").text)
    assert sum(per_arm(before, "octobandit_decisions_total", "gone").values()) == 1
    assert client.delete("/v1/experiments/gone").status_code == 204
    assert client.delete("/v1/experiments/kept/arms/arm-2").status_code == 204
    after = scrape(client.get("/metrics").text)
    for name in ("octobandit_decisions_total", "octobandit_rewards_total"):
        assert per_arm(after, name, "gone") == {}
        assert set(per_arm(after, name, "kept")) == {"arm-0", "arm-1"}


def test_storage_errors_are_counted_by_kind(
    client: TestClient, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    make(client, "s1")

    def full(*args: Any, **kwargs: Any) -> Any:
        raise StorageFull("no space left on device (test)")

    with monkeypatch.context() as patch:
        patch.setattr(engine.storage, "batch", full)
        for _ in range(3):
            assert client.post("/v1/experiments/s1/decisions").status_code == 503
    samples = scrape(client.get("/metrics").text)
    assert value(samples, "octobandit_storage_errors_total", kind="storage_full") == 3
    # the refused decisions were not counted
    assert sum(per_arm(samples, "octobandit_decisions_total", "s1").values()) == 0


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "OPTIONS", "FOO"])
def test_other_methods_get_405_json(client: TestClient, method: str) -> None:
    r = client.request(method, "/metrics", headers={"content-type": "application/json"})
    assert r.status_code == 405
    assert r.json()["error"]["code"] == "method_not_allowed"
    assert r.headers["allow"] == "GET, HEAD"


@pytest.mark.parametrize(
    "query", ["", "?name[]=octobandit_decisions_total", "?%ff%00=1", "?" + "x" * 4000, "?a=b&a=c"]
)
def test_query_strings_are_ignored(client: TestClient, query: str) -> None:
    r = client.get("/metrics" + query)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "octobandit_engine_up" in scrape(r.text)


def test_head_and_accept_headers(client: TestClient) -> None:
    head = client.head("/metrics")
    assert head.status_code == 200 and head.content == b""
    for accept in ("*/*", "text/html", "application/json", "garbage;;;=", ""):
        r = client.get("/metrics", headers={"accept": accept})
        assert r.status_code == 200, accept
        scrape(r.text)
    r = client.get("/metrics", headers={"accept": "application/openmetrics-text; version=1.0.0"})
    assert r.headers["content-type"].startswith("application/openmetrics-text")
    assert r.text.endswith("# EOF\n")


def test_metrics_off(tmp_path: Path) -> None:
    app = create_app(settings=Settings(store=str(tmp_path / "off.db"), metrics=False))
    with TestClient(app, base_url="http://localhost") as c:
        assert c.get("/metrics").status_code == 404
        assert c.get("/healthz").status_code == 200


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().metrics is True and Settings().public_metrics is False
    monkeypatch.setenv("OCTOBANDIT_METRICS", "0")
    monkeypatch.setenv("OCTOBANDIT_PUBLIC_METRICS", "true")
    s = Settings.from_env()
    assert s.metrics is False and s.public_metrics is True
    monkeypatch.setenv("OCTOBANDIT_METRICS", "maybe")
    with pytest.raises(ValueError, match="on/off"):
        Settings.from_env()


# ---------------------------------------------------------------- the real service


@pytest.fixture
def short_tmp() -> Iterator[str]:
    """A short TMPDIR for the service: its engine directory, which holds the multiprocess
    directory, is made there."""
    path = tempfile.mkdtemp(prefix="obm", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def files(metrics_dir: str) -> list[str]:
    """The workers' histogram files (one per worker that recorded a request)."""
    return glob.glob(os.path.join(metrics_dir, "histogram_*.db"))


def test_two_workers_give_service_wide_totals(
    server_factory: Any, tmp_path: Path, short_tmp: str
) -> None:
    server = server_factory(tmp_path / "w.db", workers=2, env={"TMPDIR": short_tmp}).start()
    (metrics_dir,) = glob.glob(os.path.join(short_tmp, "octobandit-engine-*", "metrics"))
    with httpx.Client(base_url=server.url) as c:
        make(c, "w1", arms=2)
    sent: collections.Counter[str] = collections.Counter()
    # a new connection per request, until both workers have served some
    for _ in range(400):
        with httpx.Client(base_url=server.url) as c:
            d = c.post("/v1/experiments/w1/decisions").json()
            sent[d["arm_id"]] += 1
            c.post(
                "/v1/experiments/w1/rewards", json={"decision_id": d["decision_id"], "reward": 1}
            )
        if len(files(metrics_dir)) >= 2 and sum(sent.values()) >= 20:
            break
    n = sum(sent.values())
    assert len(files(metrics_dir)) == 2, "one worker served every request"
    time.sleep(RequestMetrics.FLUSH_SECONDS + 0.5)  # the other worker's last requests flushed
    for _ in range(6):  # whichever worker answers the scrape
        with httpx.Client(base_url=server.url) as c:
            samples = scrape(c.get("/metrics").text)
        assert per_arm(samples, "octobandit_decisions_total", "w1") == dict(sent)
        assert per_arm(samples, "octobandit_rewards_total", "w1") == dict(sent)
        count = "octobandit_http_request_duration_seconds_count"
        assert value(samples, count, route=DECISIONS, method="POST") == n
        assert value(samples, count, route=REWARDS, method="POST") == n
        assert value(samples, "octobandit_group_commit_requests_sum") == 2 * n
    deadline = time.monotonic() + 10  # the engine process ticks every second
    while time.monotonic() < deadline:
        with httpx.Client(base_url=server.url) as c:
            samples = scrape(c.get("/metrics").text)
        if (value(samples, "octobandit_snapshot_ticks_total") or 0) >= 1:
            break
        time.sleep(0.2)
    assert (value(samples, "octobandit_snapshot_ticks_total") or 0) >= 1
    server.stop()
    assert not os.path.exists(metrics_dir), "serve removes its multiprocess directory"


def test_serve_no_metrics(server_factory: Any, tmp_path: Path, short_tmp: str) -> None:
    env = {"TMPDIR": short_tmp, "OCTOBANDIT_METRICS": "0"}
    server = server_factory(tmp_path / "n.db", env=env).start()
    assert httpx.get(server.url + "/metrics").status_code == 404
    assert glob.glob(os.path.join(short_tmp, "octobandit-engine-*", "metrics")) == []


def test_a_scrape_while_the_engine_does_not_answer(tmp_path: Path) -> None:
    """The engine process restarting: engine_up 0, the request metrics still served."""
    from octobandit.engine.remote import RemoteEngine

    app = create_app(None, Settings(engine_socket=str(tmp_path / "nobody.sock")))
    assert isinstance(app.backend, RemoteEngine)
    with TestClient(app, base_url="http://localhost") as c:
        assert c.post("/v1/experiments/x/decisions").status_code == 503
        r = c.get("/metrics")
    assert r.status_code == 200
    samples = scrape(r.text)
    assert value(samples, "octobandit_engine_up") == 0
    assert "octobandit_decisions_total" not in samples
    count = "octobandit_http_requests_total"
    assert value(samples, count, route=DECISIONS, method="POST", status="503") == 1


def test_the_tallies_flush_as_prometheus_client_would_observe() -> None:
    """The layer's bucket tallies, flushed, equal a prometheus-client histogram fed the
    same values one by one (bounds included: a value equal to a bound is in its bucket)."""
    from prometheus_client import CollectorRegistry, Histogram

    from octobandit.api.metrics import LATENCY_BUCKETS

    registry, reference_registry = CollectorRegistry(), CollectorRegistry()
    layer = RequestMetrics(None, registry)  # type: ignore[arg-type]  # never called here
    reference = Histogram(
        "octobandit_http_request_duration_seconds", "", ["route", "method"],
        buckets=LATENCY_BUCKETS, registry=reference_registry,
    )  # fmt: skip
    values = [0.0, 1e-4, *LATENCY_BUCKETS, 0.003, 0.003, 7.5, 10.0, 11.0, 120.0]
    for i, seconds in enumerate(values):
        method = "POST" if i % 3 else "BREW"  # unknown methods are "other"
        layer.observe("/r", method, 200, seconds)
        reference.labels("/r", "POST" if i % 3 else "other").observe(seconds)
    layer.observe("/r", "GET", 404, 0.5)
    reference.labels("/r", "GET").observe(0.5)
    layer.flush()
    layer.flush()  # nothing twice

    def histogram(reg: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for f in reg.collect()
            if f.type == "histogram"
            for s in f.samples
            if not s.name.endswith("_created")
        }

    ours, theirs = histogram(registry), histogram(reference_registry)
    assert ours.keys() == theirs.keys()
    for key, expected in theirs.items():
        assert ours[key] == pytest.approx(expected, rel=1e-12), key
    counts = {
        tuple(sorted(s.labels.items())): s.value
        for f in registry.collect()
        if f.name == "octobandit_http_requests"
        for s in f.samples
        if s.name.endswith("_total")
    }
    n_post = sum(1 for i in range(len(values)) if i % 3)
    assert counts[(("method", "POST"), ("route", "/r"), ("status", "200"))] == n_post
    assert counts[(("method", "other"), ("route", "/r"), ("status", "200"))] == len(values) - n_post
    assert counts[(("method", "GET"), ("route", "/r"), ("status", "404"))] == 1


def test_the_per_arm_series_are_capped_by_whole_experiments() -> None:
    from octobandit.api.metrics import engine_families

    report = {
        "experiments": [
            ["a", [["x", 1, 0], ["y", 2, 1]]],
            ["b", [["x", 3, 0], ["y", 4, 0], ["z", 5, 0]]],
            ["c", [["x", 6, 2]]],
        ],
        "commit_size": {"bounds": [1.0], "buckets": [0, 0], "count": 0, "sum": 0.0},
        "commit_seconds": {"bounds": [1.0], "buckets": [0, 0], "count": 0, "sum": 0.0},
        "storage_errors": {},
        "ticks": 0,
        "snapshots": 0,
        "wal_bytes": None,
    }
    families = {f.name: f for f in engine_families(report, max_arm_series=4)}
    samples = families["octobandit_decisions"].samples
    shown = {(s.labels["experiment"], s.labels["arm"]) for s in samples}
    # b (3 arms) would pass the cap of 4 after a (2 arms): left out whole; c still fits
    assert shown == {("a", "x"), ("a", "y"), ("c", "x")}
    assert families["octobandit_metrics_arm_series_dropped"].samples[0].value == 3
    assert families["octobandit_experiments"].samples[0].value == 3
    assert "octobandit_sqlite_wal_bytes" not in families  # not SQLite: no series at all
