"""``GET /v1/experiments/{id}/evaluation`` on a real server: the estimates, the bound on
the decisions read, and a clear 4xx for every bad request."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

MU = {"a": 0.2, "b": 0.8}
KEYS = {"ipw", "snipw", "dm", "dr", "sndr", "switch-dr", "replay"}


@pytest.fixture
def http(module_server: Any) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=module_server.url, timeout=60) as c:
        yield c


@pytest.fixture
def logged(http: httpx.Client) -> str:
    """300 uniformly random decisions (ε-greedy with ε = 1), all but the last 5 rewarded."""
    exp = f"ev-{uuid.uuid4().hex[:10]}"
    body = {
        "id": exp,
        "policy": {"type": "epsilon_greedy", "epsilon": 1.0},
        "arms": [{"id": a} for a in MU],
    }
    assert http.post("/v1/experiments", json=body).status_code == 201
    rng = np.random.default_rng(2)
    made = http.post(f"/v1/experiments/{exp}/decisions", json={"n": 300}).json()["decisions"]
    rewards = [
        {"decision_id": d["decision_id"], "reward": float(rng.random() < MU[d["arm_id"]])}
        for d in made[:295]
    ]
    r = http.post(f"/v1/experiments/{exp}/rewards", json={"rewards": rewards})
    assert r.status_code == 200, r.text
    return exp


def test_evaluation_estimates_every_candidate(http: httpx.Client, logged: str) -> None:
    policies = ["thompson", json.dumps({"action_dist": [0.0, 1.0], "name": "b"})]
    r = http.get(
        f"/v1/experiments/{logged}/evaluation", params={"policy": policies, "bootstrap": 200}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["logged"]["rounds"] == 295 and body["logged"]["dropped"] == 5
    assert body["logged"]["min_pscore"] == pytest.approx(0.5)
    assert set(body["candidates"]) == {"thompson", "b"}
    for c in body["candidates"].values():
        assert set(c["estimates"]) == KEYS
        assert c["replay"]["curve"]["t"][-1] == c["replay"]["accepted"]
    # always arm b: its value is 0.8; under the uniform logger IPS and replay are unbiased
    b = body["candidates"]["b"]["estimates"]
    for key in ("ipw", "replay"):
        lo, hi = b[key]["ci95"]
        assert lo <= 0.8 <= hi, key
    # limit: only the most recent decisions are read
    r = http.get(
        f"/v1/experiments/{logged}/evaluation",
        params={"policy": "ucb1", "limit": 50, "bootstrap": 10},
    )
    assert r.status_code == 200, r.text
    assert r.json()["logged"]["rounds"] == 45 and r.json()["logged"]["older"] == 250


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "policy"),
        ({"policy": "nope"}, "policy.type"),
        ({"policy": "{not json"}, "policy"),
        ({"policy": "[" * 5000}, "policy"),
        ({"policy": '{"a":' * 1900}, "policy"),  # nested past json's recursion limit
        ({"policy": "x" * 10_001}, "policy"),
        ({"policy": ["thompson"] * 9}, "policy"),
        ({"policy": '{"action_dist": [1, 0, 0]}'}, "policy"),
        ({"policy": "thompson", "limit": 0}, "limit"),
        ({"policy": "thompson", "limit": 100_001}, "limit"),
        ({"policy": "thompson", "bootstrap": 1}, "bootstrap"),
    ],
)
def test_bad_requests_are_422(
    http: httpx.Client, logged: str, params: dict[str, Any], field: str
) -> None:
    r = http.get(f"/v1/experiments/{logged}/evaluation", params=params)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == field, r.text


def test_missing_experiment_and_empty_log(http: httpx.Client) -> None:
    r = http.get("/v1/experiments/no-such/evaluation", params={"policy": "thompson"})
    assert r.status_code == 404
    exp = f"ev-{uuid.uuid4().hex[:10]}"
    body = {"id": exp, "arms": [{"id": "a"}, {"id": "b"}]}
    assert http.post("/v1/experiments", json=body).status_code == 201
    r = http.get(f"/v1/experiments/{exp}/evaluation", params={"policy": "thompson"})
    assert r.status_code == 409 and "no decision with an outcome" in r.text
    assert r.json()["error"]["code"] == "not_evaluable"


def test_a_contextual_candidate_on_a_log_without_contexts_is_409(
    http: httpx.Client, logged: str
) -> None:
    r = http.get(f"/v1/experiments/{logged}/evaluation", params={"policy": "linucb"})
    assert r.status_code == 409 and "contextual" in r.text


def test_the_route_is_in_the_openapi_document(http: httpx.Client) -> None:
    doc = http.get("/openapi.json").json()
    op = doc["paths"]["/v1/experiments/{experiment_id}/evaluation"]["get"]
    assert op["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Evaluation"
    }
    assert {"404", "409", "422"} <= set(op["responses"])
    assert "Evaluation" in doc["components"]["schemas"]
