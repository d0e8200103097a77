"""Over HTTP: options merge on PATCH, reward/count/total bounds and admin statistics are
validated (4xx JSON, nothing written), and the largest accepted values keep every route 200
with finite numbers."""

from __future__ import annotations

import math
from typing import Any

import pytest
from fastapi.testclient import TestClient

from octobandit.engine import Engine
from octobandit.engine.bounds import MAX_ABS_REWARD, MAX_COUNT, MAX_TOTAL

URL = "/v1/experiments/exp"


def error(r: Any, status: int, code: str | None = None) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) - {"field"} == {"code", "message"}
    if "field" in body["error"]:  # an invalid value: the message starts with its name
        assert body["error"]["message"].startswith(body["error"]["field"] + ": ")
    if code is not None:
        assert body["error"]["code"] == code
    return str(body["error"]["message"])


def create(client: TestClient, **body: Any) -> None:
    body = {"id": "exp", "arms": [{"id": "a"}, {"id": "b"}], **body}
    r = client.post("/v1/experiments", json=body)
    assert r.status_code == 201, r.text


@pytest.mark.parametrize(
    "patch", [{"snapshot_interval": 30}, {"stopping": {"prob_best": 0.9, "auto_conclude": True}}]
)
def test_patch_options_of_a_contextual_experiment_keeps_its_features(
    client: TestClient, patch: dict[str, Any]
) -> None:
    create(
        client,
        policy={"type": "linucb"},
        reward={"type": "continuous"},
        context={"features": ["age", "mobile"]},
    )
    r = client.patch(URL, json=patch)
    assert r.status_code == 200, r.text
    assert r.json()["context"] == {"features": ["age", "mobile"]}
    assert client.get(URL).json()["context"] == {"features": ["age", "mobile"]}
    d = client.post(URL + "/decisions", json={"context": {"age": 30, "mobile": 1}})
    assert d.status_code == 200, d.text
    r = client.post(URL + "/rewards", json={"decision_id": d.json()["decision_id"], "reward": 3})
    assert r.status_code == 200, r.text
    assert client.post(URL + "/decisions", json={"context": [20, 0]}).status_code == 200


def events(engine: Engine) -> int:
    return len(list(engine.storage.events()))


@pytest.mark.parametrize(
    "body",
    [
        {"arm_id": "a", "reward": 1e200},
        {"arm_id": "a", "reward": -1e300, "count": 10_000_000_000},
        {"arm_id": "a", "reward": 1.0, "count": 2**64 - 1},
        {"arm_id": "a", "reward": 1.0, "count": MAX_COUNT + 1},
        {"rewards": [{"arm_id": "b", "reward": 1.0}, {"arm_id": "a", "reward": 2e12}]},
    ],
)
def test_rewards_out_of_bounds_are_422_and_write_nothing(
    client: TestClient, engine: Engine, body: dict[str, Any]
) -> None:
    create(client, reward={"type": "continuous"})
    before = events(engine)
    r = client.post(URL + "/rewards", json=body)
    assert r.status_code in (400, 422), r.text
    error(r, r.status_code)
    assert events(engine) == before
    assert client.get(URL + "/stats").json()["total_reward"] == 0


def test_largest_accepted_rewards_keep_every_route_finite(
    client: TestClient, engine: Engine
) -> None:
    create(client, reward={"type": "continuous"}, snapshot_interval=1)
    big = [
        {"arm_id": "a", "reward": MAX_ABS_REWARD, "count": MAX_COUNT},
        {"arm_id": "a", "reward": -MAX_ABS_REWARD, "count": MAX_COUNT},
        {"arm_id": "b", "reward": MAX_ABS_REWARD, "count": MAX_COUNT},
        {"arm_id": "b", "reward": MAX_ABS_REWARD * 0.999, "count": 1},
    ]
    assert client.post(URL + "/rewards", json={"rewards": big}).status_code == 200
    d = client.post(URL + "/decisions", json={"n": 20})
    assert d.status_code == 200, d.text
    ids = [x["decision_id"] for x in d.json()["decisions"]]
    rewards = [{"decision_id": i, "reward": -MAX_ABS_REWARD} for i in ids]
    assert client.post(URL + "/rewards", json={"rewards": rewards}).status_code == 200
    # an admin total at the bound, next to them
    r = client.put(
        URL + "/arms/b/stats",
        json={"decisions": MAX_TOTAL, "rewards": MAX_TOTAL, "reward_sum": -1e27},
    )
    assert r.status_code == 200, r.text
    engine.tick(now=engine._clock() + 5)
    for path in ("/stats", "/conclusion", "/history", ""):
        r = client.get(URL + path)
        assert r.status_code == 200, (path, r.text)
        assert_finite(r.json(), path)
    assert client.post(URL + "/decisions").status_code == 200


def assert_finite(value: Any, where: str) -> None:
    """No NaN or infinity anywhere in a JSON document (JSON has none: they come as strings)."""
    if isinstance(value, dict):
        for k, v in value.items():
            assert_finite(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            assert_finite(v, f"{where}[{i}]")
    elif isinstance(value, float):
        assert math.isfinite(value), where
    else:
        assert not (isinstance(value, str) and value.lower() in {"nan", "inf", "-inf"}), where


def test_a_total_beyond_the_exact_range_is_409(client: TestClient, engine: Engine) -> None:
    create(client, reward={"type": "continuous"})
    r = client.put(URL + "/arms/a/stats", json={"rewards": MAX_TOTAL - 10, "reward_sum": 0})
    assert r.status_code == 200
    before = events(engine)
    r = client.post(URL + "/rewards", json={"arm_id": "a", "reward": 1.0, "count": 11})
    assert "exceed" in error(r, 409, "total_exceeded")
    assert events(engine) == before
    r = client.post(URL + "/rewards", json={"arm_id": "a", "reward": 1.0, "count": 10})
    assert r.status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"decisions": 2**63},
        {"decisions": 2**63 - 1},
        {"rewards": 1e-320},
        {"rewards": 5.0, "reward_sum": 1e300},
    ],
)
def test_admin_stats_are_validated_and_a_refusal_writes_nothing(
    client: TestClient, engine: Engine, body: dict[str, Any]
) -> None:
    create(client, reward={"type": "continuous"})
    r = client.put(URL + "/arms/a/stats", json=body)
    error(r, 422)
    assert not [e for e in engine.storage.events() if e.kind == "set_stats"]
    r = client.get(URL + "/stats")
    assert r.status_code == 200 and r.json()["arms"][0]["rewards"] == 0


def test_arm_prior_out_of_bounds_is_422(client: TestClient) -> None:
    r = client.post(
        "/v1/experiments",
        json={
            "id": "exp",
            "reward": {"type": "continuous"},
            "arms": [{"id": "a", "prior": {"rewards": 1e-320, "reward_sum": 0}}],
        },
    )
    assert "prior.rewards" in error(r, 422)
    assert client.get(URL).status_code == 404


@pytest.mark.parametrize(
    "policy",
    [
        {"type": "thompson", "a0": 0.3},  # /conclusion was a 500 (no posterior mean)
        {"type": "thompson", "kappa0": 1e300},  # P(best) was NaN
        {"type": "thompson", "b0": 1e300, "kappa0": 1e-300},
        {"type": "discounted_thompson", "mu0": 1e300},
    ],
)
def test_prior_parameters_outside_their_range_are_422(
    client: TestClient, policy: dict[str, Any]
) -> None:
    r = client.post(
        "/v1/experiments",
        json={"id": "exp", "reward": {"type": "continuous"}, "policy": policy, "arms": []},
    )
    assert "policy." in error(r, 422)
    create(client, reward={"type": "continuous"}, policy={"type": "thompson"})
    r = client.patch(URL, json={"policy": {k: v for k, v in policy.items() if k != "type"}})
    error(r, 422)
    assert client.get(URL + "/conclusion").status_code == 200
