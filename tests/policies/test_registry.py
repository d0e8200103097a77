"""Every registered policy: built from its spec, a valid selection distribution,
exact reported propensities, and usable by the engine as ``policy.type``."""

from __future__ import annotations

import math

import numpy as np
import pytest

from octobandit.engine import Engine, RewardItem
from octobandit.errors import InvalidInput
from octobandit.policies import POLICIES, ArmStats, make_policy
from octobandit.storage import SQLiteStorage

TYPES = sorted(POLICIES)


def reward_types(kind: str) -> list[str]:
    return ["binary"] if kind == "kl_ucb" else ["binary", "continuous"]


#: contextual policies need a state and contexts: tested in test_linear.py and the engine
PLAIN = [k for k in TYPES if not POLICIES[k].contextual]
CASES = [(kind, reward) for kind in PLAIN for reward in reward_types(kind)]


def test_the_new_families_are_registered() -> None:
    assert {"softmax", "ucb_tuned", "kl_ucb", "epsilon_greedy", "ucb1", "thompson"} <= set(TYPES)


@pytest.mark.parametrize(("kind", "reward"), CASES)
def test_defaults_round_trip_through_params(kind: str, reward: str) -> None:
    p = make_policy({"type": kind}, reward)
    assert p.params()["type"] == kind
    assert make_policy(p.params(), reward).params() == p.params()
    with pytest.raises(InvalidInput) as err:
        make_policy({"type": kind, "no_such_parameter": 1}, reward)
    assert err.value.field == "policy.no_such_parameter"


@pytest.mark.parametrize(("kind", "reward"), CASES)
def test_probabilities_are_a_distribution_over_enabled_arms(kind: str, reward: str) -> None:
    rng = np.random.default_rng(17)
    p = make_policy({"type": kind}, reward)
    n = rng.integers(0, 40, size=(64, 5)).astype(float)
    if reward == "binary":
        s = rng.binomial(n.astype(int), 0.5).astype(float)
        ss = s
    else:
        x = rng.normal(1.0, 2.0, size=(64, 5, 40))
        live = np.arange(40) < n[..., None]
        s, ss = (x * live).sum(-1), (x * x * live).sum(-1)
    mask = rng.random((64, 5)) < 0.7
    mask[:, 2] = True  # at least one enabled arm per row
    probs = p.probabilities(ArmStats.of(n, s, ss), mask)
    assert probs.shape == (64, 5)
    assert (probs >= 0).all() and (probs[~mask] == 0).all()
    assert probs.sum(axis=1) == pytest.approx(np.ones(64), abs=1e-9)


@pytest.mark.parametrize("kind", [k for k in PLAIN if POLICIES[k].exact_propensity])
def test_reported_propensity_is_the_selection_rate(kind: str) -> None:
    """Drawing many times from one state: each arm's rate is within 5 binomial
    standard errors of the propensity reported with it."""
    rng = np.random.default_rng(23)
    p = make_policy({"type": kind})
    stats = ArmStats.of(n=[30, 30, 31, 30], s=[12, 18, 18, 9])
    n = 100_000
    c = p.choose(stats, rng, size=n)
    probs = p.probabilities(stats)
    for arm in range(4):
        rate = float(np.mean(c.arms == arm))
        assert abs(rate - probs[arm]) <= 5 * math.sqrt(probs[arm] * (1 - probs[arm]) / n)
        assert np.all(c.propensities[c.arms == arm] == probs[arm])


@pytest.mark.parametrize("kind", TYPES)
def test_the_engine_serves_every_registered_policy(kind: str) -> None:
    storage = SQLiteStorage(":memory:")
    try:
        engine = Engine(storage, seed=3)
        contextual = POLICIES[kind].contextual
        spec = {"id": "e", "policy": {"type": kind}, "arms": [{"id": "a"}, {"id": "b"}]}
        if contextual:
            spec["context"] = {"features": ["one", "z"]}
        engine.create_experiment(spec)
        for i in range(20):
            d = engine.decide("e", context=[1.0, i / 20] if contextual else None)
            assert d["arm_id"] in {"a", "b"}
            reward = 1.0 if d["arm_id"] == "b" else 0.0
            engine.reward("e", [RewardItem(reward=reward, decision_id=d["decision_id"])])
        assert engine.get_experiment("e").policy["type"] == kind
    finally:
        storage.close()
