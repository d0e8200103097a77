"""The event log folded back into per-arm statistics and sticky assignments.

The log is the source of truth: every stored statistic is the fold of its
experiment's events since the last ``reset``. A state store that lost writes
(a Redis flush, a restart from an old snapshot) is rebuilt with :func:`fold`.

The layout of an arm's thirteen importance-weighted sums (``ArmStatsRow.ips``)
is defined here, since both the fold and the engine's gain estimate read it.

>>> from octobandit.model import Event
>>> log = [
...     Event(1, 0.0, "e", "decision", "d1", "a", 0.5, "u1", None, None, None, {"k": 2}),
...     Event(2, 1.0, "e", "reward", "d1", "a", None, None, None, 1.0, 1.0),
... ]
>>> folded = fold(log)
>>> row = folded.arms["e"]["a"]
>>> (row.decisions, row.rewards, row.reward_sum), folded.assignments["e"]
((1, 1.0, 1.0), {'u1': ('a', 0.5)})
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from octobandit.model import OUTCOME_KINDS, ArmStatsRow, DecisionRef, Event

#: length of an arm's ``ips`` row (see :class:`~octobandit.storage.base.ArmStatsRow`)
IPS_SUMS = 13
#: where the six sums of decisions logged without their number of enabled arms start
IPS_LEGACY = 0
#: where the six sums of decisions logged with their number of enabled arms start
IPS_ELIGIBLE = 6
#: Σc of rewards joined to decisions served without exploration (left out of the estimate)
IPS_EXCLUDED = 12


def ips_row(row: list[float] | None) -> list[float]:
    """An arm's ``ips`` sums in the current layout (older 6-number rows are legacy sums)."""
    out = [0.0] * IPS_SUMS
    if row:
        out[: len(row)] = row
    return out


def ips_base(ref: DecisionRef) -> int | None:
    """Where a rewarded decision's terms go in the ``ips`` sums (``None``: left out).

    A decision enters the estimate when the exploring policy made it with a
    propensity below 1 (or it had a single arm to choose from); decisions logged
    before the number of enabled arms was recorded keep the old treatment.
    """
    if ref.eligible is None:
        return IPS_LEGACY
    if ref.policy and (ref.propensity < 1.0 or ref.eligible == 1):
        return IPS_ELIGIBLE
    return None


def ips_terms(ref: DecisionRef, reward: float, count: float) -> tuple[int, list[float]] | None:
    """``(where, six terms)`` a reward adds to its arm's ``ips`` sums (``None``: none).

    A reward of a decision served without exploration adds ``count`` at
    :data:`IPS_EXCLUDED` (``where`` is then that index and the list has one term).
    """
    if ref.propensity <= 0:
        return None
    base = ips_base(ref)
    if base is None:
        return IPS_EXCLUDED, [count]
    r, c = reward, count
    w = r / (ref.propensity * (ref.eligible or 1))
    return base, [c, c * r, c * r * r, c * w, c * r * w, c * w * w]


@dataclass(slots=True)
class Folded:
    """Per experiment: each arm's statistics and each sticky unit's ``(arm, propensity)``."""

    arms: dict[str, dict[str, ArmStatsRow]] = field(default_factory=dict)
    assignments: dict[str, dict[str, tuple[str, float]]] = field(default_factory=dict)


def _empty(arm_id: str) -> ArmStatsRow:
    return ArmStatsRow(arm_id, 0, 0.0, 0.0, 0.0, None, 0.0)


def fold(
    events: Iterable[Event], seed: Mapping[str, Iterable[ArmStatsRow]] | None = None
) -> Folded:
    """Replay events in log order (see the module docstring), each arm starting from its
    ``seed`` row (the statistics it was created with, as a store keeps them) or from zero.

    A ``reset`` empties the experiment's statistics and assignments; a
    ``set_stats`` overwrites one arm (its ``ips`` sums start again); a decision
    counts for its arm and, with a unit, is that unit's assignment (a later
    decision of the unit replaces it, as a re-draw after its arm was disabled
    does); a reward (or a ``default`` outcome) adds to its arm and, joined to its
    decision, to the ``ips`` sums; ``part`` and ``late`` events add nothing (a
    summed outcome is logged as a ``reward`` when its window closes). The shift of
    an arm's squares is its first reward.
    """
    out = Folded()
    for experiment_id, rows in (seed or {}).items():
        out.arms[experiment_id] = {r.arm_id: dataclasses.replace(r) for r in rows}
    decided: dict[str, DecisionRef] = {}
    for e in events:
        arms = out.arms.setdefault(e.experiment_id, {})
        if e.kind == "reset":
            arms.clear()
            out.assignments.pop(e.experiment_id, None)
            continue
        if e.arm_id is None:
            continue
        if e.kind == "set_stats":
            d = e.data
            arms[e.arm_id] = ArmStatsRow(
                e.arm_id,
                int(d["decisions"]),
                float(d["rewards"]),
                float(d["reward_sum"]),
                float(d["reward_sq_sum"]),
                None,
                float(d.get("shift", 0.0)),
            )
            continue
        row = arms.get(e.arm_id)
        if row is None:
            row = arms[e.arm_id] = _empty(e.arm_id)
        if e.kind == "decision":
            row.decisions += 1
            eligible, policy = _meta(e.data)
            ref = DecisionRef(e.arm_id, False, e.propensity or 0.0, None, eligible, policy)
            if e.decision_id is not None:
                decided[e.decision_id] = ref
            if e.unit_id is not None:
                out.assignments.setdefault(e.experiment_id, {})[e.unit_id] = (
                    e.arm_id,
                    float(e.propensity or 0.0),
                )
        elif e.kind in OUTCOME_KINDS:  # a reward, or the default at a window's close
            r, c = float(e.reward or 0.0), float(e.count or 0.0)
            if row.rewards == 0:
                row.shift = r
            dev = r - row.shift
            row.rewards += c
            row.reward_sum += r * c
            row.reward_sq_sum += dev * dev * c
            joined = decided.get(e.decision_id) if e.decision_id is not None else None
            terms = ips_terms(joined, r, c) if joined is not None else None
            if terms is not None:
                where, values = terms
                ips = row.ips = ips_row(row.ips)
                for i, value in enumerate(values):
                    ips[where + i] += value
    return out


def _meta(data: object) -> tuple[int | None, bool]:
    """``(K, policy)`` of a decision's decoded ``data`` (see ``rows.decision_meta``)."""
    if not isinstance(data, dict) or not isinstance(data.get("k"), int):
        return None, True
    return data["k"], data.get("policy", True) is not False
