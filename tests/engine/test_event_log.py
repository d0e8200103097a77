"""Folding the event log gives exactly the stored sufficient statistics."""

from __future__ import annotations

import contextlib
import sqlite3
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from octobandit.engine import Engine, RewardItem
from octobandit.errors import OctobanditError
from octobandit.storage import ArmRecord, Event, SQLiteStorage

ZERO = [0, 0.0, 0.0, 0.0] + [0.0] * 13 + [0.0]
SHIFT = 4 + 13


def stored_row(arm: ArmRecord) -> list[float]:
    """An arm's stored statistics in the layout of :func:`fold`."""
    row = [arm.decisions, arm.rewards, arm.reward_sum, arm.reward_sq_sum]
    return row + (arm.ips or [0.0] * 13) + [arm.shift]


def agrees_with_fold(
    folded: list[float], magnitude: list[float], stored: list[float], terms: int
) -> bool:
    """The stored statistics against the fold of the log: the counts and the shift
    exactly; each sum within its rounding. The store adds a group's increments as one
    delta where the fold adds them one by one, so the two orders of addition each differ
    from the exact sum of at most ``terms`` terms by at most (terms - 1)·u·Σ|term|
    (u = 2^-53); ``magnitude`` is the fold of the terms' absolute values."""
    exact = [0, 1, SHIFT]
    if [folded[i] for i in exact] != [stored[i] for i in exact]:
        return False
    bound = 2 * max(terms, 1) * 2.0**-53
    return all(abs(folded[i] - stored[i]) <= bound * magnitude[i] for i in range(2, SHIFT))


def fold(events: list[Event], *, magnitude: bool = False) -> dict[tuple[str, str], list[float]]:
    """Replay the log: decisions, reward count, sum and sum of squares about the arm's shift
    per arm, then the thirteen importance-weighted sums of rewards joined to their decision's
    propensity and number of enabled arms (see ArmStatsRow.ips), then the shift (the arm's
    first reward since its statistics were last empty), since each experiment's last reset.
    With ``magnitude``, every term is added as its absolute value (for rounding bounds)."""
    size = abs if magnitude else (lambda x: x)
    out: dict[tuple[str, str], list[float]] = defaultdict(lambda: list(ZERO))
    decided: dict[str, Event] = {}
    for e in events:
        if e.kind == "reset":
            for key in [k for k in out if k[0] == e.experiment_id]:
                out[key] = list(ZERO)
            continue
        if e.kind == "set_stats":  # an admin overwrite of one arm
            d = e.data
            out[(e.experiment_id, e.arm_id or "")] = [
                d["decisions"], d["rewards"], size(d["reward_sum"]), d["reward_sq_sum"],
            ] + [0.0] * 13 + [d.get("shift", 0.0)]  # fmt: skip
            continue
        assert e.arm_id is not None
        row = out[(e.experiment_id, e.arm_id)]
        if e.kind == "decision":
            row[0] += 1
            decided[e.decision_id or ""] = e
        elif e.kind in ("reward", "default"):  # an outcome (``part`` and ``late``: none)
            assert e.reward is not None and e.count is not None
            r, c = e.reward, e.count
            if row[1] == 0:
                row[SHIFT] = r  # the shift: fixed at the first reward
            dev = r - row[SHIFT]
            row[1] += c
            row[2] += size(r * c)
            row[3] += dev * dev * c
            if e.decision_id is not None:
                d = decided[e.decision_id]
                p, k = d.propensity or 0.0, d.data["k"]
                if not d.data.get("policy", True) or (p >= 1.0 and k > 1):
                    row[4 + 12] += c  # served without exploration
                    continue
                w = r / (k * p)
                for i, term in enumerate((c, c * r, c * r * r, c * w, c * r * w, c * w * w)):
                    row[4 + 6 + i] += size(term)
    return out


def test_fold_equals_stored_statistics(engine: Engine) -> None:
    rng = np.random.default_rng(5)
    for exp_id, reward in (("bin", "binary"), ("cont", "continuous")):
        engine.create_experiment(
            {
                "id": exp_id,
                "policy": {"type": "thompson"},
                "reward": {"type": reward},
                "arms": [{"id": f"arm{i}"} for i in range(4)],
            }
        )
    decisions: dict[str, list[str]] = {"bin": [], "cont": []}
    for step in range(600):
        exp_id = "bin" if rng.random() < 0.5 else "cont"
        u = rng.random()
        if u < 0.5:
            out = engine.decide(exp_id, n=int(rng.integers(1, 4)))
            decisions[exp_id] += [d["decision_id"] for d in out["decisions"]]
        elif u < 0.8 and decisions[exp_id]:
            pick = decisions[exp_id][int(rng.integers(len(decisions[exp_id])))]
            value = float(rng.random()) if exp_id == "bin" else float(rng.normal(10, 3))
            engine.reward(exp_id, [RewardItem(value, decision_id=pick)])  # duplicates included
        elif u < 0.97:
            arm = f"arm{int(rng.integers(4))}"
            value = float(rng.random()) if exp_id == "bin" else float(rng.normal(5, 2))
            engine.reward(exp_id, [RewardItem(value, arm_id=arm, count=int(rng.integers(1, 20)))])
        elif step % 3 == 0:
            engine.reset(exp_id)
        elif step % 3 == 1:
            n = float(rng.integers(1, 50))
            engine.set_arm_stats(
                exp_id, "arm1", {"decisions": 7, "rewards": n, "reward_sum": n / 2}
            )
        else:
            with contextlib.suppress(OctobanditError):  # a rejected request leaves no trace
                engine.reward(
                    exp_id,
                    [RewardItem(1.0, arm_id="arm0"), RewardItem(0.5, decision_id="missing")],
                )
    folded = fold(list(engine.storage.events()))
    for exp_id in ("bin", "cont"):
        for arm in engine.get_experiment(exp_id).arms:
            assert folded[(exp_id, arm.arm_id)] == stored_row(arm)  # exact, not approximate


def test_a_database_without_the_shift_column_opens_with_plain_squares(tmp_path: Path) -> None:
    """A database written by an earlier release (no ``shift`` column: squares about 0)."""
    path = str(tmp_path / "old.db")
    store = SQLiteStorage(path)
    engine = Engine(store, seed=3)
    engine.create_experiment(
        {"id": "old", "reward": {"type": "continuous"}, "arms": [{"id": "a"}, {"id": "b"}]}
    )
    store.close()
    xs = [2.0, 4.0, 9.0]
    with sqlite3.connect(path) as db:  # rewrite it as the earlier release left it
        db.execute("ALTER TABLE arms DROP COLUMN shift")
        db.execute("PRAGMA user_version=0")  # its schema was not numbered
        db.execute(
            "UPDATE arms SET rewards=?, reward_sum=?, reward_sq_sum=? WHERE arm_id='a'",
            (3.0, sum(xs), sum(x * x for x in xs)),
        )
    store = SQLiteStorage(path)
    engine = Engine(store, seed=3)
    arm = engine.get_experiment("old").arms[0]
    assert arm.shift == 0.0
    lo, hi = engine.stats("old")["arms"][0]["ci95"]
    assert (lo + hi) / 2 == pytest.approx(5.0) and hi - lo > 0
    engine.reward("old", [RewardItem(5.0, arm_id="a")])  # n > 0: the shift stays 0
    arm = engine.get_experiment("old").arms[0]
    assert arm.shift == 0.0 and arm.reward_sq_sum == sum(x * x for x in [*xs, 5.0])
    assert engine.decide("old")["arm_id"] in {"a", "b"}
    store.close()
