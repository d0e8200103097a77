"""The engine on PostgreSQL + Redis when Redis loses state: flushed, restarted empty,
a write missed between the commit and its apply, a shard's keys gone, or Redis dropped
from the deployment. Each time the state comes back equal to the fold of the log,
nothing counted twice, and sticky units keep their arms."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import redis
from test_event_log import agrees_with_fold, fold, stored_row

from octobandit.engine import DecideOp, Engine, RewardItem, RewardOp
from octobandit.errors import StorageUnavailable
from octobandit.storage import Storage, open_store

ARMS = [{"id": f"arm{i}"} for i in range(3)]
MEANS = [0.2, 0.5, 0.7]


class Run:
    """An engine on a store, driven by a seeded random workload."""

    def __init__(self, store: Storage, seed: int = 1) -> None:
        self.engine = Engine(store, seed=seed)
        self.rng = np.random.default_rng(seed)
        self.pending: list[tuple[str, str, str]] = []
        self.units: dict[str, str] = {}  # unit -> arm first served

    def create(self) -> None:
        for exp_id, policy in (("ts", {"type": "thompson"}), ("eg", {"type": "epsilon_greedy"})):
            self.engine.create_experiment({"id": exp_id, "policy": policy, "arms": ARMS})

    def step(self, n: int = 20) -> None:
        ops: list[Any] = []
        for _ in range(n):
            exp_id = "ts" if self.rng.random() < 0.5 else "eg"
            unit = f"user-{int(self.rng.integers(5))}" if self.rng.random() < 0.2 else None
            ops.append(DecideOp(exp_id, unit_id=unit))
        rewards, self.pending = self.pending[::2], self.pending[1::2]
        for exp_id, decision_id, arm in rewards:
            value = float(self.rng.random() < MEANS[int(arm[-1])])
            ops.append(RewardOp(exp_id, [RewardItem(value, decision_id=decision_id)]))
        ops.append(RewardOp("eg", [RewardItem(1.0, arm_id="arm1", count=3)]))
        for op, result in zip(ops, self.engine.execute(ops), strict=True):
            assert not isinstance(result, BaseException), result
            if isinstance(op, DecideOp):
                self.pending.append((op.experiment_id, result["decision_id"], result["arm_id"]))
                if op.unit_id is not None:
                    key = f"{op.experiment_id}/{op.unit_id}"
                    assert self.units.setdefault(key, result["arm_id"]) == result["arm_id"]

    def check(self, store: Storage | None = None) -> None:
        """Every arm's statistics agree with the fold of the log (counts exactly)."""
        store = store or self.engine.storage
        events = list(store.events())
        folded, sizes = fold(events), fold(events, magnitude=True)
        terms = sum(1 for e in events if e.kind == "reward")
        for exp_id in ("ts", "eg"):
            record = store.get_experiment(exp_id)
            assert record is not None
            for arm in record.arms:
                key = (exp_id, arm.arm_id)
                assert agrees_with_fold(folded[key], sizes[key], stored_row(arm), terms), key


@pytest.fixture
def run(postgres_url: str, private_redis: Any) -> Iterator[Run]:
    store = open_store(postgres_url, state=private_redis.url)
    yield Run(store)
    store.close()


def test_a_flushed_redis_is_rebuilt_from_the_log(run: Run, private_redis: Any) -> None:
    run.create()
    for _ in range(10):
        run.step()
    client = redis.Redis.from_url(private_redis.url)
    client.flushall()
    run.check()  # a read finds the state gone and rebuilds it
    for _ in range(5):
        run.step()
    client.flushall()
    for _ in range(5):  # a write finds it gone (the marker too) and rebuilds first
        run.step()
    run.engine.reset("eg")
    run.units = {k: v for k, v in run.units.items() if not k.startswith("eg/")}
    run.pending = [p for p in run.pending if p[0] != "ts"]
    run.step()
    client.flushall()
    run.check()
    client.close()


def test_a_redis_restart_refuses_writes_then_recovers(run: Run, private_redis: Any) -> None:
    run.create()
    for _ in range(5):
        run.step()
    logged = len(list(run.engine.storage.events()))
    private_redis.stop()
    with pytest.raises(StorageUnavailable) as refused:
        run.step()
    assert refused.value.code == "state_unavailable"
    assert "Redis" in refused.value.message and "nothing was written" in refused.value.message
    assert len(list(run.engine.storage.events())) == logged  # the refused write left nothing
    private_redis.start()  # back, and empty
    run.pending = []  # the refused decisions were never made
    for _ in range(5):
        run.step()
    run.check()


def test_a_write_missed_after_its_commit_is_rebuilt_once(
    run: Run, postgres_url: str, private_redis: Any
) -> None:
    """A replica that dies between its commit and its apply: the events are logged,
    Redis missed them; the next writer (another replica) rebuilds, counting them once."""
    run.create()
    run.step()
    store: Any = run.engine.storage
    real_apply = store.state.apply
    calls = 0

    def dies(*args: Any, **kwargs: Any) -> bool:
        nonlocal calls
        calls += 1
        raise StorageUnavailable("simulated: the replica died before its apply")

    store.state.apply = dies
    run.step()  # acknowledged: its events are committed
    store.state.apply = real_apply
    assert calls > 0
    other = Run(open_store(postgres_url, state=private_redis.url), seed=5)
    other.step()  # another replica's write
    other.engine.storage.close()
    run.step()
    run.check()


def test_lost_keys_of_one_experiment_are_rebuilt_when_read(run: Run) -> None:
    """A cluster shard restarted empty loses the experiments it held (the marker may
    live elsewhere): the experiment's own completeness flag tells."""
    run.create()
    for _ in range(5):
        run.step()
    store: Any = run.engine.storage
    store.state.client.delete(*store.state.keys("ts"))
    run.check()
    store.state.client.delete(*store.state.keys("eg"))
    run.step()
    run.check()


def test_dropping_redis_folds_the_log_back_into_postgres(
    postgres_url: str, private_redis: Any
) -> None:
    with_redis = open_store(postgres_url, state=private_redis.url)
    run = Run(with_redis)
    run.create()
    for _ in range(8):
        run.step()
    with_redis.close()
    alone = open_store(postgres_url)
    try:
        run.check(alone)
        again = Run(alone, seed=9)
        again.units = run.units
        again.pending = run.pending
        for _ in range(3):
            again.step()  # sticky units keep the arms Redis held
        again.check()
    finally:
        alone.close()


def test_a_stale_redis_is_caught_by_the_marker(run: Run) -> None:
    """Redis restored from an older snapshot: behind the log's version, rebuilt."""
    run.create()
    for _ in range(4):
        run.step()
    store: Any = run.engine.storage
    store.state.set_marker(store.state.marker() - 3)
    arms_key = store.state.keys("ts")[0]
    store.state.client.hset(arms_key, "d|arm0", 999_999)
    run.step()
    run.check()


def test_adding_redis_to_a_postgresql_store_counts_nothing_twice(
    postgres_url: str, private_redis: Any
) -> None:
    """A store run without Redis, then with it: the state Redis starts from is the same
    statistics, not those plus the log again; and back without Redis, still the same."""
    from octobandit.model import ArmRecord, ArmStatsDelta, ExperimentRecord

    alone = open_store(postgres_url)
    run = Run(alone)
    run.create()
    for _ in range(6):
        run.step()
    # an arm created with statistics of its own (store level: an import, say)
    seeded = ArmRecord("s", decisions=4, rewards=3.0, reward_sum=2.0, reward_sq_sum=0.75,
                       shift=1.0, created_at=1.0)  # fmt: skip
    alone.create_experiment(ExperimentRecord("imported", "I", {"type": "thompson"}, "binary",
                                             arms=[seeded]))  # fmt: skip
    with alone.batch() as tx:
        tx.add_arm_stats("imported", [ArmStatsDelta("s", 2, 2.0, 1.0, 0.5, shift=0.5)])
    logged = run.engine.execute(  # and logged events on top of its own statistics
        [DecideOp("imported"), RewardOp("imported", [RewardItem(0.25, arm_id="s", count=3)])]
    )
    assert not any(isinstance(r, BaseException) for r in logged), logged
    before = {e: alone.get_experiment(e) for e in ("ts", "eg", "imported")}
    alone.close()
    for state in (private_redis.url, None):  # to Redis, and back
        store = open_store(postgres_url, state=state)
        try:
            for exp_id, record in before.items():
                got = store.get_experiment(exp_id)
                assert got is not None and record is not None
                for arm, was in zip(got.arms, record.arms, strict=True):
                    assert (arm.decisions, arm.rewards) == (was.decisions, was.rewards), exp_id
                    assert arm.reward_sum == pytest.approx(was.reward_sum, rel=1e-12)
                    assert arm.reward_sq_sum == pytest.approx(was.reward_sq_sum, rel=1e-9, abs=1e-9)
        finally:
            store.close()
