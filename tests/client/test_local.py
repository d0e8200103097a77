"""Local decisions (``Client.local``) against a real service."""

from __future__ import annotations

import math
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from octobandit.client import Client
from octobandit.client.local import LocalDecider
from octobandit.policies import POLICIES, make_policy
from octobandit.policies.base import ArmStats


@pytest.fixture
def client(module_server: Any) -> Iterator[Client]:
    with Client(module_server.url) as c:
        yield c


def _exp(client: Client, policy: Any, arms: int = 3, **extra: Any) -> str:
    exp = f"t-{uuid.uuid4().hex[:10]}"
    client.create_experiment(exp, policy=policy, arms=[f"a{j}" for j in range(arms)], **extra)
    return exp


def _probs(decider: LocalDecider) -> np.ndarray[Any, Any]:
    """The selection distribution of the decider's snapshot, computed independently."""
    snap = decider._model.snap
    policy = make_policy(snap.policy, snap.reward_type)
    stats = ArmStats.of(snap.stats.n, snap.stats.s, snap.stats.ss, snap.stats.c)
    enabled = np.array([a.enabled for a in snap.arms])
    return np.asarray(policy.probabilities(stats, enabled))


@pytest.mark.parametrize(
    "policy", [{"type": "epsilon_greedy", "epsilon": 0.3}, {"type": "thompson"}, "ucb1"]
)
def test_logged_propensities_are_the_probabilities_used(client: Client, policy: Any) -> None:
    exp = _exp(client, policy)
    for j, (n, s) in enumerate([(40, 10), (50, 30), (30, 12)]):
        client.set_arm_stats(exp, f"a{j}", rewards=n, reward_sum=s, decisions=n)
    n = 20_000
    with client.local(exp, seed=7, refresh_interval=3600) as local:
        probs = _probs(local)
        decisions = [local.decide() for _ in range(n)]
    index = {f"a{j}": j for j in range(3)}
    for d in decisions:
        assert d.propensity == probs[index[d.arm_id]]
    counts = Counter(d.arm_id for d in decisions)
    for arm, j in index.items():
        p = probs[j]
        se = math.sqrt(n * p * (1 - p)) or 1.0
        assert abs(counts[arm] - n * p) <= 5 * se, (arm, counts[arm], n * p)


def test_after_flush_the_service_counts_what_was_decided_and_rewarded(client: Client) -> None:
    exp = _exp(client, {"type": "thompson"})
    rng = np.random.default_rng(3)
    with client.local(exp, seed=11, batch_size=500, buffer_size=5_000) as local:
        decided = [local.decide(unit_id=None) for _ in range(3_000)]
        rewarded = [d for d in decided if rng.random() < 0.5]
        values = {d.decision_id: float(rng.random() < 0.3) for d in rewarded}
        local.flush()
        assert local.pending == 0
    answer = client.rewards(exp, [{"decision_id": d, "reward": r} for d, r in values.items()])
    assert (answer.accepted, answer.duplicates) == (len(values), 0)
    stats = {a.arm_id: a for a in client.stats(exp).arms}
    want_decisions = Counter(d.arm_id for d in decided)
    want_rewards = Counter(d.arm_id for d in rewarded)
    want_sum: Counter[str] = Counter()
    for d in rewarded:
        want_sum[d.arm_id] += values[d.decision_id]  # type: ignore[assignment]
    for arm, row in stats.items():
        assert row.decisions == want_decisions[arm]
        assert row.rewards == want_rewards[arm]
        assert row.reward_sum == pytest.approx(want_sum[arm])


def test_decisions_on_an_old_snapshot_are_accepted_with_their_version(
    client: Client, module_server: Any
) -> None:
    exp = _exp(client, {"type": "epsilon_greedy", "epsilon": 0.5})
    with client.local(exp, seed=1, refresh_interval=3600) as local:
        old = local.version
        client.decide(exp)  # the service moves on: new decisions,
        client.update_experiment(exp, name="renamed")  # a new record version
        ids = [local.decide().decision_id for _ in range(10)]
        local.flush()
        assert local.refresh() != old
        new_id = local.decide().decision_id
        new = local.version
    with sqlite3.connect(module_server.db) as db:
        rows = dict(
            db.execute(
                "SELECT decision_id, json_extract(data, '$.version') FROM events"
                f" WHERE experiment_id = ? AND decision_id IN ({','.join('?' * 11)})",
                (exp, *ids, new_id),
            ).fetchall()
        )
    assert [rows[i] for i in ids] == [old] * 10 and rows[new_id] == new
    assert sum(a.decisions for a in client.stats(exp).arms) == 12


def test_a_unit_keeps_its_arm_locally_and_at_the_service(client: Client) -> None:
    exp = _exp(client, {"type": "thompson"}, arms=5)
    with client.local(exp, seed=5) as local:
        first = {f"u{i}": local.decide(unit_id=f"u{i}") for i in range(50)}
        for unit, d in first.items():
            again = local.decide(unit_id=unit)
            assert (again.arm_id, again.propensity) == (d.arm_id, d.propensity)
            assert again.decision_id != d.decision_id
    for unit, d in list(first.items())[:10]:
        assert client.decide(exp, unit_id=unit).arm_id == d.arm_id


def test_contextual_local_decisions_log_their_context(client: Client) -> None:
    exp = _exp(client, {"type": "linucb"}, context=["x", "y"])
    with client.local(exp, seed=2) as local:
        ds = [local.decide(context={"x": 0.5, "y": -1.0}) for _ in range(20)]
        local.flush()
    assert all(0 < d.propensity <= 1 for d in ds)
    answer = client.rewards(exp, [{"decision_id": d.decision_id, "reward": 1.0} for d in ds])
    assert answer.accepted == 20


def test_a_killed_client_loses_at_most_its_buffer(client: Client, module_server: Any) -> None:
    exp = _exp(client, {"type": "thompson"})
    buffer, made = 2_000, 7_500
    script = textwrap.dedent(
        f"""
        import os, signal, time
        from octobandit.client import Client
        local = Client({module_server.url!r}).local(
            {exp!r}, batch_size=500, buffer_size={buffer}, flush_interval=3600
        )
        for _ in range({made}):
            local.decide()
        time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], timeout=120, check=False)
    assert proc.returncode == -signal.SIGKILL
    logged = sum(a.decisions for a in client.stats(exp).arms)
    assert made - buffer <= logged <= made, logged
    assert os.path.exists(module_server.db)


def test_decide_from_several_threads(client: Client) -> None:
    import threading

    exp = _exp(client, "ucb1")
    with client.local(exp, batch_size=300, buffer_size=1_000) as local:
        ids: list[str] = []

        def work() -> None:
            got = [local.decide().decision_id for _ in range(3_000)]
            ids.extend(got)

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        local.flush()
    assert len(set(ids)) == 12_000
    assert sum(a.decisions for a in client.stats(exp).arms) == 12_000


def test_a_process_that_exits_normally_loses_nothing(client: Client, module_server: Any) -> None:
    exp = _exp(client, "ucb1")
    script = textwrap.dedent(
        f"""
        from octobandit.client import Client
        local = Client({module_server.url!r}).local({exp!r}, flush_interval=3600)
        for _ in range(3_333):
            local.decide()
        """
    )  # neither the decider nor the client is closed: the client's atexit hook does it
    subprocess.run([sys.executable, "-c", script], timeout=120, check=True)
    assert sum(a.decisions for a in client.stats(exp).arms) == 3_333


@pytest.mark.parametrize("kind", sorted(POLICIES))
def test_every_policy_decides_locally(client: Client, kind: str) -> None:
    contextual = kind in ("linucb", "linear_thompson")
    extra: dict[str, Any] = {"context": ["x"]} if contextual else {}
    exp = _exp(client, {"type": kind}, **extra)
    context = {"x": 0.5} if contextual else None
    first = [client.decide(exp, context=context) for _ in range(5)]
    client.rewards(exp, [{"decision_id": d.decision_id, "reward": 1.0} for d in first])
    with client.local(exp, seed=3) as local:
        local.refresh()
        ds = [local.decide(context=context) for _ in range(200)]
        local.flush()
        assert local.refused == 0
    assert all(0 < d.propensity <= 1 for d in ds)
    assert sum(a.decisions for a in client.stats(exp).arms) == 205
    answer = client.rewards(exp, [{"decision_id": d.decision_id, "reward": 0.0} for d in ds])
    assert answer.accepted == 200
