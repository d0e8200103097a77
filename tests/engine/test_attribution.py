"""Attribution windows: a decision never rewarded gets the default once its window
closes, late rewards are refused and counted, ``sum`` adds a decision's rewards up,
and settlement is exactly once across engines and restarts, on every backend."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from test_event_log import agrees_with_fold, fold, stored_row

from octobandit.engine import Engine, RewardItem
from octobandit.errors import InvalidInput
from octobandit.storage import Storage

BACKENDS = ["sqlite", "postgresql", "postgresql+redis"]
WINDOW = 100.0
MEANS = {"a": 0.1, "b": 0.3, "c": 0.6}


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture(params=BACKENDS)
def opener(
    request: pytest.FixtureRequest, store_opener: Callable[[str], Callable[[], Storage]]
) -> Callable[[], Storage]:
    return store_opener(request.param)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def engine(opener: Callable[[], Storage], clock: Clock) -> Iterator[Engine]:
    yield Engine(opener(), seed=3, clock=clock)


def windowed(engine: Engine, exp_id: str = "w", **reward: Any) -> None:
    engine.create_experiment(
        {
            "id": exp_id,
            "policy": {"type": "thompson"},
            "arms": [{"id": a} for a in MEANS],
            "reward": {"attribution_window": WINDOW, **reward},
        }
    )


def outcomes(store: Storage, exp_id: str) -> Counter[str]:
    """How many outcome events (``reward`` or ``default``) each decision has."""
    return Counter(
        e.decision_id or ""
        for e in store.events(exp_id)
        if e.kind in ("reward", "default") and e.decision_id is not None
    )


def check_fold(store: Storage, exp_id: str) -> None:
    events = list(store.events(exp_id))
    folded, sizes = fold(events), fold(events, magnitude=True)
    record = store.get_experiment(exp_id)
    assert record is not None
    for arm in record.arms:
        key = (exp_id, arm.arm_id)
        assert agrees_with_fold(folded[key], sizes[key], stored_row(arm), len(events))


def test_positives_only_with_a_window_counts_every_decision_once(
    engine: Engine, clock: Clock
) -> None:
    """Only conversions are reported; after the windows close each arm has exactly as many
    trials as decisions and as many successes as conversions."""
    windowed(engine)
    rng = np.random.default_rng(11)
    decided: Counter[str] = Counter()
    converted: Counter[str] = Counter()
    for _ in range(30):  # 30 rounds of 20 decisions, 2 s apart: 60 s of traffic
        for _ in range(20):
            d = engine.decide("w")
            decided[d["arm_id"]] += 1
            if rng.random() < MEANS[d["arm_id"]]:
                converted[d["arm_id"]] += 1
                result = engine.reward("w", [RewardItem(1.0, decision_id=d["decision_id"])])
                assert (result.accepted, result.late) == (1, 0)
        clock.t += 2
        engine.tick()
    stats = engine.stats("w")
    # every decision is pending or counted, never both
    for arm in stats["arms"]:
        assert arm["pending"] == arm["decisions"] - arm["rewards"]
    assert stats["pending_decisions"] > 0
    clock.t += WINDOW + 1
    engine.tick()
    stats = engine.stats("w")
    assert stats["pending_decisions"] == 0
    by_arm = {a["arm_id"]: a for a in stats["arms"]}
    for arm_id in MEANS:
        assert by_arm[arm_id]["decisions"] == decided[arm_id]
        assert by_arm[arm_id]["rewards"] == decided[arm_id]
        assert by_arm[arm_id]["reward_sum"] == converted[arm_id]
        assert by_arm[arm_id]["pending"] == 0
    counts = outcomes(engine.storage, "w")
    assert len(counts) == sum(decided.values()) and set(counts.values()) == {1}
    kinds = Counter(e.kind for e in engine.storage.events("w"))
    assert kinds["default"] == sum(decided.values()) - sum(converted.values())
    check_fold(engine.storage, "w")
    engine.tick()  # nothing left to settle: nothing changes
    assert engine.stats("w") == stats


def test_pending_decisions_count_neither_way(engine: Engine, clock: Clock) -> None:
    """While windows are open, nothing of them is counted: not their failures, and not
    their successes either (counting successes on arrival and failures at the close
    would inflate the arms being played); everything is counted at the close."""
    windowed(engine)
    ids = [engine.decide("w")["decision_id"] for _ in range(50)]
    assert engine.reward("w", [RewardItem(1.0, decision_id=ids[0])]).accepted == 1
    clock.t += WINDOW / 2
    engine.tick()
    stats = engine.stats("w")
    assert sum(a["rewards"] for a in stats["arms"]) == 0
    assert stats["pending_decisions"] == 50
    # what the pending decisions have received so far, shown apart
    assert sum(a["pending_reward_sum"] for a in stats["arms"]) == 1.0
    live = engine._live["w"]
    assert live.n.sum() == 0 and live.s.sum() == 0
    clock.t += WINDOW
    engine.tick()
    assert live.n.sum() == 50 and live.s.sum() == 1
    stats = engine.stats("w")
    assert stats["pending_decisions"] == 0
    assert sum(a["pending_reward_sum"] for a in stats["arms"]) == 0.0


def test_late_rewards_are_refused_and_counted(engine: Engine, clock: Clock) -> None:
    windowed(engine)
    first = engine.decide("w")["decision_id"]
    clock.t += WINDOW  # the window is [t, t + WINDOW): closed now, not settled yet
    second = engine.decide("w")["decision_id"]
    result = engine.reward(
        "w", [RewardItem(1.0, decision_id=first), RewardItem(1.0, decision_id=second)]
    )
    assert (result.accepted, result.duplicates, result.late) == (1, 0, 1)
    again = engine.reward("w", [RewardItem(1.0, decision_id=second)])
    assert (again.accepted, again.duplicates, again.late) == (0, 1, 0)
    clock.t += 1
    engine.tick()  # the first decision gets its default 0; the second is pending
    result = engine.reward("w", [RewardItem(1.0, decision_id=first)])
    assert (result.accepted, result.late) == (0, 1)
    kinds = Counter(e.kind for e in engine.storage.events("w"))
    assert kinds == {"decision": 2, "part": 1, "default": 1, "late": 2}
    assert sum(a["rewards"] for a in engine.stats("w")["arms"]) == 1
    clock.t += WINDOW
    engine.tick()  # the second decision's window closes: its reward is its outcome
    kinds = Counter(e.kind for e in engine.storage.events("w"))
    assert kinds == {"decision": 2, "part": 1, "reward": 1, "default": 1, "late": 2}
    stats = engine.stats("w")
    assert sum(a["rewards"] for a in stats["arms"]) == 2
    assert sum(a["reward_sum"] for a in stats["arms"]) == 1.0
    check_fold(engine.storage, "w")


def test_a_settled_decision_is_late_even_if_this_clock_is_behind(
    opener: Callable[[], Storage],
) -> None:
    """A replica whose clock lags still refuses a reward for a decision another replica
    has settled: the watermark decides, not only the clock."""
    ahead, behind = Clock(), Clock()
    one, two = Engine(opener(), seed=1, clock=ahead), Engine(opener(), seed=2, clock=behind)
    windowed(one)
    d = one.decide("w")["decision_id"]
    ahead.t += WINDOW + 1
    behind.t += WINDOW - 10  # by its own clock the window is still open
    one.tick()
    result = two.reward("w", [RewardItem(1.0, decision_id=d)])
    assert (result.accepted, result.late) == (0, 1)


def test_sum_aggregation_adds_rewards_up_within_the_window(engine: Engine, clock: Clock) -> None:
    engine.create_experiment(
        {
            "id": "rev",
            "arms": [{"id": "a"}],
            "reward": {
                "type": "continuous",
                "attribution_window": WINDOW,
                "aggregation": "sum",
                "default": 0.0,
            },
        }
    )
    ids = [engine.decide("rev")["decision_id"] for _ in range(4)]
    parts = {ids[0]: [10.0, 5.5, 2.25], ids[1]: [40.0], ids[2]: []}
    for d, values in parts.items():
        for v in values:
            result = engine.reward("rev", [RewardItem(v, decision_id=d)])
            assert (result.accepted, result.duplicates, result.late) == (1, 0, 0)
    # parts are not counted while the window is open
    assert engine.stats("rev")["arms"][0]["rewards"] == 0
    assert engine.stats("rev")["pending_decisions"] == 4
    clock.t += WINDOW / 2
    engine.reward("rev", [RewardItem(1.0, decision_id=ids[3])])
    clock.t += WINDOW / 2 + 1
    late = engine.reward("rev", [RewardItem(99.0, decision_id=ids[0])])
    assert (late.accepted, late.late) == (0, 1)
    engine.tick()
    arm = engine.get_experiment("rev").arms[0]
    totals = [17.75, 40.0, 0.0, 1.0]  # the sums; a decision without a reward gets the default
    assert arm.rewards == 4 and arm.decisions == 4
    assert arm.reward_sum == pytest.approx(sum(totals), rel=1e-15)
    # the variance is of the sums: squares of the sums about the shift
    expected = sum((x - arm.shift) ** 2 for x in totals)
    assert arm.reward_sq_sum == pytest.approx(expected, rel=1e-12)
    summed = [e for e in engine.storage.events("rev") if e.kind == "reward"]
    assert sorted(e.reward or 0.0 for e in summed) == [1.0, 17.75, 40.0]
    assert {e.decision_id: e.data for e in summed}[ids[0]] == {"parts": 3}
    check_fold(engine.storage, "rev")


def test_two_engines_ticking_at_once_settle_each_decision_once(
    opener: Callable[[], Storage], clock: Clock
) -> None:
    """Two engines (two workers or replicas) on one store tick concurrently: each closed
    window gets exactly one outcome."""
    engines = [Engine(opener(), seed=s, clock=clock) for s in (1, 2)]
    windowed(engines[0])
    for e in engines:  # small chunks: many transactions, interleaved
        e.settle_chunk, e.settle_chunks = 50, 100
    ids = []
    for i in range(600):
        d = engines[i % 2].decide("w")
        ids.append(d["decision_id"])
        if i % 7 == 0:
            engines[(i + 1) % 2].reward("w", [RewardItem(1.0, decision_id=d["decision_id"])])
    clock.t += WINDOW + 1
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def tick(engine: Engine) -> None:
        try:
            barrier.wait()
            for _ in range(3):
                engine.tick()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=tick, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    counts = outcomes(engines[0].storage, "w")
    assert set(counts) == set(ids) and set(counts.values()) == {1}
    stats = engines[1].stats("w")
    assert sum(a["rewards"] for a in stats["arms"]) == 600
    assert sum(a["reward_sum"] for a in stats["arms"]) == len(range(0, 600, 7))
    check_fold(engines[0].storage, "w")


def test_windows_closed_while_down_are_settled_once_after_restart(
    opener: Callable[[], Storage], clock: Clock
) -> None:
    before = Engine(opener(), seed=1, clock=clock)
    windowed(before)
    ids = [before.decide("w")["decision_id"] for _ in range(120)]
    before.reward("w", [RewardItem(1.0, decision_id=d) for d in ids[:30]])
    before.storage.close()
    clock.t += 10 * WINDOW  # down for ten windows
    after = Engine(opener(), seed=2, clock=clock)
    after.tick()
    after.tick()
    counts = outcomes(after.storage, "w")
    assert set(counts) == set(ids) and set(counts.values()) == {1}
    stats = after.stats("w")
    assert sum(a["rewards"] for a in stats["arms"]) == 120
    assert sum(a["reward_sum"] for a in stats["arms"]) == 30


def test_a_backlog_is_settled_in_bounded_chunks(engine: Engine, clock: Clock) -> None:
    windowed(engine)
    engine.settle_chunk, engine.settle_chunks = 40, 2
    for _ in range(5):
        engine.decide("w", n=50)
    clock.t += WINDOW + 1
    assert engine.settle() == 80  # two chunks of 40 this tick
    assert engine.stats("w")["pending_decisions"] == 170
    while engine.settle():
        pass
    assert engine.stats("w")["pending_decisions"] == 0
    assert sum(outcomes(engine.storage, "w").values()) == 250


def test_a_reset_drops_pending_decisions(engine: Engine, clock: Clock) -> None:
    windowed(engine)
    engine.decide("w", n=10)
    engine.reset("w")
    fresh = engine.decide("w")["decision_id"]
    clock.t += WINDOW + 1
    engine.tick()
    counts = outcomes(engine.storage, "w")
    assert dict(counts) == {fresh: 1}
    assert sum(a["rewards"] for a in engine.stats("w")["arms"]) == 1


def test_contextual_policy_learns_from_defaults(engine: Engine, clock: Clock) -> None:
    engine.create_experiment(
        {
            "id": "ctx",
            "policy": {"type": "linucb"},
            "arms": [{"id": "x"}, {"id": "y"}],
            "context": {"features": ["f"]},
            "reward": {"attribution_window": WINDOW, "default": 0.0},
        }
    )
    d = engine.decide("ctx", context={"f": 2.0})
    before = engine.get_experiment("ctx").policy_state
    clock.t += WINDOW + 1
    engine.tick()
    record = engine.get_experiment("ctx")
    assert record.policy_state != before
    arm = next(a for a in record.arms if a.arm_id == d["arm_id"])
    assert (arm.rewards, arm.reward_sum) == (1, 0.0)


def test_windowed_experiments_take_rewards_by_decision_only(engine: Engine) -> None:
    windowed(engine)
    with pytest.raises(InvalidInput, match="attribution window takes rewards by decision_id"):
        engine.reward("w", [RewardItem(1.0, arm_id="a")])


@pytest.mark.parametrize(
    ("reward", "field"),
    [
        ({"attribution_window": 0}, "reward.attribution_window"),
        ({"attribution_window": -1}, "reward.attribution_window"),
        ({"attribution_window": True}, "reward.attribution_window"),
        ({"attribution_window": 4e7}, "reward.attribution_window"),
        ({"attribution_window": "1h"}, "reward.attribution_window"),
        ({"default": 0.0}, "reward.default"),
        ({"aggregation": "sum", "type": "continuous"}, "reward.aggregation"),
        ({"attribution_window": 60, "default": 2.0}, "reward.default"),
        ({"attribution_window": 60, "default": float("nan")}, "reward.default"),
        ({"attribution_window": 60, "aggregation": "sum"}, "reward.aggregation"),
        ({"attribution_window": 60, "aggregation": "last"}, "reward.aggregation"),
        ({"attribution_window": 60, "aggregation": ""}, "reward.aggregation"),
        ({"attribution_window": 60, "aggregation": ["sum"]}, "reward.aggregation"),
        ({"attribution_window": 60, "delay": 1}, "reward"),
    ],
)
def test_bad_reward_settings_are_refused(
    engine: Engine, reward: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        engine.create_experiment({"id": "bad", "arms": [{"id": "a"}], "reward": reward})
    assert caught.value.field == field
    assert engine.list_experiments() == []


def test_without_a_window_nothing_changes(engine: Engine, clock: Clock) -> None:
    engine.create_experiment({"id": "plain", "arms": [{"id": "a"}, {"id": "b"}]})
    d = engine.decide("plain")
    engine.reward("plain", [RewardItem(1.0, arm_id="a", count=3)])
    clock.t += 1e6
    engine.tick()
    stats = engine.stats("plain")
    assert stats["pending_decisions"] is None
    assert all(a["pending"] is None for a in stats["arms"])
    assert sum(a["rewards"] for a in stats["arms"]) == 3
    late = engine.reward("plain", [RewardItem(1.0, decision_id=d["decision_id"])])
    assert (late.accepted, late.late) == (1, None)  # no window: never late
    assert "reward" not in engine.get_experiment("plain").options


def test_counted_means_match_the_closed_form_under_exponential_delays(
    store_opener: Callable[[str], Callable[[], Storage]],
) -> None:
    """Uniform allocation (ε = 1), only conversions reported, each after an exponential
    delay of mean m, window W = m: once every window has closed, an arm's counted mean is
    μ·P(D < W) = μ·(1 − e^{-1}) and the share of decisions answered late is μ·e^{-1}, each
    within 4.5 binomial standard errors."""
    import heapq
    import math

    clock = Clock()
    engine = Engine(store_opener("sqlite")(), seed=21, clock=clock)
    m = 10.0
    engine.create_experiment(
        {
            "id": "d",
            "policy": {"type": "epsilon_greedy", "epsilon": 1.0},
            "arms": [{"id": "lo"}, {"id": "hi"}],
            "reward": {"attribution_window": m},
        }
    )
    mu = {"lo": 0.3, "hi": 0.6}
    rng = np.random.default_rng(5)
    arrivals: list[tuple[float, str, str]] = []
    decided: Counter[str] = Counter()
    late: Counter[str] = Counter()
    start = clock.t
    for k in range(12_000):  # one decision every 0.01 s: a window holds about 1,000
        now = start + 0.01 * k
        while arrivals and arrivals[0][0] <= now:
            clock.t, decision_id, arm = heapq.heappop(arrivals)
            late[arm] += engine.reward("d", [RewardItem(1.0, decision_id=decision_id)]).late
        clock.t = now
        d = engine.decide("d")
        decided[d["arm_id"]] += 1
        if rng.random() < mu[d["arm_id"]]:
            heapq.heappush(arrivals, (now + rng.exponential(m), d["decision_id"], d["arm_id"]))
        if k % 100 == 0:
            engine.tick()
    while arrivals:
        clock.t, decision_id, arm = heapq.heappop(arrivals)
        late[arm] += engine.reward("d", [RewardItem(1.0, decision_id=decision_id)]).late
    clock.t += m + 1
    engine.tick()
    stats = {a["arm_id"]: a for a in engine.stats("d")["arms"]}
    kept = 1 - math.exp(-1.0)
    for arm, p in mu.items():
        n = decided[arm]
        assert stats[arm]["rewards"] == n and stats[arm]["pending"] == 0
        q = p * kept
        assert abs(stats[arm]["reward_sum"] / n - q) <= 4.5 * math.sqrt(q * (1 - q) / n)
        r = p * (1 - kept)
        assert abs(late[arm] / n - r) <= 4.5 * math.sqrt(r * (1 - r) / n)


def test_a_tick_with_nothing_due_writes_nothing(
    store_opener: Callable[[str], Callable[[], Storage]], postgres_url: str
) -> None:
    """Ticks while every window is still open take no write transaction (on PostgreSQL a
    write bumps the store's version, which makes every replica re-read its cache)."""
    import psycopg

    clock = Clock()
    engine = Engine(store_opener("postgresql")(), seed=1, clock=clock)
    windowed(engine)
    engine.decide("w", n=5)

    def version() -> int:
        with psycopg.connect(postgres_url) as conn:
            row = conn.execute("SELECT version FROM octobandit_store").fetchone()
            assert row is not None
            return int(row[0])

    before = version()
    for _ in range(3):
        clock.t += WINDOW / 4
        engine.tick()
    assert version() == before
    clock.t += WINDOW
    engine.tick()
    assert version() == before + 1  # one settlement transaction
    assert engine.stats("w")["pending_decisions"] == 0
