"""Arm statistics are written as increments: two writers add up, never overwrite."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from octobandit.engine import Engine
from octobandit.engine.ops import DecideOp, RewardItem, RewardOp
from octobandit.storage import SQLiteStorage
from octobandit.storage.base import ArmRecord, ArmStatsDelta, ExperimentRecord, add_ips

U = 2.0**-53  # unit roundoff of float64


def _delta(arm: str, xs: list[float], shift: float) -> ArmStatsDelta:
    return ArmStatsDelta(
        arm,
        decisions=len(xs),
        rewards=float(len(xs)),
        reward_sum=math.fsum(xs),
        reward_sq_sum=math.fsum((x - shift) ** 2 for x in xs),
        shift=shift,
        centred_sum=math.fsum(x - shift for x in xs),
    )


def test_deltas_with_different_shifts_add_up_about_the_stored_shift(tmp_path: Path) -> None:
    """Two writers chose different shifts (each its first reward): the store keeps the
    first writer's and re-centres the second's squares; the result equals the squares
    computed directly about that shift, within the rounding of the sums involved."""
    store = SQLiteStorage(str(tmp_path / "d.db"))
    store.create_experiment(
        ExperimentRecord("e", "e", {"type": "thompson"}, "continuous", arms=[ArmRecord("a")])
    )
    rng = np.random.default_rng(7)
    first = [float(x) for x in rng.normal(1e6, 3.0, 400)]
    second = [float(x) for x in rng.normal(1e6, 3.0, 300)]
    with store.batch() as tx:
        tx.add_arm_stats("e", [_delta("a", first, first[0])])
    with store.batch() as tx:  # another engine, whose own first reward was second[0]
        tx.add_arm_stats("e", [_delta("a", second, second[0])])
    arm = store.get_experiment("e").arms[0]  # type: ignore[union-attr]
    xs = first + second
    assert arm.decisions == 700 and arm.rewards == 700.0
    assert arm.shift == first[0]
    assert abs(arm.reward_sum - math.fsum(xs)) <= 4 * len(xs) * U * math.fsum(map(abs, xs))
    direct = math.fsum((x - arm.shift) ** 2 for x in xs)
    # the re-centring terms are of size n·(c - c')² and 2|c - c'|·|Σ(x - c)|: bound their
    # rounding by a few ulps of the largest of them, plus the sums' own rounding
    moved = abs(second[0] - first[0])
    scale = direct + 300 * moved**2 + 2 * moved * abs(math.fsum(x - second[0] for x in second))
    assert abs(arm.reward_sq_sum - direct) <= 8 * len(xs) * U * scale
    store.close()


def test_the_ips_sums_add_up_and_an_older_short_row_is_padded() -> None:
    assert add_ips(None, [1.0] * 13) == [1.0] * 13
    assert add_ips([2.0] * 6, [1.0] * 13) == [3.0] * 6 + [1.0] * 7
    assert add_ips([2.0] * 13, None) == [2.0] * 13


def test_two_engines_on_one_store_never_lose_each_others_counts(tmp_path: Path) -> None:
    """Interleaved groups of two engines (two stores on one file): every decision and
    reward of both is counted, whatever each engine had cached."""
    path = str(tmp_path / "two.db")
    one, two = Engine(SQLiteStorage(path), seed=1), Engine(SQLiteStorage(path), seed=2)
    one.create_experiment({"id": "e", "arms": [{"id": "a"}, {"id": "b"}]})
    made = {"a": 0, "b": 0}
    rewarded = {"a": 0.0, "b": 0.0}
    for step in range(60):
        engine = one if step % 2 else two
        decisions = engine.execute([DecideOp("e") for _ in range(5)])
        for d in decisions:
            made[d["arm_id"]] += 1
        items = [RewardItem(1.0, decision_id=d["decision_id"]) for d in decisions[:3]]
        items.append(RewardItem(0.5, arm_id="b", count=2))
        engine.execute([RewardOp("e", items)])
        for d in decisions[:3]:
            rewarded[d["arm_id"]] += 1.0
        rewarded["b"] += 1.0
    stats = {arm["arm_id"]: arm for arm in one.stats("e")["arms"]}
    assert {a: stats[a]["decisions"] for a in made} == made
    assert {a: stats[a]["reward_sum"] for a in rewarded} == rewarded
    one.storage.close()
    two.storage.close()


def test_an_engine_refreshes_what_another_one_changed(tmp_path: Path) -> None:
    """After another engine wrote, the cached statistics are re-read in place (the cached
    state is kept); a changed setup (a disabled arm) rebuilds it: never served again."""
    path = str(tmp_path / "refresh.db")
    one, two = Engine(SQLiteStorage(path), seed=3), Engine(SQLiteStorage(path), seed=4)
    one.create_experiment({"id": "e", "arms": [{"id": "a"}, {"id": "b"}, {"id": "c"}]})
    one.execute([DecideOp("e")])
    cached = one._live["e"]
    two.execute([RewardOp("e", [RewardItem(1.0, arm_id="a", count=7)])])
    one.execute([DecideOp("e")])
    assert one._live["e"] is cached  # refreshed in place
    assert cached.n.tolist()[0] == 7.0 and cached.s.tolist()[0] == 7.0
    two.update_arm("e", "b", {"enabled": False})
    served = {d["arm_id"] for d in one.execute([DecideOp("e") for _ in range(60)])}
    assert one._live["e"] is not cached and "b" not in served
    one.storage.close()
    two.storage.close()
