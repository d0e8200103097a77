"""Inputs an attack on the merged service found answering 500 (or wrongly accepted):
each now gets a clear 4xx JSON error and writes nothing, or is handled."""

from __future__ import annotations

import math
from typing import Any

import pytest
from fastapi.testclient import TestClient

URL = "/v1/experiments"


def error(r: Any, status: int, code: str | None = None) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"}
    if code is not None:
        assert body["error"]["code"] == code
    return str(body["error"]["message"])


def finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(finite(v) for v in value.values())
    if isinstance(value, list):
        return all(finite(v) for v in value)
    return True


def every_read_is_fine(client: TestClient, exp: str) -> None:
    for route in ("stats", "conclusion", "history"):
        r = client.get(f"{URL}/{exp}/{route}")
        assert r.status_code == 200, (route, r.text)
        assert finite(r.json()), (route, r.json())


@pytest.mark.parametrize("policy", ["linucb", "linear_thompson"])
@pytest.mark.parametrize(
    "value", [1e10, 1e154, -1e300, 10**400], ids=["1e10", "1e154", "-1e300", "10^400"]
)
def test_context_values_are_bounded(client: TestClient, policy: str, value: Any) -> None:
    spec = {"id": "ctx", "policy": {"type": policy}, "context": {"features": ["x", "y"]}}
    spec["arms"] = [{"id": "a"}, {"id": "b"}]
    assert client.post(URL, json=spec).status_code == 201
    r = client.post(f"{URL}/ctx/decisions", json={"context": [value, value]})
    message = error(r, 422)
    assert "scale the feature" in message or "out of range" in message
    assert client.get(f"{URL}/ctx/stats").json()["total_decisions"] == 0
    # the largest accepted features keep the experiment usable
    for x in (1e4, -1e4, 1e4):
        d = client.post(f"{URL}/ctx/decisions", json={"context": [x, -x]}).json()
        assert 0 < d["propensity"] <= 1
        r = client.post(f"{URL}/ctx/rewards", json={"decision_id": d["decision_id"], "reward": 1})
        assert r.status_code == 200, r.text
    every_read_is_fine(client, "ctx")


@pytest.mark.parametrize(
    "params",
    [
        {"type": "linucb", "ridge": 1e-15},
        {"type": "linucb", "ridge": 1e308},
        {"type": "linucb", "alpha": 1e300},
        {"type": "linear_thompson", "v": 5e-324},
        {"type": "linear_thompson", "v": 1e308},
        {"type": "linear_thompson", "ridge": 1e-308},
        {"type": "sliding_window_ucb", "window": 1e15},
        {"type": "sliding_window_ucb", "window": 2**63},
    ],
)
def test_policy_parameters_out_of_range_are_refused(
    client: TestClient, params: dict[str, Any]
) -> None:
    spec: dict[str, Any] = {"id": "p", "policy": params, "arms": [{"id": "a"}, {"id": "b"}]}
    if params["type"].startswith("lin"):
        spec["context"] = {"features": ["x"]}
    name = next(k for k in params if k != "type")
    assert f"policy.{name}" in error(client.post(URL, json=spec), 422, "invalid")
    assert client.get(f"{URL}/p").status_code == 404


@pytest.mark.parametrize("policy", ["vdbe", "linucb", "ucb1"])
def test_exploration_parameters_are_not_taken_for_a_beta_prior(
    client: TestClient, policy: str
) -> None:
    """vdbe's and linucb's ``alpha`` is not a Beta prior: the conclusion uses the defaults."""
    spec: dict[str, Any] = {"id": "v", "policy": {"type": policy}, "arms": [{"id": "a"}]}
    spec["arms"].append({"id": "b"})
    if policy == "linucb":
        spec["policy"]["alpha"] = 5.0
        spec["context"] = {"features": ["x"]}
    assert client.post(URL, json=spec).status_code == 201
    every_read_is_fine(client, "v")
    means = [arm["mean"] for arm in client.get(f"{URL}/v/conclusion").json()["arms"]]
    assert means == [0.5, 0.5]  # Beta(1, 1) with no data, whatever the policy's alpha
    stats = {"decisions": 5, "rewards": 4, "reward_sum": 3, "reward_sq_sum": 3}
    r = client.put(f"{URL}/v/arms/a/stats", json=stats)
    assert r.status_code == 200, r.text
    every_read_is_fine(client, "v")
    assert client.get(f"{URL}/v/history").json()["reason"] == ["created"]


def test_lone_surrogates_in_names_are_a_422(client: TestClient) -> None:
    r = client.post(
        URL,
        content=b'{"id": "s", "name": "\\ud800", "arms": [{"id": "a"}]}',
        headers={"content-type": "application/json"},
    )
    assert "name" in error(r, 422)
    assert client.get(f"{URL}/s").status_code == 404
    assert client.post(URL, json={"id": "s", "arms": [{"id": "a"}]}).status_code == 201
    r = client.patch(
        f"{URL}/s",
        content=b'{"name": "x\\udfff"}',
        headers={"content-type": "application/json"},
    )
    error(r, 422)
    assert client.get(f"{URL}/s").json()["name"] == "s"


@pytest.mark.parametrize(
    "patch",
    [
        {"stopping": {"min_rewards_per_arm": 2**1100}},
        {"stopping": {"min_rewards_per_arm": 2**64}},
        {"snapshot_interval": 1e308},
    ],
)
def test_stopping_and_snapshot_bounds(client: TestClient, patch: dict[str, Any]) -> None:
    assert client.post(URL, json={"id": "o", "arms": [{"id": "a"}]}).status_code == 201
    before = client.get(f"{URL}/o").json()
    error(client.patch(f"{URL}/o", json=patch), 422, "invalid")
    assert client.get(f"{URL}/o").json() == before


@pytest.mark.parametrize("word", ["yes", "1", "on", "TRUE", "t", ""])
def test_delete_all_needs_exactly_confirm_true(client: TestClient, word: str) -> None:
    assert client.post(URL, json={"id": "keep", "arms": [{"id": "a"}]}).status_code == 201
    error(client.delete(f"{URL}?confirm={word}"), 400, "confirmation_required")
    assert client.get(f"{URL}/keep").status_code == 200
    assert client.delete(f"{URL}?confirm=true").json() == {"deleted": 1}


def test_model_fallback_of_the_gain_says_what_it_covers(client: TestClient) -> None:
    spec = {"id": "g", "policy": {"type": "epsilon_greedy"}, "arms": [{"id": "a"}, {"id": "b"}]}
    assert client.post(URL, json=spec).status_code == 201
    for _ in range(5):
        d = client.post(f"{URL}/g/decisions", json={}).json()
        client.post(f"{URL}/g/rewards", json={"decision_id": d["decision_id"], "reward": 1})
    assert client.get(f"{URL}/g/stats").json()["reward_gain_vs_equal_split"]["method"] == "ips"
    client.post(f"{URL}/g/rewards", json={"arm_id": "a", "reward": 1, "count": 7})
    gain = client.get(f"{URL}/g/stats").json()["reward_gain_vs_equal_split"]
    assert gain["method"] == "model"
    assert "no decision propensity" in gain["note"]
