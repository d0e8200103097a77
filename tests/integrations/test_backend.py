"""The integrations' two backends, embedded and remote, answer alike."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from octobandit.integrations import Bandits, connect


@pytest.fixture(params=["embedded", "remote"])
def bandits(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Bandits]:
    if request.param == "embedded":
        b = connect(str(tmp_path / "e.db"), tick_seconds=0.1)
    else:
        b = connect(request.getfixturevalue("module_server").url)
    yield b
    b.close()


def test_both_backends_decide_reward_and_report(bandits: Bandits, exp_id: str) -> None:
    spec: dict[str, Any] = {"id": exp_id, "arms": [{"id": "a"}, {"id": "b"}]}
    bandits.ensure_experiment(spec)
    bandits.ensure_experiment({**spec, "arms": [{"id": "x"}]})  # kept as it is
    assert [a.id for a in bandits.get_experiment(exp_id).arms] == ["a", "b"]
    bandits.add_arm(exp_id, {"id": "c", "payload": {"text": "C"}})
    d = bandits.decide(exp_id, unit_id="u1")
    assert bandits.decide(exp_id, unit_id="u1").arm_id == d.arm_id
    assert bandits.reward(exp_id, d.decision_id, 1.0).accepted == 1
    assert bandits.reward(exp_id, d.decision_id, 1.0).duplicates == 1
    assert bandits.reward_arm(exp_id, "a", 0.4, count=10).accepted == 1
    stats = bandits.stats(exp_id)
    assert stats.total_decisions == 2 and stats.total_reward == pytest.approx(5.0)
    bandits.set_arm_stats(exp_id, "b", {"decisions": 10, "rewards": 10, "reward_sum": 7})
    assert {a.arm_id: a.reward_sum for a in bandits.stats(exp_id).arms}["b"] == 7
    assert bandits.conclusion(exp_id).met is False


def test_the_embedded_backend_ticks_attribution_windows(tmp_path: Path) -> None:
    bandits = connect(str(tmp_path / "w.db"), tick_seconds=0.05)
    try:
        bandits.ensure_experiment(
            {"id": "w", "arms": [{"id": "a"}], "reward": {"attribution_window": 0.1}}
        )
        bandits.decide("w")
        deadline = time.monotonic() + 10
        while bandits.stats("w").pending_decisions:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert bandits.stats("w").arms[0].rewards == 1
    finally:
        bandits.close()
