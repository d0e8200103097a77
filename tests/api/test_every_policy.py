"""Every registered policy works through the HTTP API: create, decide, reward, stats."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from octobandit.policies import POLICIES

REWARD_TYPES = {"kl_ucb": ["binary"]}


@pytest.mark.parametrize(
    ("policy", "reward"),
    [(p, r) for p in sorted(POLICIES) for r in REWARD_TYPES.get(p, ["binary", "continuous"])],
)
def test_policy_through_the_api(client: TestClient, policy: str, reward: str) -> None:
    contextual = POLICIES[policy].contextual
    body = {
        "id": "p",
        "policy": {"type": policy},
        "reward": {"type": reward},
        "arms": [{"id": "a"}, {"id": "b"}, {"id": "c"}],
    }
    if contextual:
        body["context"] = {"features": ["bias", "x"]}
    r = client.post("/v1/experiments", json=body)
    assert r.status_code == 201, r.text
    assert r.json()["policy"]["type"] == policy
    pays = {"a": 0.2, "b": 0.8, "c": 0.4}
    for _ in range(30):
        ask = {"n": 10, "context": {"bias": 1.0, "x": 0.5}} if contextual else {"n": 10}
        batch = client.post("/v1/experiments/p/decisions", json=ask).json()["decisions"]
        assert all(0 < d["propensity"] <= 1 for d in batch)
        rewards = [{"decision_id": d["decision_id"], "reward": pays[d["arm_id"]]} for d in batch]
        r = client.post("/v1/experiments/p/rewards", json={"rewards": rewards})
        assert r.json() == {"accepted": 10, "duplicates": 0}
    stats = client.get("/v1/experiments/p/stats").json()
    assert stats["total_decisions"] == 300
    by_arm = {a["arm_id"]: a for a in stats["arms"]}
    assert by_arm["b"]["mean_reward"] == pytest.approx(0.8)
    # every policy puts more traffic on the best arm than on the worst after 300 rewards
    assert by_arm["b"]["decisions"] > by_arm["a"]["decisions"]


def test_kl_ucb_refuses_continuous_rewards(client: TestClient) -> None:
    r = client.post(
        "/v1/experiments",
        json={"id": "k", "policy": {"type": "kl_ucb"}, "reward": {"type": "continuous"}},
    )
    assert r.status_code == 422 and "policy.type" in r.json()["error"]["message"]
