"""Every route of the REST API v1 and every error it documents."""

from __future__ import annotations

import math
from typing import Any

import pytest
from fastapi.testclient import TestClient

JSON_CT = {"content-type": "application/json"}

ARMS = [{"id": "a", "payload": {"text": "Buy"}}, {"id": "b"}, {"id": "c", "payload": 3}]


def create(client: TestClient, **body: Any) -> dict[str, Any]:
    body.setdefault("id", "exp")
    body.setdefault("policy", {"type": "epsilon_greedy", "epsilon": 0.1})
    body.setdefault("arms", ARMS)
    r = client.post("/v1/experiments", json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


def error(r: Any, status: int, code: str | None = None) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) - {"field"} == {"code", "message"}
    if "field" in body["error"]:  # an invalid value: the message starts with its name
        assert body["error"]["message"].startswith(body["error"]["field"] + ": ")
    if code is not None:
        assert body["error"]["code"] == code
    return str(body["error"]["message"])


def test_healthz(client: TestClient) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


def test_create_returns_the_experiment(client: TestClient) -> None:
    exp = create(client, name="Buttons")
    assert exp["id"] == "exp" and exp["name"] == "Buttons" and exp["status"] == "running"
    assert exp["policy"] == {"type": "epsilon_greedy", "epsilon": 0.1, "initial_value": 0.0}
    assert exp["reward"] == {"type": "binary"}
    assert [a["id"] for a in exp["arms"]] == ["a", "b", "c"]
    assert exp["arms"][0]["payload"] == {"text": "Buy"}


def test_create_generates_an_id_and_defaults(client: TestClient) -> None:
    r = client.post("/v1/experiments", json={})
    assert r.status_code == 201
    exp = r.json()
    assert exp["id"].startswith("exp-") and exp["policy"]["type"] == "thompson"
    assert exp["arms"] == []


def test_create_existing_id_is_409_and_keeps_the_data(client: TestClient) -> None:
    create(client)
    d = client.post("/v1/experiments/exp/decisions").json()
    client.post("/v1/experiments/exp/rewards", json={"decision_id": d["decision_id"], "reward": 1})
    r = client.post("/v1/experiments", json={"id": "exp", "arms": [{"id": "z"}]})
    error(r, 409, "already_exists")
    stats = client.get("/v1/experiments/exp/stats").json()
    assert stats["total_decisions"] == 1 and stats["total_reward"] == 1.0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"policy": {"type": "epsilon_greedy", "epsilon": 1.5}}, "policy.epsilon"),
        ({"policy": {"type": "epsilon_greedy", "epsilon": -0.1}}, "policy.epsilon"),
        ({"policy": {"type": "epsilon_greedy", "epsilon": "x"}}, "policy.epsilon"),
        ({"policy": {"type": "nope"}}, "policy.type"),
        ({"policy": {"type": "ucb1", "c": -1}}, "policy.c"),
        ({"policy": {"type": "thompson", "alpha": 0}}, "policy.alpha"),
        ({"policy": {"type": "ucb1", "gamma": 1}}, "policy.gamma"),
        ({"arms": [{"id": "a"}, {"id": "a"}]}, "arms[1].id"),
        ({"arms": [{"id": "bad id"}]}, "arms[0].id"),
        ({"arms": [{"payload": 1}]}, "arms[0].id"),
        ({"id": "Upper"}, "id"),
        ({"id": "x" * 65}, "id"),
        ({"reward": {"type": "ternary"}}, "reward.type"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_create_rejects_bad_input_naming_the_field(
    client: TestClient, body: dict[str, Any], field: str
) -> None:
    r = client.post("/v1/experiments", json={"id": "e", **body})
    message = error(r, 422, "invalid")
    assert field in message
    assert r.json()["error"].get("field") == field
    error(client.get("/v1/experiments/e"), 404)


def test_list_get_and_404(client: TestClient) -> None:
    create(client, id="one")
    create(client, id="two")
    ids = [e["id"] for e in client.get("/v1/experiments").json()["experiments"]]
    assert ids == ["one", "two"]
    assert client.get("/v1/experiments/two").json()["id"] == "two"
    assert "three" in error(client.get("/v1/experiments/three"), 404, "experiment_not_found")


def test_patch_status_name_and_policy(client: TestClient) -> None:
    create(client)
    r = client.patch("/v1/experiments/exp", json={"status": "paused", "name": "N"})
    assert r.status_code == 200 and r.json()["status"] == "paused" and r.json()["name"] == "N"
    r = client.patch("/v1/experiments/exp", json={"policy": {"epsilon": 0.3}})
    assert r.json()["policy"] == {"type": "epsilon_greedy", "epsilon": 0.3, "initial_value": 0.0}
    r = client.patch("/v1/experiments/exp", json={"policy": {"type": "ucb1"}})
    assert r.json()["policy"]["type"] == "ucb1"
    assert "policy.epsilon" in error(
        client.patch(
            "/v1/experiments/exp", json={"policy": {"type": "epsilon_greedy", "epsilon": 2}}
        ),
        422,
    )
    assert "status" in error(client.patch("/v1/experiments/exp", json={"status": "done"}), 422)
    error(client.patch("/v1/experiments/nope", json={"name": "x"}), 404)


def test_delete_one_and_all(client: TestClient) -> None:
    create(client, id="one")
    create(client, id="two")
    r = client.delete("/v1/experiments/one")
    assert r.status_code == 204
    error(client.get("/v1/experiments/one"), 404)
    error(client.delete("/v1/experiments/one"), 404)
    error(client.delete("/v1/experiments"), 400, "confirmation_required")
    assert client.get("/v1/experiments/two").status_code == 200
    r = client.delete("/v1/experiments?confirm=true")
    assert r.status_code == 200 and r.json() == {"deleted": 1}
    assert client.get("/v1/experiments").json()["experiments"] == []


def test_reset_returns_statistics_to_priors_and_keeps_history(
    client: TestClient, engine: Any
) -> None:
    create(client)
    for _ in range(5):
        d = client.post("/v1/experiments/exp/decisions").json()
        client.post(
            "/v1/experiments/exp/rewards", json={"decision_id": d["decision_id"], "reward": 1}
        )
    r = client.post("/v1/experiments/exp/reset")
    assert r.status_code == 200
    stats = client.get("/v1/experiments/exp/stats").json()
    assert stats["total_decisions"] == 0 and stats["total_reward"] == 0
    assert all(a["rewards"] == 0 and a["mean_reward"] is None for a in stats["arms"])
    kinds = [e.kind for e in engine.storage.events("exp")]
    assert kinds.count("decision") == 5 and kinds.count("reward") == 5 and kinds[-1] == "reset"
    error(client.post("/v1/experiments/nope/reset"), 404)


def test_arms_add_patch_delete(client: TestClient) -> None:
    create(client)
    r = client.post("/v1/experiments/exp/arms", json={"id": "d", "payload": [1, 2]})
    assert r.status_code == 201 and r.json() == {
        "id": "d", "payload": [1, 2], "enabled": True, "deleted": False, "prior": None,
    }  # fmt: skip
    error(client.post("/v1/experiments/exp/arms", json={"id": "d"}), 409, "already_exists")
    error(client.post("/v1/experiments/exp/arms", json={"id": "a b"}), 422)
    error(client.post("/v1/experiments/nope/arms", json={"id": "x"}), 404)
    r = client.patch("/v1/experiments/exp/arms/d", json={"enabled": False, "payload": "p"})
    assert r.status_code == 200 and r.json()["enabled"] is False and r.json()["payload"] == "p"
    error(
        client.patch("/v1/experiments/exp/arms/zz", json={"enabled": False}), 404, "arm_not_found"
    )
    error(client.patch("/v1/experiments/exp/arms/d", json={"enabled": "yes"}), 422)
    assert client.delete("/v1/experiments/exp/arms/d").status_code == 204
    error(client.delete("/v1/experiments/exp/arms/zz"), 404)
    error(client.patch("/v1/experiments/exp/arms/d", json={"enabled": True}), 409, "arm_deleted")
    arms = client.get("/v1/experiments/exp").json()["arms"]
    assert arms[-1] == {"id": "d", "payload": "p", "enabled": False, "deleted": True, "prior": None}


def test_disabled_and_deleted_arms_are_never_chosen_and_keep_history(client: TestClient) -> None:
    create(client, policy={"type": "epsilon_greedy", "epsilon": 1.0})
    first = client.post("/v1/experiments/exp/decisions", json={"n": 300}).json()["decisions"]
    for d in first:
        client.post(
            "/v1/experiments/exp/rewards", json={"decision_id": d["decision_id"], "reward": 1}
        )
    client.patch("/v1/experiments/exp/arms/a", json={"enabled": False})
    client.delete("/v1/experiments/exp/arms/b")
    later = client.post("/v1/experiments/exp/decisions", json={"n": 200}).json()["decisions"]
    assert {d["arm_id"] for d in later} == {"c"}
    assert all(d["propensity"] == 1.0 for d in later)
    stats = {a["arm_id"]: a for a in client.get("/v1/experiments/exp/stats").json()["arms"]}
    assert stats["a"]["enabled"] is False and stats["a"]["deleted"] is False
    assert stats["b"]["enabled"] is False and stats["b"]["deleted"] is True
    assert stats["b"]["decisions"] == sum(d["arm_id"] == "b" for d in first) > 0
    assert stats["b"]["rewards"] == stats["b"]["decisions"]


def test_no_enabled_arm_is_409(client: TestClient) -> None:
    create(client, arms=[{"id": "a"}])
    client.patch("/v1/experiments/exp/arms/a", json={"enabled": False})
    assert "no enabled arm" in error(
        client.post("/v1/experiments/exp/decisions"), 409, "no_enabled_arm"
    )
    create(client, id="empty", arms=[])
    error(client.post("/v1/experiments/empty/decisions"), 409, "no_enabled_arm")


def test_decision_shape_and_batch(client: TestClient) -> None:
    create(client)
    d = client.post("/v1/experiments/exp/decisions").json()
    assert set(d) == {"decision_id", "experiment_id", "arm_id", "payload", "propensity"}
    assert d["experiment_id"] == "exp" and d["arm_id"] in {"a", "b", "c"}
    assert d["payload"] == {a["id"]: a.get("payload") for a in ARMS}[d["arm_id"]]
    assert 0 < d["propensity"] <= 1
    r = client.post("/v1/experiments/exp/decisions", json={"n": 50})
    decisions = r.json()["decisions"]
    assert len(decisions) == 50 and len({x["decision_id"] for x in decisions}) == 50
    assert client.post("/v1/experiments/exp/decisions", json={"n": 1}).json()["decisions"]
    for n in (0, -1, 1001, "3", 1.5, True):
        error(client.post("/v1/experiments/exp/decisions", json={"n": n}), 422)
    error(client.post("/v1/experiments/nope/decisions"), 404, "experiment_not_found")
    error(client.post("/v1/experiments/exp/decisions", json={"x": 1}), 422)


def test_sticky_assignment(client: TestClient) -> None:
    create(client, policy={"type": "epsilon_greedy", "epsilon": 1.0})
    arms = {
        u: client.post("/v1/experiments/exp/decisions", json={"unit_id": u}).json()["arm_id"]
        for u in map(str, range(30))
    }
    assert len(set(arms.values())) > 1  # random assignment, not all on one arm
    for _ in range(3):
        for u, arm in arms.items():
            d = client.post("/v1/experiments/exp/decisions", json={"unit_id": u}).json()
            assert d["arm_id"] == arm
    moved = [u for u, arm in arms.items() if arm == "a"]
    client.patch("/v1/experiments/exp/arms/a", json={"enabled": False})
    for u in moved:
        d = client.post("/v1/experiments/exp/decisions", json={"unit_id": u}).json()
        assert d["arm_id"] != "a"
        again = client.post("/v1/experiments/exp/decisions", json={"unit_id": u}).json()
        assert again["arm_id"] == d["arm_id"]
    error(client.post("/v1/experiments/exp/decisions", json={"unit_id": "u", "n": 2}), 422)
    error(client.post("/v1/experiments/exp/decisions", json={"unit_id": ""}), 422)


def test_paused_experiment_serves_its_best_arm(client: TestClient) -> None:
    create(client, policy={"type": "epsilon_greedy", "epsilon": 0.5})
    client.post("/v1/experiments/exp/rewards", json={"arm_id": "b", "reward": 0.9, "count": 10})
    client.post("/v1/experiments/exp/rewards", json={"arm_id": "a", "reward": 0.1, "count": 10})
    client.patch("/v1/experiments/exp", json={"status": "paused"})
    ds = client.post("/v1/experiments/exp/decisions", json={"n": 100}).json()["decisions"]
    assert {d["arm_id"] for d in ds} == {"b"} and {d["propensity"] for d in ds} == {1.0}
    r = client.post(
        "/v1/experiments/exp/rewards", json={"decision_id": ds[0]["decision_id"], "reward": 1}
    )
    assert r.json() == {"accepted": 1, "duplicates": 0}
    stats = client.get("/v1/experiments/exp/stats").json()
    assert stats["status"] == "paused" and stats["total_decisions"] == 100


def test_rewards_forms_and_idempotency(client: TestClient) -> None:
    create(client)
    ds = client.post("/v1/experiments/exp/decisions", json={"n": 3}).json()["decisions"]
    one = {"decision_id": ds[0]["decision_id"], "reward": 1}
    assert client.post("/v1/experiments/exp/rewards", json=one).json() == {
        "accepted": 1,
        "duplicates": 0,
    }
    assert client.post("/v1/experiments/exp/rewards", json=one).json() == {
        "accepted": 0,
        "duplicates": 1,
    }
    bulk = {
        "rewards": [
            {"decision_id": ds[1]["decision_id"], "reward": 0},
            {"decision_id": ds[1]["decision_id"], "reward": 1},
            {"decision_id": ds[0]["decision_id"], "reward": 1},
            {"arm_id": "c", "reward": 0.4, "count": 10},
        ]
    }
    assert client.post("/v1/experiments/exp/rewards", json=bulk).json() == {
        "accepted": 2, "duplicates": 2,
    }  # fmt: skip
    c = next(
        a for a in client.get("/v1/experiments/exp/stats").json()["arms"] if a["arm_id"] == "c"
    )
    extra = sum(d["arm_id"] == "c" for d in ds[:2])
    assert c["rewards"] == 10 + extra
    # Seldon's batch semantics: mean 0.4 over 10 pulls is 4 successes in 10
    assert math.isclose(c["reward_sum"], 4.0 + (ds[0]["arm_id"] == "c"))


def test_reward_errors_and_all_or_nothing(client: TestClient) -> None:
    create(client)
    d = client.post("/v1/experiments/exp/decisions").json()
    ok = {"decision_id": d["decision_id"], "reward": 1}
    url = "/v1/experiments/exp/rewards"
    error(client.post(url, json={"decision_id": "nope", "reward": 1}), 404, "decision_not_found")
    error(client.post(url, json={"arm_id": "zz", "reward": 1}), 404, "arm_not_found")
    error(client.post("/v1/experiments/nope/rewards", json=ok), 404, "experiment_not_found")
    error(client.post(url, json={"rewards": [ok, {"decision_id": "nope", "reward": 1}]}), 404)
    error(client.post(url, json={"rewards": [ok, {"arm_id": "a", "reward": 2}]}), 422)
    assert client.get("/v1/experiments/exp/stats").json()["total_reward"] == 0  # nothing written
    assert "reward" in error(
        client.post(url, json={"decision_id": d["decision_id"], "reward": 1.5}), 422
    )
    error(client.post(url, json={"decision_id": d["decision_id"], "reward": -0.1}), 422)
    error(client.post(url, content=b'{"arm_id": "a", "reward": 1e999}', headers=JSON_CT), 422)
    for bad in (b"NaN", b"Infinity", b"-Infinity"):
        body = b'{"arm_id": "a", "reward": ' + bad + b"}"
        assert "finite" in error(client.post(url, content=body, headers=JSON_CT), 422, "invalid")
    error(client.post(url, json={"arm_id": "a", "reward": "1"}), 422)
    error(client.post(url, json={"arm_id": "a", "reward": 1, "count": 0}), 422)
    error(client.post(url, json={"decision_id": d["decision_id"], "reward": 1, "count": 2}), 422)
    error(client.post(url, json={"decision_id": d["decision_id"], "arm_id": "a", "reward": 1}), 422)
    error(client.post(url, json={"reward": 1}), 422)
    error(client.post(url, json={"decision_id": d["decision_id"]}), 422)
    error(client.post(url, json={"rewards": []}), 400)
    error(client.post(url, json={"rewards": [ok], "reward": 1}), 422)
    assert client.post(url, json=ok).json() == {"accepted": 1, "duplicates": 0}


def test_continuous_rewards(client: TestClient) -> None:
    create(client, policy={"type": "thompson"}, reward={"type": "continuous"})
    url = "/v1/experiments/exp/rewards"
    assert client.post(url, json={"arm_id": "a", "reward": 120.5}).status_code == 200
    assert client.post(url, json={"arm_id": "a", "reward": -3.5}).status_code == 200
    a = client.get("/v1/experiments/exp/stats").json()["arms"][0]
    assert a["mean_reward"] == pytest.approx(58.5) and a["ci95"][0] < 58.5 < a["ci95"][1]
    d = client.post("/v1/experiments/exp/decisions").json()
    assert 0 < d["propensity"] <= 1


def test_stats_shape_and_wilson_interval(client: TestClient) -> None:
    create(client)
    client.post("/v1/experiments/exp/rewards", json={"arm_id": "a", "reward": 0.5, "count": 10})
    stats = client.get("/v1/experiments/exp/stats").json()
    assert set(stats) == {
        "experiment_id", "status", "total_decisions", "total_reward", "arms",
        "reward_gain_vs_equal_split", "pending_decisions",
    }  # fmt: skip
    assert stats["pending_decisions"] is None  # no attribution window
    a = stats["arms"][0]
    assert set(a) >= {
        "arm_id",
        "enabled",
        "decisions",
        "rewards",
        "reward_sum",
        "mean_reward",
        "ci95",
    }
    # Wilson 95% interval for 5/10: (0.2366, 0.7634)
    assert a["ci95"] == pytest.approx([0.23659, 0.76341], abs=1e-5)
    assert stats["arms"][1]["ci95"] is None and stats["arms"][1]["mean_reward"] is None
    error(client.get("/v1/experiments/nope/stats"), 404)


def test_protocol_errors_are_json(client: TestClient) -> None:
    error(client.get("/nope"), 404, "not_found")
    error(client.put("/v1/experiments"), 405, "method_not_allowed")
    error(
        client.post("/v1/experiments", content=b"{not json", headers=JSON_CT), 400, "invalid_json"
    )
    create(client)
    error(
        client.post("/v1/experiments/exp/decisions", content=b"{not json", headers=JSON_CT),
        400,
        "invalid_json",
    )
    error(
        client.post("/v1/experiments/exp/rewards", content=b"[1,2", headers=JSON_CT),
        400,
        "invalid_json",
    )
    big = b'{"rewards": [' + b",".join([b'{"arm_id": "a", "reward": 1}'] * 40000) + b"]}"
    error(
        client.post("/v1/experiments/exp/rewards", content=big, headers=JSON_CT), 413, "too_large"
    )

    def chunks() -> Any:
        for _ in range(40):
            yield b" " * 32768

    error(
        client.post("/v1/experiments/exp/rewards", content=chunks(), headers=JSON_CT),
        413,
        "too_large",
    )
    error(client.post("/v1/experiments", content=chunks(), headers=JSON_CT), 413, "too_large")
    many = {"rewards": [{"arm_id": "a", "reward": 1}] * 10001}
    error(client.post("/v1/experiments/exp/rewards", json=many), 422)


def test_openapi_and_docs(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    for path in (
        "/healthz",
        "/v1/experiments",
        "/v1/experiments/{experiment_id}",
        "/v1/experiments/{experiment_id}/reset",
        "/v1/experiments/{experiment_id}/arms",
        "/v1/experiments/{experiment_id}/arms/{arm_id}",
        "/v1/experiments/{experiment_id}/decisions",
        "/v1/experiments/{experiment_id}/rewards",
        "/v1/experiments/{experiment_id}/stats",
    ):
        assert path in paths, path
    ref = paths["/v1/experiments/{experiment_id}/rewards"]["post"]["requestBody"]
    name = ref["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert name in spec["components"]["schemas"]
    assert client.get("/docs").status_code == 200


def test_data_plane_routes_answer_405_to_other_methods(client: TestClient) -> None:
    create(client)
    error(client.get("/v1/experiments/exp/decisions"), 405, "method_not_allowed")
    error(client.put("/v1/experiments/exp/rewards", json={}), 405, "method_not_allowed")
    error(client.get("/v1/experiments/exp/other"), 404, "not_found")


def test_conclusion_and_history_routes(client: TestClient, engine: Any) -> None:
    create(client, stopping={"min_rewards_per_arm": 10, "prob_best": 0.95}, snapshot_interval=60)
    exp = client.get("/v1/experiments/exp").json()
    assert exp["stopping"]["prob_best"] == 0.95 and exp["snapshot_interval"] == 60
    assert exp["stopping"]["auto_conclude"] is False and exp["conclusion"] is None
    client.post("/v1/experiments/exp/rewards", json={"arm_id": "a", "reward": 0.1, "count": 100})
    client.post("/v1/experiments/exp/rewards", json={"arm_id": "b", "reward": 0.6, "count": 100})
    client.post("/v1/experiments/exp/rewards", json={"arm_id": "c", "reward": 0.2, "count": 100})
    c = client.get("/v1/experiments/exp/conclusion").json()
    assert c["met"] is True and c["winner"] == "b"
    assert sum(a["prob_best"] for a in c["arms"]) == pytest.approx(1.0)
    error(client.get("/v1/experiments/nope/conclusion"), 404)
    first = client.get("/v1/experiments/exp/history").json()  # taken at creation
    assert first["reason"] == ["created"] and first["arms"]["b"]["rewards"] == [0]
    engine.tick(now=engine._clock() + 61)
    h = client.get("/v1/experiments/exp/history?limit=5").json()
    assert h["reason"] == ["created", "interval"] and h["arms"]["b"]["prob_best"][1] > 0.95
    error(client.get("/v1/experiments/exp/history?limit=0"), 422)
    r = client.patch("/v1/experiments/exp", json={"stopping": {"auto_conclude": True}})
    assert (
        r.json()["stopping"]["auto_conclude"] is True and r.json()["stopping"]["prob_best"] == 0.95
    )
    error(client.patch("/v1/experiments/exp", json={"stopping": {"prob_best": 2}}), 422)
    error(client.patch("/v1/experiments/exp", json={"snapshot_interval": 0}), 422)
    # concluding by hand: refused as a whole, or recorded
    patch = {"status": "concluded", "winner": "zz"}
    assert "winner" in error(client.patch("/v1/experiments/exp", json=patch), 422)
    patch = {"status": "concluded", "name": "x"}
    assert "alone" in error(client.patch("/v1/experiments/exp", json=patch), 422)
    assert client.get("/v1/experiments/exp").json()["conclusion"] is None
    r = client.patch("/v1/experiments/exp", json={"status": "concluded", "winner": "c"})
    assert r.status_code == 200 and r.json()["status"] == "concluded"
    assert r.json()["conclusion"]["winner"] == "c" and r.json()["conclusion"]["manual"] is True
    assert client.get("/v1/experiments/exp/conclusion").json()["concluded"]["winner"] == "c"


def test_declared_context_features_are_validated_and_logged(
    client: TestClient, engine: Any
) -> None:
    create(client, context={"features": ["age", "mobile"]})
    assert client.get("/v1/experiments/exp").json()["context"] == {"features": ["age", "mobile"]}
    url = "/v1/experiments/exp/decisions"
    assert client.post(url, json={"context": {"mobile": 1, "age": 31}}).status_code == 200
    assert client.post(url, json={"context": [40, 0]}).status_code == 200
    assert "context.mobile" in error(client.post(url, json={"context": {"age": 3}}), 422)
    assert "context.colour" in error(
        client.post(url, json={"context": {"age": 3, "mobile": 0, "colour": 2}}), 422
    )
    assert "context" in error(client.post(url, json={"context": [1, 2, 3]}), 422)
    assert "context.age" in error(
        client.post(url, json={"context": {"age": "x", "mobile": 1}}), 422
    )
    assert "context" in error(client.post(url, json={}), 422)
    logged = [e.context for e in engine.storage.events("exp") if e.kind == "decision"]
    assert logged == [[31.0, 1.0], [40.0, 0.0]]
    error(
        client.post("/v1/experiments", json={"id": "e2", "context": {"features": ["a", "a"]}}), 422
    )
    error(client.post("/v1/experiments", json={"id": "e3", "context": {"features": []}}), 422)
    # a bad context fails only its own request in a group
    r = client.post(url, json={"n": 3, "context": {"age": 1, "mobile": 1}})
    assert len(r.json()["decisions"]) == 3
