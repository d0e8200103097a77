"""The storage contract, run on every backend through the protocol only.

Each test gets a fresh store (an SQLite file, or a fresh PostgreSQL database);
``stores()`` opens another store object on the same database, as a second
process would.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from octobandit.errors import Conflict, NotFound
from octobandit.storage import (
    ApiKeyRecord,
    ArmRecord,
    ArmStatsDelta,
    ArmStatsRow,
    DecisionEvent,
    ExperimentRecord,
    RewardEvent,
    Snapshot,
    Storage,
)

#: floats that a text round trip or a single-precision column would change
FLOATS = [0.1 + 0.2, 1 / 3, 5e-324, 1e-310, 1.7976931348623157e308, 2.0**-30, 1e16 + 2]
T0 = 1_700_000_000.123456789

Opener = Callable[[], Storage]


@pytest.fixture(params=["sqlite", "postgresql", "postgresql+redis", "postgresql+redis-cluster"])
def stores(request: pytest.FixtureRequest, store_opener: Any) -> Any:
    """Opens store objects on one fresh database of the backend (see ``store_opener``)."""
    return store_opener(request.param)


@pytest.fixture
def store(stores: Opener) -> Storage:
    return stores()


def record(eid: str = "e1", arms: int = 3, at: float = T0) -> ExperimentRecord:
    return ExperimentRecord(
        id=eid,
        name=f"Experiment {eid} – ünïcode",
        policy={"type": "thompson", "prior": [1, 1], "nested": {"x": [1.5, None, True]}},
        reward_type="binary",
        created_at=at,
        updated_at=at,
        options={"snapshot_interval": 60, "stopping": {"auto_conclude": False}},
        last_snapshot=at,
        arms=[
            ArmRecord(
                arm_id=f"a{i}",
                payload={"color": "blue", "n": i} if i % 2 == 0 else None,
                enabled=i != 1,
                position=i,
                created_at=at,
                decisions=i * 7,
                rewards=FLOATS[i],
                reward_sum=FLOATS[i + 1],
                reward_sq_sum=FLOATS[i + 2],
                prior={"rewards": 2.0, "reward_sum": 1.0, "reward_sq_sum": 0.5} if i else None,
                ips=[FLOATS[(i + j) % len(FLOATS)] for j in range(13)] if i == 2 else None,
                shift=FLOATS[0] if i else 0.0,
            )
            for i in range(arms)
        ],
    )


def decision(i: int, eid: str = "e1", unit: str | None = None) -> DecisionEvent:
    return DecisionEvent(
        ts=T0 + i / 7,
        experiment_id=eid,
        decision_id=f"d{i:04d}",
        arm_id=f"a{i % 3}",
        propensity=FLOATS[i % len(FLOATS)] % 1 or 1 / 3,
        unit_id=unit,
        context={"x": [FLOATS[1], i]} if i % 2 else None,
        eligible=3 if i % 3 else None,
        policy=i % 4 != 0,
    )


def reward(i: int, decision_id: str | None = None, eid: str = "e1") -> RewardEvent:
    return RewardEvent(
        ts=T0 + 100 + i / 3,
        experiment_id=eid,
        arm_id=f"a{i % 3}",
        reward=FLOATS[i % len(FLOATS)],
        count=1.0 if decision_id else float(i + 2),
        decision_id=decision_id,
    )


# -- experiments and arms ----------------------------------------------------
def test_records_come_back_equal(store: Storage) -> None:
    first, second = record("e1"), record("e2", arms=2, at=T0 + 1)
    store.create_experiment(second)
    store.create_experiment(first)
    assert store.get_experiment("e1") == first
    assert store.get_experiment("missing") is None
    assert store.list_experiments() == [first, second]  # by creation time


def test_duplicates_conflict_and_missing_ones_are_not_found(store: Storage) -> None:
    store.create_experiment(record())
    with pytest.raises(Conflict):
        store.create_experiment(record(arms=1))
    with pytest.raises(Conflict):
        store.add_arm("e1", ArmRecord("a0"), T0)
    with pytest.raises(NotFound):
        store.add_arm("missing", ArmRecord("x"), T0)
    with pytest.raises(NotFound):
        store.update_experiment("missing", {"name": "x"}, T0)
    with pytest.raises(NotFound):
        store.update_arm("e1", "missing", {"enabled": False}, T0)
    with pytest.raises(NotFound):
        store.set_arm_stats("e1", ArmStatsRow("missing", 1, 1.0, 1.0, 1.0), T0)
    assert store.get_experiment("e1") == record()  # nothing of a refused change was written


def test_updates_change_fields_and_bump_the_version(store: Storage) -> None:
    store.create_experiment(record())
    store.update_experiment(
        "e1",
        {
            "name": "renamed",
            "status": "paused",
            "policy": {"type": "ucb1"},
            "options": {"snapshot_interval": 5},
            "conclusion": {"winner": "a0", "p": FLOATS[1]},
            "policy_state": b"\x00\x01\xffstate",
        },
        T0 + 1,
    )
    got = store.get_experiment("e1")
    assert got is not None
    assert (got.name, got.status, got.policy, got.options) == (
        "renamed", "paused", {"type": "ucb1"}, {"snapshot_interval": 5},
    )  # fmt: skip
    assert got.conclusion == {"winner": "a0", "p": FLOATS[1]}
    assert got.policy_state == b"\x00\x01\xffstate"
    assert (got.version, got.updated_at) == (2, T0 + 1)
    store.update_experiment("e1", {"policy_state": None}, T0 + 2)
    store.update_arm("e1", "a1", {"enabled": True, "payload": {"k": [1, 2]}}, T0 + 3)
    store.update_arm("e1", "a2", {"deleted": True}, T0 + 4)
    store.add_arm("e1", ArmRecord("new", payload="p", created_at=T0 + 5), T0 + 5)
    got = store.get_experiment("e1")
    assert got is not None and got.version == 6 and got.policy_state is None
    arms = {a.arm_id: a for a in got.arms}
    assert arms["a1"].enabled and arms["a1"].payload == {"k": [1, 2]}
    assert arms["a2"].deleted
    assert [a.arm_id for a in got.arms] == ["a0", "a1", "a2", "new"]
    assert arms["new"] == ArmRecord("new", payload="p", position=3, created_at=T0 + 5)
    with pytest.raises(ValueError):
        store.update_experiment("e1", {"id": "x"}, T0)


def test_delete_one_and_all(store: Storage) -> None:
    store.create_experiment(record("e1"))
    store.create_experiment(record("e2", at=T0 + 1))
    with store.batch() as tx:
        tx.append_decisions([decision(1, "e1"), decision(2, "e2")])
    assert store.delete_experiment("e1") is True
    assert store.delete_experiment("e1") is False
    assert [e.experiment_id for e in store.events()] == ["e2"]
    store.create_experiment(record("e1"))  # the id is free again
    assert store.delete_all() == 2
    assert store.list_experiments() == [] and list(store.events()) == []


# -- the data plane ----------------------------------------------------------
def test_a_batch_appends_events_in_order_with_exact_floats(store: Storage) -> None:
    store.create_experiment(record())
    store.create_experiment(record("e2", at=T0 + 1))
    decisions = [decision(i) for i in range(20)]
    with store.batch() as tx:
        assert tx.load_experiment("e1") == record()
        assert tx.load_experiment("missing") is None
        tx.append_decisions(decisions[:10])
        tx.append_rewards([reward(0, "d0003"), reward(1)])
    with store.batch() as tx:
        tx.append_decisions(decisions[10:])
        tx.append_decisions([decision(99, "e2")])
        tx.append_rewards([reward(2, "d0012"), reward(3)])
    events = list(store.events("e1"))
    assert [e.seq for e in events] == sorted(e.seq for e in events)
    assert [e.kind for e in events] == ["decision"] * 10 + ["reward"] * 2 + ["decision"] * 10 + [
        "reward"
    ] * 2
    logged = [e for e in events if e.kind == "decision"]
    for e, d in zip(logged, decisions, strict=True):
        assert (e.ts, e.experiment_id, e.decision_id, e.arm_id, e.propensity) == (
            d.ts, d.experiment_id, d.decision_id, d.arm_id, d.propensity,
        )  # fmt: skip
        assert (e.unit_id, e.context) == (d.unit_id, d.context)
        expected = (
            None
            if d.eligible is None
            else {"k": d.eligible, **({} if d.policy else {"policy": False})}
        )
        assert e.data == expected
    paid = [e for e in events if e.kind == "reward"]
    for e, r in zip(
        paid, [reward(0, "d0003"), reward(1), reward(2, "d0012"), reward(3)], strict=True
    ):
        assert (e.ts, e.arm_id, e.reward, e.count, e.decision_id) == (
            r.ts, r.arm_id, r.reward, r.count, r.decision_id,
        )  # fmt: skip
    every = list(store.events())
    assert len(every) == 25 and [e.seq for e in every] == sorted(e.seq for e in every)
    assert [e.experiment_id for e in every].count("e2") == 1


def test_find_decisions_knows_rewarded_ones_of_its_experiment(store: Storage) -> None:
    store.create_experiment(record())
    store.create_experiment(record("e2", at=T0 + 1))
    with store.batch() as tx:
        tx.append_decisions([decision(i) for i in range(6)] + [decision(50, "e2")])
        tx.append_rewards([reward(1, "d0001")])
    with store.batch() as tx:
        found = tx.find_decisions("e1", ["d0001", "d0002", "d0004", "d0050", "nope", "d0002"])
    assert set(found) == {"d0001", "d0002", "d0004"}  # d0050 is e2's
    assert found["d0001"].rewarded and not found["d0002"].rewarded
    d2 = decision(2)
    ref = found["d0002"]
    assert (ref.arm_id, ref.propensity, ref.eligible, ref.policy) == (
        d2.arm_id, d2.propensity, d2.eligible, d2.policy,
    )  # fmt: skip
    assert found["d0004"].policy is False and found["d0004"].eligible == 3
    assert found["d0001"].context is not None  # stored JSON, decoded on demand


def test_append_new_decisions_appends_only_ids_not_logged_anywhere(store: Storage) -> None:
    store.create_experiment(record())
    store.create_experiment(record("e2", at=T0 + 1))
    with store.batch() as tx:
        tx.append_decisions([decision(0), decision(50, "e2")])
        tx.append_rewards([reward(7, "d0007")])  # an outcome's id is not a decision's
    batch = [decision(0), decision(1), decision(50), decision(2), decision(1), decision(7)]
    with store.batch() as tx:
        appended = tx.append_new_decisions(batch)
    assert appended == {"d0001", "d0002", "d0007"}  # d0000 is logged, d0050 is e2's
    decisions = [e for e in store.events("e1") if e.kind == "decision"]
    assert [e.decision_id for e in decisions] == ["d0000", "d0001", "d0002", "d0007"]
    d1 = decision(1)
    e1 = decisions[1]
    assert (e1.ts, e1.arm_id, e1.propensity, e1.context) == (
        d1.ts,
        d1.arm_id,
        d1.propensity,
        d1.context,
    )
    with store.batch() as tx:  # again: nothing new
        assert tx.append_new_decisions(batch) == set()
    assert sum(e.kind == "decision" for e in store.events("e1")) == 4


def test_assignments_are_sticky_and_upserted(store: Storage) -> None:
    store.create_experiment(record())
    with store.batch() as tx:
        assert tx.find_assignments("e1", ["u1"]) == {}
        tx.save_assignments("e1", [("u1", "a0", FLOATS[1]), ("u2", "a1", 0.5)])
    with store.batch() as tx:
        assert tx.find_assignments("e1", ["u1", "u2", "u3", "u1"]) == {
            "u1": ("a0", FLOATS[1]),
            "u2": ("a1", 0.5),
        }
        tx.save_assignments("e1", [("u1", "a2", 0.25), ("u3", "a0", 1.0)])
        assert tx.find_assignments("other", ["u1"]) == {}
    with store.batch() as tx:
        assert tx.find_assignments("e1", ["u1", "u3"]) == {"u1": ("a2", 0.25), "u3": ("a0", 1.0)}


def test_arm_stats_are_added_exactly_and_policy_state_written(store: Storage) -> None:
    """Deltas add to what the store holds (IEEE double sums, in the order documented
    on ArmStatsDelta); the first one sets the arm's shift; a delta about another shift
    has its squares re-centred onto the stored one."""
    empty = [ArmRecord(f"a{i}", position=i, created_at=T0) for i in range(3)]
    store.create_experiment(dataclasses.replace(record(), arms=empty))
    ips = list(FLOATS * 2)[:13]
    first = [
        ArmStatsDelta("a0", 12345678901, FLOATS[0], FLOATS[1], FLOATS[2], ips, 0.7, FLOATS[5]),
        ArmStatsDelta("a2", 3, 1e-310, 2.0**-30, 1 / 3, None, FLOATS[6], 0.0),
    ]
    with store.batch() as tx:
        tx.add_arm_stats("e1", first)
        tx.write_policy_state("e1", bytes(range(256)))
    got = store.get_experiment("e1")
    assert got is not None and got.policy_state == bytes(range(256))
    arms = {a.arm_id: a for a in got.arms}
    for d in first:
        arm = arms[d.arm_id]
        assert (arm.decisions, arm.rewards, arm.reward_sum, arm.reward_sq_sum) == (
            d.decisions, d.rewards, d.reward_sum, d.reward_sq_sum,
        )  # fmt: skip
        assert (arm.ips, arm.shift) == (d.ips, d.shift)
    assert arms["a1"] == empty[1]  # untouched
    same = ArmStatsDelta("a0", 2, 2.5, 1.75, 0.5, [1.0] * 13, 0.7, 0.25)
    moved = ArmStatsDelta("a0", 1, 3.0, 4.5, 0.125, None, 1.3, -0.5)
    with store.batch() as tx:
        tx.add_arm_stats("e1", [same])
    with store.batch() as tx:
        tx.add_arm_stats("e1", [moved])
    a0 = {a.arm_id: a for a in store.get_experiment("e1").arms}["a0"]  # type: ignore[union-attr]
    first_a0 = first[0]
    assert a0.decisions == 12345678901 + 2 + 1
    assert a0.rewards == (first_a0.rewards + same.rewards) + moved.rewards
    assert a0.reward_sum == (first_a0.reward_sum + same.reward_sum) + moved.reward_sum
    assert a0.shift == 0.7
    ss = (first_a0.reward_sq_sum + same.reward_sq_sum) + 0.0 + 0.0
    gap = moved.shift - 0.7
    ss = ss + moved.reward_sq_sum + 2 * gap * moved.centred_sum + moved.rewards * gap * gap
    assert a0.reward_sq_sum == ss
    assert a0.ips == [x + 1.0 for x in list(FLOATS * 2)[:13]]
    with store.batch() as tx:
        tx.write_policy_state("e1", None)
    got = store.get_experiment("e1")
    assert got is not None and got.policy_state is None


def test_a_savepoint_that_raises_undoes_only_its_own_writes(store: Storage) -> None:
    store.create_experiment(record())
    with store.batch() as tx:
        tx.append_decisions([decision(1)])
        with pytest.raises(ValueError), tx.savepoint():
            tx.append_decisions([decision(2)])
            tx.write_policy_state("e1", b"gone")
            raise ValueError("one experiment's fault")
        with pytest.raises(Exception), tx.savepoint():  # noqa: B017 (the driver's own error)
            tx.append_decisions([decision(1)])  # a duplicate decision id: the database refuses
        with tx.savepoint():
            tx.append_decisions([decision(3)])
    assert [e.decision_id for e in store.events()] == ["d0001", "d0003"]
    got = store.get_experiment("e1")
    assert got is not None and got.policy_state is None


def test_a_batch_that_raises_writes_nothing(store: Storage) -> None:
    store.create_experiment(record())
    with pytest.raises(RuntimeError), store.batch() as tx:
        tx.append_decisions([decision(1)])
        tx.append_rewards([reward(1)])
        tx.save_assignments("e1", [("u", "a0", 1.0)])
        tx.add_arm_stats("e1", [ArmStatsDelta("a0", 9, 9.0, 9.0, 9.0)])
        raise RuntimeError("boom")
    assert list(store.events()) == []
    assert store.get_experiment("e1") == record()
    with store.batch() as tx:
        assert tx.find_assignments("e1", ["u"]) == {}


# -- control-plane writes that log -------------------------------------------
def test_reset_zeroes_statistics_and_logs_a_marker(store: Storage) -> None:
    store.create_experiment(record())
    with store.batch() as tx:
        tx.append_decisions([decision(1, unit="u")])
        tx.save_assignments("e1", [("u", "a1", 0.5)])
        tx.write_policy_state("e1", b"s")
    store.reset_experiment("e1", T0 + 9)
    got = store.get_experiment("e1")
    assert got is not None and got.version == 2 and got.updated_at == T0 + 9
    assert got.policy_state is None
    for arm, before in zip(got.arms, record().arms, strict=True):
        assert (arm.decisions, arm.rewards, arm.reward_sum, arm.reward_sq_sum) == (0, 0, 0, 0)
        assert (arm.ips, arm.shift) == (None, 0.0)
        assert (arm.prior, arm.payload, arm.enabled) == (
            before.prior,
            before.payload,
            before.enabled,
        )
    last = list(store.events("e1"))[-1]
    assert (last.kind, last.ts, last.arm_id, last.decision_id) == ("reset", T0 + 9, None, None)
    with store.batch() as tx:
        assert tx.find_assignments("e1", ["u"]) == {}
    with pytest.raises(NotFound):
        store.reset_experiment("missing", T0)


def test_set_arm_stats_overwrites_one_arm_and_logs_it(store: Storage) -> None:
    store.create_experiment(record())
    row = ArmStatsRow("a2", 7, FLOATS[1], FLOATS[0], FLOATS[3], [1.0] * 13, FLOATS[5])
    store.set_arm_stats("e1", row, T0 + 3)
    got = store.get_experiment("e1")
    assert got is not None and got.version == 2
    arm = got.arms[2]
    assert (arm.decisions, arm.rewards, arm.reward_sum, arm.reward_sq_sum, arm.shift) == (
        7, FLOATS[1], FLOATS[0], FLOATS[3], FLOATS[5],
    )  # fmt: skip
    assert arm.ips is None  # an admin overwrite drops the importance-weighted sums
    (event,) = store.events("e1")
    assert (event.kind, event.arm_id, event.ts) == ("set_stats", "a2", T0 + 3)
    assert event.data == {
        "decisions": 7, "rewards": FLOATS[1], "reward_sum": FLOATS[0],
        "reward_sq_sum": FLOATS[3], "shift": FLOATS[5],
    }  # fmt: skip


def test_conclude(store: Storage) -> None:
    store.create_experiment(record())
    store.conclude("e1", {"winner": "a0", "at": "now", "prob_best": FLOATS[1]}, T0 + 4)
    got = store.get_experiment("e1")
    assert got is not None
    assert (got.status, got.version, got.updated_at) == ("concluded", 2, T0 + 4)
    assert got.conclusion == {"winner": "a0", "at": "now", "prob_best": FLOATS[1]}
    with pytest.raises(NotFound):
        store.conclude("missing", {}, T0)


# -- snapshots ----------------------------------------------------------------
def test_interval_snapshots_are_taken_once_by_racing_stores(stores: Opener) -> None:
    a, b = stores(), stores()
    a.create_experiment(record())  # snapshot_interval 60, last snapshot at T0
    a.create_experiment(record("e2", at=T0 + 1))
    a.update_experiment("e2", {"options": {}}, T0 + 1)  # the default interval: 300 s
    assert a.due_for_snapshot(T0 + 59) == []
    assert [r.id for r in b.due_for_snapshot(T0 + 60)] == ["e1"]
    assert [r.id for r in b.due_for_snapshot(T0 + 301)] == ["e1", "e2"]
    now = T0 + 61
    assert a.add_snapshot(Snapshot("e1", now, "interval", {"x": FLOATS[1]})) is True
    assert b.add_snapshot(Snapshot("e1", now, "interval", {"x": 2})) is False  # taken already
    assert a.due_for_snapshot(now) == []
    got = b.get_experiment("e1")
    assert got is not None and got.last_snapshot == now
    assert b.add_snapshot(Snapshot("e1", now + 1, "conclusion", {"y": [1, None]})) is True
    assert b.add_snapshot(Snapshot("e1", now + 60, "interval", {"z": 3})) is False
    assert b.add_snapshot(Snapshot("e1", now + 62, "interval", {"z": 4})) is True
    assert a.snapshots("e1") == [
        Snapshot("e1", now, "interval", {"x": FLOATS[1]}),
        Snapshot("e1", now + 1, "conclusion", {"y": [1, None]}),
        Snapshot("e1", now + 62, "interval", {"z": 4}),
    ]
    assert [s.ts for s in a.snapshots("e1", limit=2)] == [now + 1, now + 62]
    assert a.snapshots("e2") == []


# -- several store objects on one database ------------------------------------
def test_others_wrote_tells_whether_another_store_committed(stores: Opener) -> None:
    a, b = stores(), stores()
    with a.batch() as tx:  # whatever came before (b's opening) is consumed here
        tx.others_wrote()
    with a.batch() as tx:
        assert tx.others_wrote() is False
    a.create_experiment(record())  # its own control-plane write
    with a.batch() as tx:
        assert tx.others_wrote() is False
        tx.append_decisions([decision(1)])
    with b.batch() as tx:
        assert tx.others_wrote() is True  # a wrote
        tx.append_decisions([decision(2)])
    with b.batch() as tx:
        assert tx.others_wrote() is False
    with a.batch() as tx:
        assert tx.others_wrote() is True
        assert tx.load_experiment("e1") is not None
    with a.batch() as tx:
        assert tx.others_wrote() is False
    assert [e.decision_id for e in b.events()] == ["d0001", "d0002"]


def test_health_is_none_while_writes_work(store: Storage) -> None:
    assert store.health() is None
    store.create_experiment(record())
    assert store.health() is None


def _log_for_pages(store: Storage) -> list[int]:
    """e1: 20 decisions, 2 rewards, a reset, 4 more decisions; e2 interleaved. The e1 seqs."""
    store.create_experiment(record())
    store.create_experiment(record("e2", at=T0 + 1))
    with store.batch() as tx:
        tx.append_decisions([decision(i) for i in range(10)])
        tx.append_decisions([decision(90, "e2")])
        tx.append_rewards([reward(0, "d0003"), reward(1)])
    with store.batch() as tx:
        tx.append_decisions([decision(i) for i in range(10, 20)])
    store.reset_experiment("e1", T0 + 50)
    with store.batch() as tx:
        tx.append_decisions([decision(i) for i in range(20, 24)])
        tx.append_decisions([decision(91, "e2")])
    return [e.seq for e in store.events("e1")]


def test_events_page_reads_the_log_in_pages_of_seq_order(store: Storage) -> None:
    seqs = _log_for_pages(store)
    assert len(seqs) == 27
    every = list(store.events("e1"))
    for limit in (1, 4, 26, 27, 28, 10_000):
        got, after = [], 0
        while True:
            page = store.events_page("e1", after=after, limit=limit)
            assert len(page) <= limit
            got.extend(page)
            if len(page) < limit:
                break
            after = page[-1].seq
        assert got == every  # each event exactly once, equal to the full read
    assert store.events_page("e1", limit=5) == every[:5]
    assert store.events_page("e1", after=seqs[-1], limit=5) == []
    assert store.events_page("e1", after=seqs[10], limit=3) == every[11:14]
    assert store.events_page("e1", after=seqs[-1] + 10**6, limit=5) == []
    assert store.events_page("e1", limit=0) == []
    assert store.events_page("missing", limit=5) == []
    assert [e.experiment_id for e in store.events_page("e2", limit=10)] == ["e2", "e2"]


def test_events_page_filters_by_kind_and_time(store: Storage) -> None:
    _log_for_pages(store)
    every = list(store.events("e1"))
    rewards = store.events_page("e1", limit=100, kinds=["reward"])
    assert [e.decision_id for e in rewards] == ["d0003", None]
    both = store.events_page("e1", limit=100, kinds=("reward", "reset"))
    assert [e.kind for e in both] == ["reward", "reward", "reset"]
    assert store.events_page("e1", limit=100, kinds=[]) == []
    assert store.events_page("e1", limit=100, kinds=["late"]) == []
    # paging through a filter: the cursor is the last seq returned
    first = store.events_page("e1", limit=2, kinds=["decision"])
    rest = store.events_page("e1", after=first[-1].seq, limit=100, kinds=["decision"])
    assert [e.decision_id for e in first + rest] == [f"d{i:04d}" for i in range(24)]
    # since <= ts < until, exactly on the stored floats
    t5 = decision(5).ts
    window = store.events_page("e1", limit=100, kinds=["decision"], since=t5, until=decision(8).ts)
    assert [e.decision_id for e in window] == ["d0005", "d0006", "d0007"]
    assert store.events_page("e1", limit=100, since=T0 + 50) == [
        e for e in every if e.ts >= T0 + 50
    ]
    assert store.events_page("e1", limit=100, until=T0) == []
    assert store.events_page("e1", limit=100, since=T0 + 1e6) == []
    assert store.events_page("e1", limit=100, since=t5, until=t5) == []


# -- API keys -------------------------------------------------------------------
def api_key(i: int, **changes: Any) -> ApiKeyRecord:
    fields: dict[str, Any] = {
        "id": f"k{i}",
        "prefix": f"ob_{i:04d}",
        "hash": f"{i:064x}",
        "name": f"key {i} – ünïcode",
        "scopes": ("read", "decide"),
        "experiments": ("e1", "e2") if i % 2 else None,
        "created_at": T0 + i,
        "expires_at": T0 + FLOATS[1] if i % 3 == 0 else None,
    }
    fields.update(changes)
    return ApiKeyRecord(**fields)


def test_api_keys_come_back_equal_and_are_seen_by_another_store(stores: Opener) -> None:
    first, second = stores(), stores()
    keys = [api_key(i) for i in (2, 0, 1)]
    for key in keys:
        first.add_api_key(key)
    by_age = sorted(keys, key=lambda k: k.created_at)
    assert first.api_keys() == by_age
    assert second.api_keys() == by_age  # another process sees them


def test_an_api_key_id_or_hash_is_stored_once(store: Storage) -> None:
    store.add_api_key(api_key(1))
    with pytest.raises(Conflict):
        store.add_api_key(api_key(2, id="k1"))
    with pytest.raises(Conflict):
        store.add_api_key(api_key(2, hash=api_key(1).hash))
    assert [k.id for k in store.api_keys()] == ["k1"]


def test_revoking_an_api_key_keeps_it_marked_with_its_first_revocation(stores: Opener) -> None:
    store = stores()
    store.add_api_key(api_key(1))
    store.add_api_key(api_key(2))
    assert store.revoke_api_key("k1", T0 + 10) is True
    assert store.revoke_api_key("k1", T0 + 20) is True  # again: the first time stays
    assert store.revoke_api_key("missing", T0) is False
    revoked = {k.id: k.revoked_at for k in stores().api_keys()}
    assert revoked == {"k1": T0 + 10, "k2": None}
