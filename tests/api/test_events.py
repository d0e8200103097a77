"""``GET /v1/experiments/{id}/events`` on a real server: pages, filters, limits, errors
and the JSON Lines stream."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

DECISIONS = 60  # 30 rewarded (0/1 alternately): 90 events


@pytest.fixture
def http(module_server: Any) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=module_server.url, timeout=30) as c:
        yield c


@pytest.fixture
def logged(http: httpx.Client) -> str:
    """An experiment with DECISIONS decisions, every other one rewarded."""
    exp = f"ev-{uuid.uuid4().hex[:10]}"
    body = {"id": exp, "policy": {"type": "epsilon_greedy"}, "arms": [{"id": "a"}, {"id": "b"}]}
    assert http.post("/v1/experiments", json=body).status_code == 201
    for i in range(DECISIONS):
        d = http.post(f"/v1/experiments/{exp}/decisions", json={"context": {"i": i}}).json()
        if i % 2 == 0:
            r = http.post(
                f"/v1/experiments/{exp}/rewards",
                json={"decision_id": d["decision_id"], "reward": (i // 2) % 2},
            )
            assert r.status_code == 200, r.text
    return exp


def _all(http: httpx.Client, exp: str, **params: Any) -> tuple[list[dict[str, Any]], int]:
    events: list[dict[str, Any]] = []
    after, pages = 0, 0
    while True:
        r = http.get(f"/v1/experiments/{exp}/events", params={**params, "after": after})
        assert r.status_code == 200, r.text
        body = r.json()
        pages += 1
        events.extend(body["events"])
        if body["next"] is None:
            return events, pages
        assert body["next"] == body["events"][-1]["seq"]
        after = body["next"]


def test_pages_cover_the_log_once_in_seq_order(http: httpx.Client, logged: str) -> None:
    whole = http.get(f"/v1/experiments/{logged}/events").json()
    assert whole["next"] is None and len(whole["events"]) == DECISIONS * 3 // 2
    paged, pages = _all(http, logged, limit=7)
    assert paged == whole["events"] and pages == -(-len(paged) // 7)
    seqs = [e["seq"] for e in paged]
    assert seqs == sorted(set(seqs))
    first = paged[0]
    assert set(first) == {
        "seq", "ts", "at", "experiment_id", "kind", "decision_id", "arm_id", "propensity",
        "unit_id", "context", "reward", "count", "data",
    }  # fmt: skip
    assert first["kind"] == "decision" and first["context"] == {"i": 0}
    assert 0 < first["propensity"] <= 1 and first["at"].endswith("Z")
    rewards = [e for e in paged if e["kind"] == "reward"]
    assert len(rewards) == DECISIONS // 2 and {e["reward"] for e in rewards} == {0.0, 1.0}
    decided = {e["decision_id"]: e["seq"] for e in paged if e["kind"] == "decision"}
    assert all(decided[e["decision_id"]] < e["seq"] for e in rewards)
    # a page exactly as long as what is left has a cursor; the next page is empty
    exact = http.get(f"/v1/experiments/{logged}/events", params={"limit": len(paged)}).json()
    assert exact["next"] == paged[-1]["seq"]
    assert http.get(f"/v1/experiments/{logged}/events", params={"after": exact["next"]}).json() == {
        "events": [],
        "next": None,
    }


def test_filters_by_kind_and_time(http: httpx.Client, logged: str) -> None:
    every, _ = _all(http, logged)
    rewards, _ = _all(http, logged, kind="reward", limit=4)
    assert rewards == [e for e in every if e["kind"] == "reward"]
    both, _ = _all(http, logged, kind=["reward", "decision"])
    assert both == every
    assert _all(http, logged, kind="late")[0] == []
    middle = every[len(every) // 3]
    since_epoch, _ = _all(http, logged, since=middle["ts"])
    assert since_epoch == [e for e in every if e["ts"] >= middle["ts"]]
    assert _all(http, logged, until=middle["ts"])[0] == [e for e in every if e["ts"] < middle["ts"]]
    assert _all(http, logged, since="2000-01-01T00:00:00Z")[0] == every
    assert _all(http, logged, since="2000-01-01")[0] == every
    assert _all(http, logged, until="2000-01-01T00:00:00+02:00")[0] == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 10_001}, "limit"),
        ({"limit": "x"}, "limit"),
        ({"after": -1}, "after"),
        ({"after": 2**63}, "after"),
        ({"kind": "nope"}, "kind"),
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-13-01T00:00:00Z"}, "until"),
        ({"since": "nan"}, "since"),
        ({"format": "xml"}, "format"),
    ],
)
def test_bad_parameters_are_422_json(
    http: httpx.Client, logged: str, params: dict[str, Any], field: str
) -> None:
    r = http.get(f"/v1/experiments/{logged}/events", params=params)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "invalid" and field in r.json()["error"]["message"]


def test_unknown_experiment_is_404(http: httpx.Client) -> None:
    for params in ({}, {"format": "jsonl"}):
        r = http.get("/v1/experiments/no-such-thing/events", params=params)
        assert r.status_code == 404 and r.json()["error"]["code"] == "experiment_not_found"


def test_jsonl_streams_the_whole_filtered_log_page_by_page(http: httpx.Client, logged: str) -> None:
    every, _ = _all(http, logged)
    with http.stream(
        "GET", f"/v1/experiments/{logged}/events", params={"format": "jsonl", "limit": 8}
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("application/x-ndjson")
        lines = [json.loads(line) for line in r.iter_lines() if line]
    assert lines == every  # 90 events through pages of 8
    r = http.get(
        f"/v1/experiments/{logged}/events",
        params={"format": "jsonl", "limit": 3, "kind": "reward", "after": every[10]["seq"]},
    )
    got = [json.loads(line) for line in r.text.splitlines()]
    assert got == [e for e in every[11:] if e["kind"] == "reward"]


def test_the_route_is_in_the_openapi_document(http: httpx.Client) -> None:
    doc = http.get("/openapi.json").json()
    op = doc["paths"]["/v1/experiments/{experiment_id}/events"]["get"]
    params = {p["name"]: p for p in op["parameters"]}
    assert set(params) == {"experiment_id", "after", "limit", "kind", "since", "until", "format"}
    assert params["limit"]["schema"]["maximum"] == 10_000
    assert set(op["responses"]["200"]["content"]) == {"application/json", "application/x-ndjson"}
    assert {"404", "422"} <= set(op["responses"])
