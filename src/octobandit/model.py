"""The domain records and events: experiments, arms, snapshots and the event log's rows.

Plain data shared by every layer: the storage writes and reads them, the engine
computes on them, the doors turn them into JSON (see ``octobandit.api.views``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import msgspec


def iso_time(ts: float) -> str:
    """A timestamp (epoch seconds) in ISO 8601 UTC with milliseconds, as records show it."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts * 1000) % 1000:03d}Z"


def decode_json(raw: str | bytes | None) -> Any:
    """Decode a JSON column (``None`` stays ``None``)."""
    return None if raw is None else msgspec.json.decode(raw)


class DecisionRef(NamedTuple):
    """What a reward needs to know of its decision."""

    arm_id: str
    rewarded: bool
    propensity: float
    context: Any  # as stored (JSON text); decode with ``decode_json`` when needed
    #: enabled arms when the decision was made (``None``: logged before this was recorded)
    eligible: int | None = None
    #: False when the decision was served without exploration (paused: the best
    #: estimate; concluded: the winner), which the gain estimate leaves out
    policy: bool = True
    #: when the decision was made (its attribution window opens then)
    ts: float | None = None
    #: its place in the event log (settled once the experiment's watermark reaches it)
    seq: int | None = None


@dataclass(slots=True)
class ArmRecord:
    arm_id: str
    payload: Any = None
    enabled: bool = True
    deleted: bool = False
    position: int = 0
    created_at: float = 0.0
    decisions: int = 0
    rewards: float = 0.0
    reward_sum: float = 0.0
    reward_sq_sum: float = 0.0
    #: prior pseudo-observations ``{"rewards", "reward_sum", "reward_sq_sum"}`` (or None)
    prior: dict[str, float] | None = None
    #: importance-weighted reward sums (see :class:`ArmStatsRow`), or None
    ips: list[float] | None = None
    #: the shift ``c`` of ``reward_sq_sum`` = Σ (reward - c)² (0: plain squares, old rows)
    shift: float = 0.0


@dataclass(slots=True)
class ExperimentRecord:
    id: str
    name: str
    policy: dict[str, Any]
    reward_type: str
    status: str = "running"
    version: int = 1
    created_at: float = 0.0
    updated_at: float = 0.0
    arms: list[ArmRecord] = field(default_factory=list)
    #: stopping rule and snapshot settings (see ``octobandit.engine.options``)
    options: dict[str, Any] = field(default_factory=dict)
    #: ``{"winner", "at", "reason", ...}`` once concluded, else ``None``
    conclusion: dict[str, Any] | None = None
    last_snapshot: float = 0.0
    #: a stateful policy's learned state, encoded (see ``octobandit.engine.state``)
    policy_state: bytes | None = None


@dataclass(slots=True)
class Snapshot:
    """A posterior summary of one experiment at one time (``data`` is JSON)."""

    experiment_id: str
    ts: float
    reason: str  # "interval" | "conclusion"
    data: dict[str, Any]


@dataclass(slots=True)
class DecisionEvent:
    ts: float
    experiment_id: str
    decision_id: str
    arm_id: str
    propensity: float
    unit_id: str | None = None
    context: Any = None
    #: number of enabled arms when the decision was made (logged in the event's ``data``)
    eligible: int | None = None
    #: made by the exploring policy (False: paused-greedy or a concluded winner served)
    policy: bool = True
    #: the policy-snapshot version a local decision was made on (``None``: by the service)
    version: str | None = None


#: the event kinds a reward request or the attribution tick logs: ``reward`` and
#: ``default`` are a decision's outcome (counted; one per decision in an experiment with
#: an attribution window); ``part`` is one reward summed into its decision's outcome
#: when the window closes (``aggregation: sum``); ``late`` arrived after the window
#: closed (kept for the record, never counted)
OUTCOME_KINDS = ("reward", "default")


@dataclass(slots=True)
class RewardEvent:
    ts: float
    experiment_id: str
    arm_id: str
    reward: float
    count: float = 1.0
    decision_id: str | None = None
    #: ``reward``, ``default``, ``part`` or ``late`` (see :data:`OUTCOME_KINDS`)
    kind: str = "reward"
    #: extra facts, e.g. ``{"parts": m}`` on a summed outcome
    data: Any = None


class OpenDecision(NamedTuple):
    """A decision whose attribution window had not been settled, as the tick reads it."""

    seq: int
    decision_id: str
    ref: DecisionRef
    #: it already has its outcome (a ``reward``): nothing to settle
    rewarded: bool
    #: rewards summed so far (``part`` events) and their total
    parts: int
    part_sum: float


@dataclass(slots=True)
class ArmStatsRow:
    """Absolute statistics of one arm, written after a batch."""

    arm_id: str
    decisions: int
    rewards: float
    reward_sum: float
    #: Σ (reward - shift)², squares about the arm's fixed ``shift`` (numerically stable)
    reward_sq_sum: float
    #: importance-weighted sums of rewards joined to their decision (propensity p, K
    #: enabled arms then), 13 numbers: [Σc, Σc·r, Σc·r², Σc·v, Σc·r·v, Σc·v²] with
    #: v = r/p for decisions logged without K (older databases; 6-number rows are
    #: these), the same six with v = r/(K·p) for decisions logged with K, then Σc of
    #: rewards of decisions served without exploration (see ``engine.conclusions``)
    ips: list[float] | None = None
    #: the arm's shift (fixed at its first reward; see ``policies.base.ArmStats``)
    shift: float = 0.0


@dataclass(slots=True)
class ArmStatsDelta:
    """What one batch adds to an arm's statistics.

    Written as increments (the store adds them to what it holds), so that
    batches of several engines on one store never overwrite each other.
    ``reward_sq_sum`` is the batch's Σ (reward - ``shift``)² · count and
    ``centred_sum`` its Σ (reward - ``shift``) · count; the store keeps its own
    shift c' (the first writer's) and re-centres the batch's squares onto it:
    Σ(x - c')² = Σ(x - c)² + 2(c - c')·Σ(x - c) + n·(c - c')², every term small
    when the shifts are near the mean (no cancellation of large sums).
    """

    arm_id: str
    decisions: int = 0
    rewards: float = 0.0
    reward_sum: float = 0.0
    reward_sq_sum: float = 0.0
    #: increments of the 13 importance-weighted sums (see :class:`ArmStatsRow`), or None
    ips: list[float] | None = None
    shift: float = 0.0
    centred_sum: float = 0.0


def add_ips(stored: list[float] | None, delta: list[float] | None) -> list[float] | None:
    """Element-wise sum of two ``ips`` rows (an older, shorter stored row is padded)."""
    if delta is None:
        return stored
    out = list(delta)
    for i, value in enumerate(stored or ()):
        out[i] += value
    return out


@dataclass(slots=True)
class Event:
    """One row of the event log, as read back."""

    seq: int
    ts: float
    experiment_id: str
    kind: str  # "decision" | "reward" | "default" | "part" | "late" | "reset" | "set_stats"
    decision_id: str | None
    arm_id: str | None
    propensity: float | None
    unit_id: str | None
    context: Any
    reward: float | None
    count: float | None
    data: Any = None


@dataclass(slots=True)
class ApiKeyRecord:
    """One API key as stored: never the key itself, only its SHA-256 (hex).

    ``scopes``: of ``read``, ``decide``, ``admin``; ``experiments``: the experiment
    ids the key is limited to (``None``: every experiment). ``expires_at`` and
    ``revoked_at`` are epoch seconds (``None``: never, not revoked).
    """

    id: str
    prefix: str
    hash: str
    name: str
    scopes: tuple[str, ...]
    experiments: tuple[str, ...] | None
    created_at: float
    expires_at: float | None = None
    revoked_at: float | None = None
