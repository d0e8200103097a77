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
    """Checks that need no state: sizes, formats, ranges."""
    if not op.items:
        raise BadRequest("no decisions given", code="empty")
    if len(op.items) > limits.max_rewards_per_request:
        raise InvalidInput(
            f"at most {limits.max_rewards_per_request} decisions per request", field="decisions"
        )
    for n, item in enumerate(op.items):
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
            not isinstance(item.unit_id, str)
            or not 0 < len(item.unit_id) <= limits.max_unit_id_chars
        ):
            raise InvalidInput(
                f"must be a string of 1 to {limits.max_unit_id_chars} characters",
                field=f"{where}unit_id",
            )
        if item.context is not None:
            check_size(item.context, limits.max_context_bytes, f"{where}context")
        if item.ts is not None and (
            isinstance(item.ts, bool)
            or not isinstance(item.ts, int | float)
            or not 0 <= item.ts < 1e11
        ):
            raise InvalidInput("must be seconds since the epoch", field=f"{where}ts")


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
    for i, op in group:
        arms: list[int] = []
        contexts: list[Any] = []
        try:
            for n, item in enumerate(op.items):
                where = f"decisions[{n}]."
                rv, count = (int(x) for x in item.version.split("."))
                if rv > record.version or (rv == record.version and count > current):
                    raise InvalidInput(
                        f"unknown snapshot version {item.version!r} (the experiment is at"
                        f" {record.version}.{current})",
                        field=f"{where}version",
                        code="unknown_version",
                    )
                j = live.index.get(item.arm_id)
                if j is None or record.arms[j].deleted:
                    raise InvalidInput(
                        f"unknown arm {item.arm_id!r} in experiment {record.id!r}",
                        field=f"{where}arm_id",
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
        for item, j, context in zip(op.items, arms, contexts, strict=True):
            if item.decision_id in known:
                continue
            known.add(item.decision_id)
            p = float(item.propensity)
            ts = now if item.ts is None else min(float(item.ts), now)
            events.append(
                DecisionEvent(
                    ts,
                    record.id,
                    item.decision_id,
                    item.arm_id,
                    p,
                    item.unit_id,
                    context,
                    eligible=eligible,
                    policy=p < 1.0 or eligible == 1,
                    version=item.version,
                )
            )
            live.decisions[j] += 1
            live.add_decisions[j] += 1
            live.dirty.add(j)
            if item.unit_id is not None and item.unit_id not in assigned:
                assigned[item.unit_id] = (item.arm_id, p)
            accepted += 1
        results[i] = LogResult(accepted=accepted, duplicates=len(op.items) - accepted)
    if events:
        tx.append_decisions(events)
    if assigned:  # a unit's first decision wins: keep assignments the service already has
        have = tx.find_assignments(record.id, list(assigned))
        fresh = [(u, arm, p) for u, (arm, p) in assigned.items() if u not in have]
        if fresh:
            tx.save_assignments(record.id, fresh)
