"""The service's side of local decisions: the policy snapshot and logged decisions
(against a real server)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest


@pytest.fixture
def http(module_server: Any) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=module_server.url, timeout=30) as c:
        yield c


def _create(http: httpx.Client, policy: dict[str, Any], **extra: Any) -> str:
    exp = f"t-{uuid.uuid4().hex[:10]}"
    body = {"id": exp, "policy": policy, "arms": [{"id": "a"}, {"id": "b", "payload": 7}], **extra}
    r = http.post("/v1/experiments", json=body)
    assert r.status_code == 201, r.text
    return exp


def _id() -> str:
    return f"{int(time.time() * 1000):012x}{uuid.uuid4().int >> 48:020x}"


def _stats(http: httpx.Client, exp: str) -> dict[str, Any]:
    body: dict[str, Any] = http.get(f"/v1/experiments/{exp}/stats").json()
    return {a["arm_id"]: a for a in body["arms"]}


def test_snapshot_of_thompson_has_priors_and_a_version(http: httpx.Client) -> None:
    exp = _create(http, {"type": "thompson", "alpha": 2.0, "beta": 3.0})
    snap = http.get(f"/v1/experiments/{exp}/policy-snapshot").json()
    assert snap["experiment_id"] == exp and snap["policy"]["type"] == "thompson"
    assert snap["reward_type"] == "binary"
    assert [a["id"] for a in snap["arms"]] == ["a", "b"] and snap["arms"][1]["payload"] == 7
    assert snap["stats"]["n"] == [0.0, 0.0] and snap["state"] is None
    v0 = snap["version"]
    http.post(f"/v1/experiments/{exp}/decisions").raise_for_status()
    v1 = http.get(f"/v1/experiments/{exp}/policy-snapshot").json()["version"]
    assert v0 != v1 and v0.split(".")[0] == v1.split(".")[0]


def test_snapshot_of_a_contextual_policy_carries_its_state(http: httpx.Client) -> None:
    exp = _create(http, {"type": "linucb"}, context={"features": ["x", "y"]})
    snap = http.get(f"/v1/experiments/{exp}/policy-snapshot").json()
    assert snap["context_features"] == ["x", "y"]
    assert snap["state"], snap
    for arr in snap["state"].values():
        size = 1
        for d in arr["shape"]:
            size *= d
        assert len(arr["data"]) == size and arr["shape"][1] == 2


def test_logged_decisions_count_like_the_service_own(http: httpx.Client) -> None:
    exp = _create(http, {"type": "epsilon_greedy", "epsilon": 0.5})
    version = http.get(f"/v1/experiments/{exp}/policy-snapshot").json()["version"]
    ids = [_id() for _ in range(5)]
    arms = ["a", "a", "b", "a", "b"]
    body = {
        "decisions": [
            {"decision_id": d, "arm_id": arm, "propensity": 0.75 if arm == "a" else 0.25,
             "version": version, "unit_id": f"u{n}"}
            for n, (d, arm) in enumerate(zip(ids, arms, strict=True))
        ]
    }  # fmt: skip
    r = http.post(f"/v1/experiments/{exp}/decisions/logged", json=body)
    assert r.status_code == 200, r.text
    assert r.json() == {"accepted": 5, "duplicates": 0}
    again = http.post(f"/v1/experiments/{exp}/decisions/logged", json=body)
    assert again.json() == {"accepted": 0, "duplicates": 5}  # idempotent
    stats = _stats(http, exp)
    assert (stats["a"]["decisions"], stats["b"]["decisions"]) == (3, 2)
    # rewards go by decision id as usual
    rewards = [{"decision_id": d, "reward": 1.0} for d in ids[:3]]
    r = http.post(f"/v1/experiments/{exp}/rewards", json={"rewards": rewards})
    assert r.json() == {"accepted": 3, "duplicates": 0}
    stats = _stats(http, exp)
    assert (stats["a"]["rewards"], stats["b"]["rewards"]) == (2, 1)
    # a unit decided locally keeps its arm when the service decides for it
    for n, arm in enumerate(arms):
        d = http.post(f"/v1/experiments/{exp}/decisions", json={"unit_id": f"u{n}"}).json()
        assert d["arm_id"] == arm and d["propensity"] == (0.75 if arm == "a" else 0.25)


def test_an_old_snapshot_is_accepted_and_its_version_kept(
    http: httpx.Client, module_server: Any
) -> None:
    exp = _create(http, {"type": "thompson"})
    old = http.get(f"/v1/experiments/{exp}/policy-snapshot").json()["version"]
    for _ in range(3):
        http.post(f"/v1/experiments/{exp}/decisions").raise_for_status()
    http.patch(f"/v1/experiments/{exp}", json={"name": "renamed"}).raise_for_status()
    new = http.get(f"/v1/experiments/{exp}/policy-snapshot").json()["version"]
    assert new != old
    d = _id()
    body = {"decisions": [{"decision_id": d, "arm_id": "b", "propensity": 0.5, "version": old}]}
    r = http.post(f"/v1/experiments/{exp}/decisions/logged", json=body)
    assert r.json() == {"accepted": 1, "duplicates": 0}
    import sqlite3

    with sqlite3.connect(module_server.db) as db:
        (data,) = db.execute("SELECT data FROM events WHERE decision_id = ?", (d,)).fetchone()
    assert f'"version":"{old}"' in data


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"version": "999.0"}, "decisions[1].version"),
        ("ahead", "decisions[1].version"),
        ({"arm_id": "zzz"}, "decisions[1].arm_id"),
        ({"propensity": 0}, "decisions[1].propensity"),
        ({"propensity": 1.5}, "decisions[1].propensity"),
        ({"decision_id": "not-an-id"}, "decisions[1].decision_id"),
    ],
)
def test_bad_logged_decisions_are_refused_and_nothing_written(
    http: httpx.Client, change: Any, field: str
) -> None:
    exp = _create(http, {"type": "ucb1"})
    version = http.get(f"/v1/experiments/{exp}/policy-snapshot").json()["version"]
    if change == "ahead":
        record, count = version.split(".")
        change = {"version": f"{record}.{int(count) + 10}"}
    good = {"decision_id": _id(), "arm_id": "a", "propensity": 1.0, "version": version}
    bad = {"decision_id": _id(), "arm_id": "a", "propensity": 1.0, "version": version, **change}
    r = http.post(f"/v1/experiments/{exp}/decisions/logged", json={"decisions": [good, bad]})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == field
    stats = _stats(http, exp)
    assert stats["a"]["decisions"] == 0 and stats["b"]["decisions"] == 0


def test_logged_decisions_of_an_unknown_experiment(http: httpx.Client) -> None:
    body = {"decisions": [{"decision_id": _id(), "arm_id": "a", "propensity": 1, "version": "1.0"}]}
    r = http.post("/v1/experiments/nope-nope/decisions/logged", json=body)
    assert r.status_code == 404
    assert http.get("/v1/experiments/nope-nope/policy-snapshot").status_code == 404


def test_snapshot_stats_include_the_arms_priors(http: httpx.Client) -> None:
    exp = f"t-{uuid.uuid4().hex[:10]}"
    arms = [{"id": "a", "prior": {"alpha": 4.0, "beta": 2.0}}, {"id": "b"}]
    body = {"id": exp, "policy": {"type": "thompson"}, "arms": arms}
    assert http.post("/v1/experiments", json=body).status_code == 201
    snap = http.get(f"/v1/experiments/{exp}/policy-snapshot").json()
    n, s = snap["stats"]["n"], snap["stats"]["s"]
    assert n[0] > 0 and s[0] > 0 and n[1] == 0  # pseudo-observations of the prior
    assert _stats(http, exp)["a"]["rewards"] == 0  # not observed rewards
