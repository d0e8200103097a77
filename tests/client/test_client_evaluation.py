"""``Client.evaluation`` (and its async twin): the evaluation route through the SDK."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from octobandit.client import NotFoundError
from octobandit.wire import Evaluation


def test_evaluation_through_the_client(api: Any, module_server: Any, exp_id: str) -> None:
    with httpx.Client(base_url=module_server.url, timeout=30) as http:
        body = {"id": exp_id, "arms": [{"id": "a"}, {"id": "b"}]}
        assert http.post("/v1/experiments", json=body).status_code == 201
        made = http.post(f"/v1/experiments/{exp_id}/decisions", json={"n": 40}).json()
        rewards = [
            {"decision_id": d["decision_id"], "reward": float(d["arm_id"] == "a")}
            for d in made["decisions"]
        ]
        assert http.post(f"/v1/experiments/{exp_id}/rewards", json={"rewards": rewards}).is_success
    out = api.evaluation(
        exp_id, ["ucb1", {"action_dist": [1.0, 0.0], "name": "a"}], limit=30, bootstrap=20
    )
    assert isinstance(out, Evaluation)
    assert out.logged.rounds == 30 and out.logged.older == 10
    assert set(out.candidates) == {"ucb1", "a"}
    # always arm a, whose every reward is 1: SNIPS (a weighted mean of a's rewards) is 1
    assert out.candidates["a"].estimates["snipw"].value == pytest.approx(1.0)
    with pytest.raises(NotFoundError):
        api.evaluation("no-such-experiment", ["thompson"])
