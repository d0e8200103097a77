"""Local decisions: the policy snapshot a client decides from, and the decisions it logs.

A snapshot's ``version`` is ``"<record version>.<changes>"``: the experiment's
record version (bumped by every control-plane change: arms, policy, status)
and the number of statistics changes it had seen (decisions plus rewards
counted so far). A logged decision's version is *known* when it could have
been published: its record version is not newer than the experiment's, and,
for the current record version, its change count is not ahead of the
statistics. Any older snapshot is accepted (its decisions were served; its
propensities are what was used), so nothing needs to be remembered to check
a version.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import numpy as np

from octobandit.engine.context import context_vector
from octobandit.engine.live import _Live
from octobandit.engine.ops import LogOp, LogResult
from octobandit.engine.sizes import check_size
from octobandit.engine.specs import Limits
from octobandit.errors import BadRequest, InvalidInput
from octobandit.model import DecisionEvent
from octobandit.storage.base import BatchTx
from octobandit.wire import LoggedDecision

#: the decision ids the service makes, and accepts from local deciders: 32 hex digits
#: (12 of milliseconds since the epoch, 20 random)
DECISION_ID = re.compile(r"[0-9a-f]{32}")
_VERSION = re.compile(r"([1-9][0-9]{0,17})\.(0|[1-9][0-9]{0,17})")


def changes(live: _Live) -> int:
    """Statistics changes counted so far: decisions plus rewards (never decreases,
    except by a reset or an admin overwrite, which also bump the record version)."""
    return int(sum(live.decisions)) + int(live.n.sum())


def snapshot(live: _Live, winner: Callable[[_Live], int | None]) -> dict[str, Any]:
    """The experiment's policy snapshot (see the module's docstring for ``version``)."""
    record = live.record
    stats = live.stats
    k = len(live.arm_ids)
    c = stats.c if stats.c is not None else np.zeros(k)
    served = winner(live)
    return {
        "experiment_id": record.id,
        "version": f"{record.version}.{changes(live)}",
        "status": record.status,
        "policy": record.policy,
        "reward_type": record.reward_type,
        "context_features": record.options.get("context_features"),
        "arms": [
            {"id": arm_id, "enabled": bool(live.enabled[j]), "payload": live.payloads[j]}
            for j, arm_id in enumerate(live.arm_ids)
        ],
        "stats": {
            "n": stats.n.tolist(),
            "s": stats.s.tolist(),
            "ss": stats.ss.tolist(),
            "c": np.asarray(c, dtype=np.float64).tolist(),
        },
        "state": None
        if live.state is None
        else {
            name: {"shape": list(v.shape), "data": v.ravel().tolist()}
            for name, v in live.state.items()
        },
        "winner": None if served is None else live.arm_ids[served],
    }


def check_logged(op: LogOp, limits: Limits) -> None:
    """Checks that need no state: sizes, formats, ranges (the first bad value is named)."""
    items = op.items
    if not items:
        raise BadRequest("no decisions given", code="empty")
    if len(items) > limits.max_rewards_per_request:
        raise InvalidInput(
            f"at most {limits.max_rewards_per_request} decisions per request", field="decisions"
        )
    ok_id = DECISION_ID.fullmatch
    versions: set[str] = set()
    max_unit = limits.max_unit_id_chars
    for n, item in enumerate(items):
        p = item.propensity
        ts = item.ts
        unit = item.unit_id
        if (
            type(item.decision_id) is str
            and ok_id(item.decision_id)
            and type(item.arm_id) is str
            and type(p) is float
            and 0.0 < p <= 1.0
            and (item.version in versions or _version_ok(item.version, versions))
            and (unit is None or (type(unit) is str and 0 < len(unit) <= max_unit))
            and (ts is None or (type(ts) is float and 0.0 <= ts < 1e11))
        ):
            if item.context is not None:
                check_size(item.context, limits.max_context_bytes, f"decisions[{n}].context")
            continue
        _refuse(n, item, limits)


def _version_ok(version: Any, seen: set[str]) -> bool:
    if type(version) is str and _VERSION.fullmatch(version):
        seen.add(version)
        return True
    return False


def _refuse(n: int, item: LoggedDecision, limits: Limits) -> None:
    """Raise the error naming the first bad field of ``item`` (at index ``n``)."""
    where = f"decisions[{n}]."
    if not isinstance(item.decision_id, str) or not DECISION_ID.fullmatch(item.decision_id):
        raise InvalidInput("must be 32 lowercase hex digits", field=f"{where}decision_id")
    if not isinstance(item.arm_id, str):
        raise InvalidInput("must be a string", field=f"{where}arm_id")
    p = item.propensity
    if (
        isinstance(p, bool)
        or not isinstance(p, int | float)
        or not math.isfinite(p)
        or not 0.0 < p <= 1.0
    ):
        raise InvalidInput("must be a number in (0, 1]", field=f"{where}propensity")
    if not isinstance(item.version, str) or not _VERSION.fullmatch(item.version):
        raise InvalidInput(
            "must be a snapshot version <record>.<changes>",
            field=f"{where}version",
            code="unknown_version",
        )
    if item.unit_id is not None and (
        not isinstance(item.unit_id, str) or not 0 < len(item.unit_id) <= limits.max_unit_id_chars
    ):
        raise InvalidInput(
            f"must be a string of 1 to {limits.max_unit_id_chars} characters",
            field=f"{where}unit_id",
        )
    if item.ts is not None and (
        isinstance(item.ts, bool) or not isinstance(item.ts, int | float) or not 0 <= item.ts < 1e11
    ):
        raise InvalidInput("must be seconds since the epoch", field=f"{where}ts")
    if type(p) is not float:  # an int 1 (valid): made a float, checked again
        item.propensity = float(p)
    if item.ts is not None and type(item.ts) is not float:
        item.ts = float(item.ts)
    check_logged(LogOp("", [item]), limits)


def log_group(
    tx: BatchTx,
    live: _Live,
    group: list[tuple[int, LogOp]],
    results: list[Any],
    now: float,
) -> None:
    """Record a group's logged decisions, counted like the service's own (each request
    all or nothing; a decision id already recorded counts as a duplicate)."""
    record = live.record
    current = changes(live)
    features = record.options.get("context_features")
    ids = [item.decision_id for _, op in group for item in op.items]
    known = set(tx.find_decisions(record.id, ids)) if ids else set()
    eligible = int(live.enabled.sum())
    events: list[DecisionEvent] = []
    assigned: dict[str, tuple[str, float]] = {}
    index = live.index
    deleted = [a.deleted for a in record.arms]
    known_versions: dict[str, bool] = {}
    for i, op in group:
        arms: list[int] = []
        contexts: list[Any] = []
        try:
            for n, item in enumerate(op.items):
                ok = known_versions.get(item.version)
                if ok is None:
                    rv, count = (int(x) for x in item.version.split("."))
                    ok = rv < record.version or (rv == record.version and count <= current)
                    known_versions[item.version] = ok
                if not ok:
                    raise InvalidInput(
                        f"unknown snapshot version {item.version!r} (the experiment is at"
                        f" {record.version}.{current})",
                        field=f"decisions[{n}].version",
                        code="unknown_version",
                    )
                j = index.get(item.arm_id)
                if j is None or deleted[j]:
                    raise InvalidInput(
                        f"unknown arm {item.arm_id!r} in experiment {record.id!r}",
                        field=f"decisions[{n}].arm_id",
                        code="arm_not_found",
                    )
                arms.append(j)
                context = item.context
                if features is not None:
                    context = context_vector(context, features)
                contexts.append(context)
        except InvalidInput as exc:
            results[i] = exc
            continue
        accepted = 0
        added = [0] * len(live.arm_ids)
        for item, j, context in zip(op.items, arms, contexts, strict=True):
            if item.decision_id in known:
                continue
            known.add(item.decision_id)
            p = item.propensity
            ts = item.ts
            events.append(
                DecisionEvent(
                    now if ts is None or ts > now else ts,
                    record.id,
                    item.decision_id,
                    item.arm_id,
                    p,
                    item.unit_id,
                    context,
                    eligible,
                    p < 1.0 or eligible == 1,
                    item.version,
                )
            )
            added[j] += 1
            if item.unit_id is not None and item.unit_id not in assigned:
                assigned[item.unit_id] = (item.arm_id, p)
            accepted += 1
        for j, c in enumerate(added):
            if c:
                live.decisions[j] += c
                live.add_decisions[j] += c
                live.dirty.add(j)
        results[i] = LogResult(accepted=accepted, duplicates=len(op.items) - accepted)
    if events:
        tx.append_decisions(events)
    if assigned:  # a unit's first decision wins: keep assignments the service already has
        have = tx.find_assignments(record.id, list(assigned))
        fresh = [(u, arm, p) for u, (arm, p) in assigned.items() if u not in have]
        if fresh:
            tx.save_assignments(record.id, fresh)
