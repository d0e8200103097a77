"""The README's walkthrough, through the API: traffic moves to the rewarded arm."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient

README = Path(__file__).resolve().parents[2] / "README.md"


def test_traffic_moves_to_the_only_rewarded_arm(client: TestClient) -> None:
    r = client.post(
        "/v1/experiments",
        json={
            "id": "router",
            "policy": {"type": "epsilon_greedy", "epsilon": 0.1},
            "arms": [{"id": "model-0"}, {"id": "model-1"}, {"id": "model-2"}],
        },
    )
    assert r.status_code == 201
    served = []
    for _ in range(100):
        d = client.post("/v1/experiments/router/decisions").json()
        reward = 1 if d["arm_id"] == "model-2" else 0
        client.post(
            "/v1/experiments/router/rewards",
            json={"decision_id": d["decision_id"], "reward": reward},
        )
        served.append(d["arm_id"])
    # Once model-2 has a reward it is served with probability 1 - ε + ε/3 = 0.933;
    # over the last 50 decisions the count is Binomial(50, 0.933): 5 sd below the
    # mean is 46.7 - 5 * 1.77 ≈ 37.
    assert served[50:].count("model-2") >= 37
    stats = client.get("/v1/experiments/router/stats").json()
    assert stats["total_decisions"] == 100
    arm2 = stats["arms"][2]
    assert arm2["mean_reward"] == 1.0 and arm2["decisions"] == served.count("model-2")


def test_readme_commands_match_ci() -> None:
    text = README.read_text()
    ci = (README.parent / ".ci" / "run").read_text()
    test_cmd = re.search(r"```bash\n(python3 -m venv .* pytest .*)\n```", text)
    assert test_cmd is not None and test_cmd.group(1) in ci
    assert "octobandit serve" in text
