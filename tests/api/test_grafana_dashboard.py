"""deploy/grafana/octobandit.json: valid JSON whose queries name only series a real scrape has."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from octobandit.api.app import create_app
from octobandit.config import Settings
from octobandit.engine import Engine
from octobandit.errors import StorageFull

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "octobandit.json"
METRIC = re.compile(r"\boctobandit_[a-z0-9_]+")


def expressions(node: Any) -> list[str]:
    """Every PromQL expression of the dashboard: panel targets and variable queries."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            promql = key in ("expr", "definition") or (key == "query" and "octobandit_" in value)
            if isinstance(value, str) and promql:
                found.append(value)
            else:
                found += expressions(value)
    elif isinstance(node, list):
        for item in node:
            found += expressions(item)
    return found


@pytest.fixture(scope="module")
def dashboard() -> Any:
    return json.loads(DASHBOARD.read_text())


def test_the_dashboard_is_well_formed(dashboard: Any) -> None:
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    panels = dashboard["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    queried = [p for p in panels if p["type"] != "row"]
    assert len(queried) >= 10
    for panel in queried:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"
            assert METRIC.search(target["expr"]), target["expr"]
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24


def test_every_metric_the_dashboard_queries_is_in_a_real_scrape(
    dashboard: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = Engine(_store(tmp_path), seed=3)
    app = create_app(engine, Settings(tick_seconds=3600))
    with TestClient(app, base_url="http://localhost") as client:
        client.post("/v1/experiments", json={"id": "d1", "arms": [{"id": "a"}, {"id": "b"}]})
        d = client.post("/v1/experiments/d1/decisions").json()
        client.post(
            "/v1/experiments/d1/rewards", json={"decision_id": d["decision_id"], "reward": 1}
        )
        with monkeypatch.context() as patch:  # one storage error, so its counter has a series

            def full(*args: Any, **kwargs: Any) -> Any:
                raise StorageFull("test")

            patch.setattr(engine.storage, "batch", full)
            assert client.post("/v1/experiments/d1/decisions").status_code == 503
        text = client.get("/metrics").text
    engine.storage.close()
    names = {s.name for f in text_string_to_metric_families(text) for s in f.samples}
    wanted = {name for expr in expressions(dashboard) for name in METRIC.findall(expr)}
    assert len(wanted) >= 10
    assert wanted <= names, sorted(wanted - names)
    for needed in (
        "octobandit_decisions_total",
        "octobandit_rewards_total",
        "octobandit_http_request_duration_seconds_bucket",
        "octobandit_group_commit_requests_bucket",
        "octobandit_group_commit_duration_seconds_bucket",
        "octobandit_storage_errors_total",
        "octobandit_sqlite_wal_bytes",
    ):
        assert needed in wanted, needed


def _store(tmp_path: Path) -> Any:
    from octobandit.storage import SQLiteStorage

    return SQLiteStorage(str(tmp_path / "dash.db"))
