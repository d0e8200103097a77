"""Amplification limits: arm payloads, decision contexts and the size of one decision answer."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from octobandit.engine.core import Limits

LIMITS = Limits()


def error(r: Any, status: int, code: str | None = None) -> str:
    assert r.status_code == status, r.text
    body = r.json()["error"]
    if code is not None:
        assert body["code"] == code
    return str(body["message"])


def payload_of(size: int) -> str:
    """A JSON string payload that is exactly ``size`` bytes as JSON (quotes included)."""
    return "x" * (size - 2)


def test_arm_payloads_are_bounded_at_create_add_and_patch(client: TestClient) -> None:
    limit = LIMITS.max_payload_bytes
    big, ok = payload_of(limit + 1), payload_of(limit)
    r = client.post("/v1/experiments", json={"id": "e", "arms": [{"id": "a", "payload": big}]})
    assert f"{limit}" in error(r, 422, "invalid") and "arms[0].payload" in r.text
    assert client.get("/v1/experiments").json()["experiments"] == []
    r = client.post("/v1/experiments", json={"id": "e", "arms": [{"id": "a", "payload": ok}]})
    assert r.status_code == 201, r.text
    error(client.post("/v1/experiments/e/arms", json={"id": "b", "payload": big}), 422)
    error(client.patch("/v1/experiments/e/arms/a", json={"payload": big}), 422)
    arms = client.get("/v1/experiments/e").json()["arms"]
    assert [a["id"] for a in arms] == ["a"] and arms[0]["payload"] == ok


def test_n_times_the_largest_payload_is_bounded(client: TestClient) -> None:
    size = LIMITS.max_payload_bytes
    r = client.post(
        "/v1/experiments",
        json={"id": "e", "arms": [{"id": "a", "payload": payload_of(size)}, {"id": "b"}]},
    )
    assert r.status_code == 201
    most = LIMITS.max_decision_bytes // size
    msg = error(client.post("/v1/experiments/e/decisions", json={"n": most + 1}), 422, "invalid")
    assert f"at most {most} decisions" in msg
    r = client.post("/v1/experiments/e/decisions", json={"n": most})
    assert r.status_code == 200 and len(r.content) < 2 * LIMITS.max_decision_bytes
    assert client.get("/v1/experiments/e/stats").json()["total_decisions"] == most
    # a small payload allows the full n
    client.patch("/v1/experiments/e/arms/a", json={"payload": {"color": "red"}})
    n = LIMITS.max_decisions_per_request
    assert client.post("/v1/experiments/e/decisions", json={"n": n}).status_code == 200


def test_contexts_are_bounded_alone_and_times_n(client: TestClient) -> None:
    client.post("/v1/experiments", json={"id": "e", "arms": [{"id": "a"}]})
    big = {"blob": "x" * LIMITS.max_context_bytes}
    msg = error(client.post("/v1/experiments/e/decisions", json={"context": big}), 422)
    assert "context" in msg and str(LIMITS.max_context_bytes) in msg
    medium = {"blob": "x" * 10_000}  # fine once, too much 1,000 times
    assert client.post("/v1/experiments/e/decisions", json={"context": medium}).status_code == 200
    r = client.post("/v1/experiments/e/decisions", json={"context": medium, "n": 1000})
    assert "n × context" in error(r, 422, "invalid")
    assert client.get("/v1/experiments/e/stats").json()["total_decisions"] == 1


def test_history_starts_at_creation(client: TestClient) -> None:
    client.post("/v1/experiments", json={"id": "e", "arms": [{"id": "a"}, {"id": "b"}]})
    h = client.get("/v1/experiments/e/history").json()
    assert h["reason"] == ["created"] and len(h["at"]) == 1
    assert h["arms"]["a"]["decisions"] == [0] and h["arms"]["b"]["rewards"] == [0]
