"""The must-show check on our own logs (issue 12).

An experiment is run through the engine with ε-greedy (ε = 0.3, fixed seed) on Bernoulli
arms (0.3, 0.5, 0.7), its outcomes reported after every batch of 20 decisions. Thompson
sampling and UCB1 are evaluated offline from its log, then run online on the same
environment (``octobandit.simulation``, 200 seeded runs, whose mean pseudo-reward is their
expected online value up to a Monte Carlo error far below the intervals' widths).

What each estimate targets (docs/evaluation.md):

* replay: the candidate's expected mean reward over T online rounds, T the rounds it
  accepted; its online value over T rounds must lie inside the replay interval;
* IPS, SNIPS, DR: the mean over the logged rounds of Σ_a π_i(a) μ(a), π_i the candidate
  fed the logger's outcomes; computed exactly here from the known μ, it must lie inside
  their intervals. It is not the candidate's online value over the log's 20,000 rounds (the
  candidate learns from ε-greedy's outcomes, not its own): the two are close here, but
  IPS's interval is not built for the latter and need not cover it.

The check can fail: a uniform candidate's replay interval excludes Thompson's online
value, and the plain replay (every match accepted) of the uniform candidate is far from
its value (the logger's bias).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from octobandit.engine import Engine
from octobandit.engine.ops import RewardItem
from octobandit.offline import (
    engine_rounds,
    evaluate_log,
    parse_candidates,
    replay,
    same_info_action_dist,
)
from octobandit.simulation import Bernoulli, simulate
from octobandit.storage import SQLiteStorage

MU = np.array([0.3, 0.5, 0.7])
N, BATCH = 20_000, 20


@pytest.fixture(scope="module")
def logged() -> Any:
    engine = Engine(SQLiteStorage(":memory:"), seed=7)
    engine.create_experiment(
        {
            "id": "e",
            "arms": [{"id": "a"}, {"id": "b"}, {"id": "c"}],
            "policy": {"type": "epsilon_greedy", "epsilon": 0.3},
        }
    )
    rng = np.random.default_rng(3)
    for _ in range(N // BATCH):
        items = [
            RewardItem(
                float(rng.random() < MU["abc".index(d["arm_id"])]), decision_id=d["decision_id"]
            )
            for d in engine.decide("e", n=BATCH)["decisions"]
        ]
        engine.reward("e", items)
    rounds = engine_rounds(engine, "e")
    engine.storage.close()
    uniform = '{"action_dist": [0.25, 0.25, 0.5], "name": "fixed"}'
    candidates = parse_candidates(["thompson", "ucb1", uniform], "binary")
    return rounds, candidates, evaluate_log(rounds, candidates, n_bootstrap_samples=500)


def _online(spec: dict[str, Any], horizon: int) -> float:
    """The expected mean reward of ``spec`` over ``horizon`` online rounds (200 runs)."""
    run = simulate(spec, Bernoulli(MU.tolist()), horizon, replications=200, seed=11)
    return float(MU.max() - run.regret_mean[-1] / horizon)


def _inside(value: float, ci95: list[float]) -> bool:
    return ci95[0] <= value <= ci95[1]


@pytest.mark.parametrize("name", ["thompson", "ucb1"])
def test_each_online_value_lies_inside_its_offline_interval(logged: Any, name: str) -> None:
    rounds, candidates, result = logged
    assert rounds.n == N and rounds.pscore.min() == pytest.approx(0.1)
    (candidate,) = [c for c in candidates if c.name == name]
    out = result["candidates"][name]
    est = out["estimates"]
    # the replay: the online value over as many rounds as it accepted (about N·p_min)
    accepted = out["replay"]["accepted"]
    assert abs(accepted - N * 0.1) < 4 * np.sqrt(N * 0.1 * 0.9)
    assert _inside(_online(candidate.spec, accepted), est["replay"]["ci95"])
    # IPS, SNIPS, DR: the candidate given the logger's information, known exactly here
    target = float((same_info_action_dist(candidate, rounds) @ MU).mean())
    for key in ("ipw", "snipw", "dr"):
        assert _inside(target, est[key]["ci95"]), key


def test_the_check_can_fail(logged: Any) -> None:
    rounds, candidates, result = logged
    fixed = result["candidates"]["fixed"]["estimates"]
    truth = float(np.dot([0.25, 0.25, 0.5], MU))  # 0.55
    assert _inside(truth, fixed["replay"]["ci95"]) and _inside(truth, fixed["ipw"]["ci95"])
    thompson_online = _online(result["candidates"]["thompson"]["spec"], N)
    assert not _inside(thompson_online, fixed["replay"]["ci95"])
    assert not _inside(thompson_online, fixed["ipw"]["ci95"])
    # the plain replay accepts every match: ε-greedy's greedy arm (0.7) dominates it
    plain = replay(candidates[2], rounds, p_min=1.0)
    assert not _inside(truth, plain["ci95"])
