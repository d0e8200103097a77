"""Bandit policies: pure functions of sufficient statistics and a seeded RNG.

Every policy registered in :data:`POLICIES` can be named as ``policy.type``.

>>> make_policy({"type": "epsilon_greedy", "epsilon": 0.2}, "binary").params()
{'type': 'epsilon_greedy', 'epsilon': 0.2, 'initial_value': 0.0}
>>> make_policy({"type": "kl_ucb"}).params()
{'type': 'kl_ucb', 'c': 0.0}
>>> sorted(POLICIES)  # doctest: +NORMALIZE_WHITESPACE
['discounted_thompson', 'epsilon_greedy', 'exp3', 'kl_ucb', 'linear_thompson', 'linucb',
 'sliding_window_ucb', 'softmax', 'thompson', 'ucb1', 'ucb_tuned', 'vdbe']
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from octobandit.errors import InvalidInput
from octobandit.policies.bandit import Bandit
from octobandit.policies.base import REWARD_TYPES, ArmStats, Choice, Policy
from octobandit.policies.discounted_thompson import DiscountedThompson
from octobandit.policies.epsilon_greedy import EpsilonGreedy
from octobandit.policies.exp3 import EXP3
from octobandit.policies.kl_ucb import KLUCB
from octobandit.policies.linear import LinearThompson, LinUCB
from octobandit.policies.sliding_window_ucb import SlidingWindowUCB
from octobandit.policies.softmax import Softmax
from octobandit.policies.thompson import ThompsonSampling
from octobandit.policies.ucb import UCB1
from octobandit.policies.ucb_tuned import UCBTuned
from octobandit.policies.vdbe import VDBE

POLICIES: dict[str, type[Policy]] = {
    cls.type: cls
    for cls in (
        EpsilonGreedy,
        UCB1,
        ThompsonSampling,
        Softmax,
        UCBTuned,
        KLUCB,
        LinUCB,
        LinearThompson,
        DiscountedThompson,
        SlidingWindowUCB,
        EXP3,
        VDBE,
    )
}


def make_policy(spec: Mapping[str, Any], reward: str = "binary") -> Policy:
    """Build a policy from its JSON spec ``{"type": ..., **params}``."""
    if reward not in REWARD_TYPES:
        raise InvalidInput(f"must be one of {list(REWARD_TYPES)}", field="reward.type")
    kind = spec.get("type")
    cls = POLICIES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise InvalidInput(
            f"unknown policy type {kind!r}; known: {sorted(POLICIES)}", field="policy.type"
        )
    try:
        return cls.from_params(spec, reward)
    except TypeError as exc:  # a parameter of the wrong kind reached the constructor
        raise InvalidInput(str(exc), field="policy") from exc


__all__ = [
    "EXP3",
    "KLUCB",
    "POLICIES",
    "UCB1",
    "VDBE",
    "ArmStats",
    "Bandit",
    "Choice",
    "DiscountedThompson",
    "EpsilonGreedy",
    "LinUCB",
    "LinearThompson",
    "Policy",
    "SlidingWindowUCB",
    "Softmax",
    "ThompsonSampling",
    "UCBTuned",
    "make_policy",
]
