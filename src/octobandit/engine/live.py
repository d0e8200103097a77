"""The live cache: an experiment's state as the data plane uses it between groups.

Per cached experiment: its record, policy and arms, the statistics, the
selection distribution in use, a stateful policy's state, and what this engine
added since it last wrote (written as increments).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from octobandit.engine.attribution import Attribution
from octobandit.engine.priors import prior_stats
from octobandit.engine.sizes import json_size
from octobandit.engine.state import encode_state, load_state
from octobandit.model import ArmStatsDelta, DecisionRef, ExperimentRecord, decode_json
from octobandit.policies import ArmStats, Policy, make_policy
from octobandit.policies.base import FloatArray
from octobandit.storage.base import ArmStateTx
from octobandit.storage.fold import IPS_EXCLUDED, IPS_SUMS, ips_base, ips_row


@dataclass(slots=True)
class _Live:
    """An experiment's state as the data plane uses it (cached between groups)."""

    record: ExperimentRecord
    policy: Policy
    arm_ids: list[str]
    index: dict[str, int]
    payloads: list[Any]
    enabled: np.ndarray[Any, np.dtype[np.bool_]]
    decisions: list[int]
    n: FloatArray
    s: FloatArray
    #: Σ (reward - c)² about the per-arm shift ``c`` (fixed at the arm's first reward)
    ss: FloatArray
    c: FloatArray
    #: importance-weighted reward sums, shape (IPS_SUMS, K) (see ArmStatsRow.ips)
    ips: FloatArray
    #: what this engine added since it last wrote (decisions, n, s, ss about c, ips):
    #: written as increments, so that engines sharing a store never overwrite each other
    add_decisions: list[int]
    add: FloatArray  # shape (4, K): n, s, ss and Σ (reward - c), all count-weighted
    add_ips: FloatArray  # shape (IPS_SUMS, K)
    any_enabled: bool = True
    probs: FloatArray | None = None  # selection distribution in use
    probs_at: float = 0.0  # when it was computed (monotonic seconds)
    stale: bool = False  # statistics changed since
    dirty: set[int] = field(default_factory=set)

    @classmethod
    def of(cls, record: ExperimentRecord) -> _Live:
        arms = record.arms
        enabled = np.array([a.enabled and not a.deleted for a in arms], dtype=bool)
        prior = prior_stats([a.prior for a in arms]) if any(a.prior for a in arms) else None
        policy = make_policy(record.policy, record.reward_type)
        dim = len(record.options.get("context_features") or ())
        state = load_state(policy, record.policy_state, len(arms), dim) if policy.stateful else None
        return cls(
            attribution=Attribution.of(record),
            dim=dim,
            state=state,
            prior=prior,
            record=record,
            any_enabled=bool(enabled.any()),
            policy=policy,
            arm_ids=[a.arm_id for a in arms],
            index={a.arm_id: i for i, a in enumerate(arms)},
            payloads=[a.payload for a in arms],
            payload_bytes=max((json_size(a.payload) for a in arms), default=0),
            enabled=enabled,
            decisions=[a.decisions for a in arms],
            n=np.array([a.rewards for a in arms], dtype=np.float64),
            s=np.array([a.reward_sum for a in arms], dtype=np.float64),
            ss=np.array([a.reward_sq_sum for a in arms], dtype=np.float64),
            c=np.array([a.shift for a in arms], dtype=np.float64),
            ips=np.array([ips_row(a.ips) for a in arms], dtype=np.float64).T.reshape(IPS_SUMS, -1),
            add_decisions=[0] * len(arms),
            add=np.zeros((4, len(arms))),
            add_ips=np.zeros((IPS_SUMS, len(arms))),
        )

    prior: ArmStats | None = None
    #: context size (declared features), 0 without declared features
    dim: int = 0
    #: the largest arm payload, serialised (bytes)
    payload_bytes: int = 0
    #: a stateful policy's state, shape (1, K, ...) per array
    state: dict[str, FloatArray] | None = None
    state_dirty: bool = False
    #: the attribution window's settings, if the experiment has one
    attribution: Attribution | None = None

    def refresh(self, record: ExperimentRecord) -> None:
        """Take the stored statistics of ``record`` (same setup; see ``_same_setup``)."""
        arms = record.arms
        self.record = record
        self.decisions = [a.decisions for a in arms]
        self.n = np.array([a.rewards for a in arms], dtype=np.float64)
        self.s = np.array([a.reward_sum for a in arms], dtype=np.float64)
        self.ss = np.array([a.reward_sq_sum for a in arms], dtype=np.float64)
        self.c = np.array([a.shift for a in arms], dtype=np.float64)
        self.ips = np.array([ips_row(a.ips) for a in arms], dtype=np.float64).T.reshape(
            IPS_SUMS, -1
        )
        self.stale = True

    @property
    def stats(self) -> ArmStats:
        """What the policy sees: observed statistics plus the arms' prior pseudo-observations."""
        observed = ArmStats(self.n, self.s, self.ss, self.c)
        return observed if self.prior is None else observed + self.prior


def _same_setup(old: ExperimentRecord, new: ExperimentRecord) -> bool:
    """Whether only the statistics differ: same version, settings and arms."""

    def arms(record: ExperimentRecord) -> list[tuple[Any, ...]]:
        return [(a.arm_id, a.enabled, a.deleted, a.payload, a.prior) for a in record.arms]

    return (
        old.version == new.version
        and old.status == new.status
        and old.policy == new.policy
        and old.options == new.options
        and old.conclusion == new.conclusion
        and arms(old) == arms(new)
    )


def update_state(
    live: _Live, arm: int, reward: float, count: float, ref: DecisionRef | None, ts: float
) -> None:
    """Fold one reward into a stateful policy's state (joined to its decision, if any)."""
    assert live.state is not None
    context = None
    if live.policy.contextual and ref is not None:
        context = np.array([decode_json(ref.context)], dtype=np.float64).reshape(1, live.dim)
    live.policy.update_state(
        live.state,
        np.array([arm], dtype=np.intp),
        np.array([reward]),
        np.array([count]),
        propensities=np.array([ref.propensity if ref is not None else np.nan]),
        contexts=context,
        times=np.array([ts]),
    )
    live.state_dirty = True


def add_reward(live: _Live, j: int, r: float, c: float, ref: DecisionRef | None, ts: float) -> None:
    """Count ``c`` rewards ``r`` for arm ``j`` (joined to decision ``ref``, if any): the
    statistics, the importance-weighted sums, a stateful policy's state, and the
    increments this engine writes next."""
    if live.n[j] == 0:
        live.c[j] = r  # the arm's shift, fixed at its first reward
    d = r - live.c[j]
    live.n[j] += c
    live.s[j] += r * c
    live.ss[j] += d * d * c
    add = live.add
    add[0, j] += c
    add[1, j] += r * c
    add[2, j] += d * d * c
    add[3, j] += d * c
    live.dirty.add(j)
    if ref is not None and ref.propensity > 0:
        base = ips_base(ref)
        for ips in (live.ips, live.add_ips):
            if base is None:  # served without exploration: counted, left out
                ips[IPS_EXCLUDED, j] += c
            else:
                w = r / (ref.propensity * (ref.eligible or 1))
                ips[base, j] += c
                ips[base + 1, j] += c * r
                ips[base + 2, j] += c * r * r
                ips[base + 3, j] += c * w
                ips[base + 4, j] += c * r * w
                ips[base + 5, j] += c * w * w
    if live.state is not None:
        update_state(live, j, r, c, ref, ts)


def write_changes(tx: ArmStateTx, live: _Live) -> None:
    """Write what this engine changed since its last write: a stateful policy's state
    (whole) and the statistics' increments (then zeroed)."""
    if live.state_dirty and live.state is not None:
        tx.write_policy_state(live.record.id, encode_state(live.state))
        live.state_dirty = False
    if not live.dirty:
        return
    tx.add_arm_stats(
        live.record.id,
        [
            ArmStatsDelta(
                live.arm_ids[j],
                live.add_decisions[j],
                float(live.add[0, j]),
                float(live.add[1, j]),
                float(live.add[2, j]),
                live.add_ips[:, j].tolist() if live.add_ips[:, j].any() else None,
                shift=float(live.c[j]),
                centred_sum=float(live.add[3, j]),
            )
            for j in sorted(live.dirty)
        ],
    )
    for j in live.dirty:
        live.add_decisions[j] = 0
    live.add[:] = 0.0
    live.add_ips[:] = 0.0
    live.dirty.clear()
