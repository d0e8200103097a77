"""The real server as a subprocess: SIGKILL durability, restart, concurrency."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.slow


def _create(url: str, exp_id: str = "exp", reward: str = "binary") -> None:
    r = httpx.post(
        url + "/v1/experiments",
        json={
            "id": exp_id,
            "policy": {"type": "thompson"},
            "reward": {"type": reward},
            "arms": [{"id": "a"}, {"id": "b"}, {"id": "c"}],
        },
    )
    assert r.status_code == 201, r.text


async def _hammer(url: str, n_decisions: int) -> tuple[list[dict[str, Any]], list[str]]:
    """Concurrent decisions, then a reward for every other one; returns what was acknowledged."""
    acked: list[dict[str, Any]] = []
    rewarded: list[str] = []
    limits = httpx.Limits(max_connections=32)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as c:

        async def decide() -> None:
            r = await c.post("/v1/experiments/exp/decisions")
            if r.status_code == 200:
                acked.append(r.json())

        await asyncio.gather(*(decide() for _ in range(n_decisions)))

        async def reward(d: dict[str, Any]) -> None:
            r = await c.post(
                "/v1/experiments/exp/rewards", json={"decision_id": d["decision_id"], "reward": 1}
            )
            if r.status_code == 200 and r.json()["accepted"] == 1:
                rewarded.append(d["decision_id"])

        await asyncio.gather(*(reward(d) for d in acked[::2]))
    return acked, rewarded


def test_acknowledged_writes_survive_sigkill(server_factory: Any, tmp_path: Path) -> None:
    db = tmp_path / "durable.db"
    server = server_factory(db).start()
    _create(server.url)
    acked, rewarded = asyncio.run(_hammer(server.url, 400))
    assert len(acked) == 400 and len(rewarded) == 200
    server.kill()  # no shutdown hook runs, no checkpoint happens

    server = server_factory(db).start()
    stats = httpx.get(server.url + "/v1/experiments/exp/stats").json()
    assert stats["total_decisions"] == len(acked)
    assert stats["total_reward"] == len(rewarded)
    per_arm = {a["arm_id"]: a["decisions"] for a in stats["arms"]}
    for arm in per_arm:
        assert per_arm[arm] == sum(d["arm_id"] == arm for d in acked)
    # every acknowledged decision is still known: rewarding it again is a duplicate
    r = httpx.post(
        server.url + "/v1/experiments/exp/rewards",
        json={"rewards": [{"decision_id": d, "reward": 1} for d in rewarded]},
    )
    assert r.json() == {"accepted": 0, "duplicates": len(rewarded)}
    r = httpx.post(
        server.url + "/v1/experiments/exp/rewards",
        json={"rewards": [{"decision_id": d["decision_id"], "reward": 0} for d in acked[1::2]]},
    )
    assert r.json() == {"accepted": len(acked) // 2, "duplicates": 0}


def test_restart_keeps_experiments_and_config(server_factory: Any, tmp_path: Path) -> None:
    db = tmp_path / "restart.db"
    server = server_factory(db).start()
    _create(server.url)
    httpx.patch(server.url + "/v1/experiments/exp/arms/b", json={"enabled": False})
    httpx.patch(server.url + "/v1/experiments/exp", json={"name": "kept"})
    server.stop()
    server = server_factory(db).start()
    exp = httpx.get(server.url + "/v1/experiments/exp").json()
    assert exp["name"] == "kept" and exp["arms"][1]["enabled"] is False


@pytest.mark.parametrize("workers", [1, 2])
def test_concurrent_rewards_give_exact_totals(
    server_factory: Any, tmp_path: Path, workers: int
) -> None:
    server = server_factory(tmp_path / f"conc{workers}.db", workers=workers).start()
    _create(server.url, reward="continuous")

    async def run() -> list[int]:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as c:

            async def one(i: int) -> int:
                r = await c.post(
                    "/v1/experiments/exp/rewards",
                    json={"arm_id": "abc"[i % 3], "reward": float(i), "count": 1 + i % 4},
                )
                return r.status_code

            statuses: list[int] = []
            for _ in range(5):  # 5 waves of 64 concurrent requests
                statuses += await asyncio.gather(*(one(i) for i in range(64)))
            return statuses

    statuses = asyncio.run(run())
    assert statuses == [200] * 320
    stats = httpx.get(server.url + "/v1/experiments/exp/stats").json()
    arms = {a["arm_id"]: a for a in stats["arms"]}
    for j, arm in enumerate("abc"):
        idx = [i for i in range(64) if i % 3 == j]
        assert arms[arm]["rewards"] == 5 * sum(1 + i % 4 for i in idx)
        assert arms[arm]["reward_sum"] == 5 * sum(float(i) * (1 + i % 4) for i in idx)


def test_snapshots_appear_at_their_cadence_and_survive_restarts(
    server_factory: Any, tmp_path: Path
) -> None:
    import time

    db = tmp_path / "snap.db"
    env = {"OCTOBANDIT_TICK_SECONDS": "0.1"}
    server = server_factory(db, env=env).start()
    r = httpx.post(
        server.url + "/v1/experiments",
        json={"id": "exp", "arms": [{"id": "a"}, {"id": "b"}], "snapshot_interval": 1},
    )
    assert r.status_code == 201
    httpx.post(server.url + "/v1/experiments/exp/rewards", json={"arm_id": "a", "reward": 1})
    time.sleep(3.5)
    before = httpx.get(server.url + "/v1/experiments/exp/history").json()
    # one snapshot per elapsed second (creation counts as the first), ticks every 0.1 s
    assert 3 <= len(before["at"]) <= 5, before["at"]
    assert before["reason"][0] == "created" and before["arms"]["a"]["rewards"][-1] == 1
    server.kill()
    server = server_factory(db, env=env).start()
    after = httpx.get(server.url + "/v1/experiments/exp/history").json()
    assert after["at"][: len(before["at"])] == before["at"]
    time.sleep(2.5)
    later = httpx.get(server.url + "/v1/experiments/exp/history").json()
    assert len(later["at"]) >= len(before["at"]) + 1
