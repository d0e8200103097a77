"""octobandit.integrations.flask: a real Flask app, embedded and against a service."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

flask = pytest.importorskip("flask")

from octobandit import wire  # noqa: E402
from octobandit.integrations.flask import Octobandit  # noqa: E402

CTR = {"buy": 0.5, "try": 0.1}


def make_app(url: str, exp_id: str, **config: Any) -> tuple[Any, Octobandit]:
    app = flask.Flask("shop")
    app.config.update(OCTOBANDIT_URL=url, OCTOBANDIT_TICK_SECONDS=0.05, **config)
    spec = {
        "id": exp_id,
        "policy": {"type": "thompson"},
        "arms": [{"id": "buy", "payload": {"text": "Buy now"}}, {"id": "try", "payload": None}],
        "reward": {"type": "binary", "attribution_window": 0.3, "default": 0},
    }
    ob = Octobandit(experiments=[spec])
    ob.init_app(app)

    @app.get("/")
    @ob.choose(exp_id, arg="cta")
    def home(cta: wire.Decision) -> dict[str, Any]:
        return {"arm": cta.arm_id, "decision": cta.decision_id, "payload": cta.payload}

    @app.get("/unit/<unit>")
    def unit(unit: str) -> str:
        return ob.decide(exp_id, unit_id=unit).arm_id

    @app.post("/convert")
    def convert() -> dict[str, Any]:
        answer = ob.reward(exp_id)
        return {"accepted": None if answer is None else answer.accepted}

    return app, ob


@pytest.fixture(params=["embedded", "remote"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "embedded":
        return str(tmp_path / "shop.db")
    return str(request.getfixturevalue("module_server").url)


def test_sticky_by_cookie_one_reward_and_convergence(url: str, exp_id: str) -> None:
    import random

    app, ob = make_app(url, exp_id)
    try:
        rng = random.Random(5)
        shown: Counter[str] = Counter()
        converted: Counter[str] = Counter()
        for _ in range(8):
            for _ in range(40):
                client = app.test_client()
                first = client.get("/").json
                assert client.get("/").json == first  # sticky: the same decision
                shown[first["arm"]] += 1
                if first["arm"] == "buy":
                    assert first["payload"] == {"text": "Buy now"}
                if rng.random() < CTR[first["arm"]]:
                    assert client.post("/convert").json == {"accepted": 1}
                    assert client.post("/convert").json == {"accepted": None}  # once
                    converted[first["arm"]] += 1
            deadline = time.monotonic() + 20
            with app.app_context():
                while ob.bandits.stats(exp_id).pending_decisions:
                    assert time.monotonic() < deadline
                    time.sleep(0.05)
        with app.app_context():
            stats = {a.arm_id: a for a in ob.bandits.stats(exp_id).arms}
        for arm_id, arm in stats.items():
            assert arm.decisions == shown[arm_id] == arm.rewards
            assert arm.reward_sum == converted[arm_id]
        assert shown["buy"] > shown["try"]
        # no cookie, no conversion to report
        assert app.test_client().post("/convert").json == {"accepted": None}
    finally:
        ob.close(app)


def test_unit_ids_use_the_services_stickiness_and_cookie_settings(tmp_path: Path) -> None:
    app, ob = make_app(
        str(tmp_path / "u.db"),
        "units",
        OCTOBANDIT_COOKIE_NAME="ab",
        OCTOBANDIT_COOKIE_MAX_AGE=60,
        OCTOBANDIT_COOKIE_PATH="/x",
    )
    try:
        client = app.test_client()
        arms = {client.get("/unit/alice").text for _ in range(5)}
        assert len(arms) == 1
        header = app.test_client().get("/").headers["Set-Cookie"]
        assert header.startswith("ab=") and "Max-Age=60" in header and "Path=/x" in header
        with app.app_context():
            assert ob.bandits.stats("units").total_decisions == 6
    finally:
        ob.close(app)


def test_a_disabled_arm_is_reassigned(tmp_path: Path) -> None:
    app, ob = make_app(str(tmp_path / "d.db"), "dis")
    try:
        client = app.test_client()
        first = client.get("/").json["arm"]
        other = {"buy": "try", "try": "buy"}[first]
        with app.app_context():
            ob.bandits.update_arm("dis", first, {"enabled": False})
            ob._arms("dis", refresh=True)
        assert client.get("/").json["arm"] == other
    finally:
        ob.close(app)
