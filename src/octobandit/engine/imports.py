"""Imported history: decisions made elsewhere, with their outcomes, recorded in batches.

``octobandit import`` reads logged bandit feedback (our own export, the Open Bandit
Dataset's CSV, Vowpal Wabbit's DSJSON) and hands it to :meth:`ImportMixin.import_logged`
a batch at a time. One batch is one data-plane transaction: its decisions are appended
to the event log with their original timestamps, propensities and contexts, its
outcomes as ``reward`` (or ``default``) events joined to their decision, and the
statistics (counts, sums, importance-weighted sums, a stateful or contextual policy's
state) move through the same path as the service's own rewards
(:func:`octobandit.engine.live.add_reward`). A batch is all or nothing.

Idempotent by decision id: a decision already in the experiment's log counts as a
duplicate and adds nothing; an outcome adds only if its decision has none yet. A
re-run after a crash therefore resumes exactly once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from octobandit.engine.base import EngineBase
from octobandit.engine.bounds import MAX_ABS_REWARD
from octobandit.engine.context import context_vector
from octobandit.engine.live import _Live, add_reward, write_changes
from octobandit.engine.logged import DECISION_ID
from octobandit.engine.sizes import check_size
from octobandit.engine.specs import Limits
from octobandit.errors import Conflict, InvalidInput
from octobandit.model import OUTCOME_KINDS, DecisionEvent, DecisionRef, RewardEvent
from octobandit.storage.base import BatchTx
from octobandit.storage.rows import json_text

#: the largest batch one call takes (one transaction)
MAX_IMPORT_BATCH = 50_000


@dataclass(slots=True)
class ImportedDecision:
    """A decision made elsewhere: ``ts`` is when it was made (kept as the event's time);
    ``eligible`` the number of arms it chose from (``None``: the experiment's enabled
    arms) and ``policy`` whether an exploring policy made it (see ``DecisionEvent``)."""

    decision_id: str
    arm_id: str
    propensity: float
    ts: float
    context: Any = None
    unit_id: str | None = None
    eligible: int | None = None
    policy: bool | None = None


@dataclass(slots=True)
class ImportedOutcome:
    """A decision's outcome (``kind``: ``reward`` or ``default``) at time ``ts``."""

    decision_id: str
    reward: float
    ts: float
    kind: str = "reward"


@dataclass(slots=True)
class ImportResult:
    """What one batch recorded: new decisions and outcomes; duplicates (already in the
    log); outcomes whose decision is neither in the batch nor in the log (skipped)."""

    decisions: int = 0
    duplicate_decisions: int = 0
    outcomes: int = 0
    duplicate_outcomes: int = 0
    orphans: int = 0


def check_import(
    live: _Live,
    decisions: Sequence[ImportedDecision],
    outcomes: Sequence[ImportedOutcome],
    limits: Limits,
) -> list[Any]:
    """Check a batch against the experiment (the first bad value is named as
    ``decisions[n].field`` or ``outcomes[n].field``); returns each decision's context
    as it will be logged (the declared features' vector, if the experiment has them)."""
    if len(decisions) + len(outcomes) > MAX_IMPORT_BATCH:
        raise InvalidInput(f"at most {MAX_IMPORT_BATCH} rows per batch", field="batch")
    features = live.record.options.get("context_features")
    index = live.index
    deleted = [a.deleted for a in live.record.arms]
    contexts: list[Any] = []
    for n, d in enumerate(decisions):
        where = f"decisions[{n}]."
        if type(d.decision_id) is not str or not DECISION_ID.fullmatch(d.decision_id):
            raise InvalidInput("must be 32 lowercase hex digits", field=f"{where}decision_id")
        j = index.get(d.arm_id)
        if j is None or deleted[j]:
            raise InvalidInput(
                f"unknown arm {d.arm_id!r} in experiment {live.record.id!r}",
                field=f"{where}arm_id",
                code="arm_not_found",
            )
        p = d.propensity
        if type(p) is not float or not 0.0 < p <= 1.0:
            raise InvalidInput("must be a number in (0, 1]", field=f"{where}propensity")
        if type(d.ts) is not float or not 0.0 <= d.ts < 1e11:
            raise InvalidInput("must be seconds since the epoch", field=f"{where}ts")
        if d.unit_id is not None and (
            type(d.unit_id) is not str or not 0 < len(d.unit_id) <= limits.max_unit_id_chars
        ):
            raise InvalidInput(
                f"must be a string of 1 to {limits.max_unit_id_chars} characters",
                field=f"{where}unit_id",
            )
        if d.eligible is not None and (type(d.eligible) is not int or d.eligible < 1):
            raise InvalidInput("must be a positive whole number", field=f"{where}eligible")
        context = d.context
        if context is not None:
            check_size(context, limits.max_context_bytes, f"{where}context")
        if features is not None:
            try:
                context = context_vector(context, features)
            except InvalidInput as exc:
                raise InvalidInput(exc.message, field=f"{where}{exc.field}") from None
        contexts.append(context)
    binary = live.record.reward_type == "binary"
    for n, o in enumerate(outcomes):
        where = f"outcomes[{n}]."
        if type(o.decision_id) is not str or not DECISION_ID.fullmatch(o.decision_id):
            raise InvalidInput("must be 32 lowercase hex digits", field=f"{where}decision_id")
        r = o.reward
        if type(r) is not float or not math.isfinite(r) or abs(r) > MAX_ABS_REWARD:
            raise InvalidInput(
                f"must be a finite number in [-{MAX_ABS_REWARD:.0e}, {MAX_ABS_REWARD:.0e}]",
                field=f"{where}reward",
            )
        if binary and not 0.0 <= r <= 1.0:
            raise InvalidInput(
                "a binary experiment takes rewards in [0, 1]", field=f"{where}reward"
            )
        if type(o.ts) is not float or not 0.0 <= o.ts < 1e11:
            raise InvalidInput("must be seconds since the epoch", field=f"{where}ts")
        if o.kind not in OUTCOME_KINDS:
            raise InvalidInput(f"must be one of {list(OUTCOME_KINDS)}", field=f"{where}kind")
    return contexts


def import_group(
    tx: BatchTx,
    live: _Live,
    decisions: Sequence[ImportedDecision],
    outcomes: Sequence[ImportedOutcome],
    contexts: Sequence[Any],
) -> ImportResult:
    """Record one checked batch (see the module's docstring) in the transaction ``tx``."""
    record = live.record
    experiment_id = record.id
    ids = [d.decision_id for d in decisions]
    ids.extend(o.decision_id for o in outcomes)
    found = tx.find_decisions(experiment_id, ids) if ids else {}
    enabled = int(live.enabled.sum())
    result = ImportResult()
    fresh: dict[str, tuple[DecisionEvent, int]] = {}
    for d, context in zip(decisions, contexts, strict=True):
        if d.decision_id in found or d.decision_id in fresh:
            result.duplicate_decisions += 1
            continue
        eligible = d.eligible if d.eligible is not None else enabled
        policy = d.policy if d.policy is not None else (d.propensity < 1.0 or eligible == 1)
        event = DecisionEvent(
            d.ts,
            experiment_id,
            d.decision_id,
            d.arm_id,
            d.propensity,
            d.unit_id,
            context,
            eligible=eligible,
            policy=policy,
        )
        fresh[d.decision_id] = (event, live.index[d.arm_id])
    if fresh:
        appended = tx.append_new_decisions([e for e, _ in fresh.values()])
        elsewhere = [d for d in fresh if d not in appended]
        if elsewhere:
            raise Conflict(
                f"decision id {elsewhere[0]!r} is already logged in another experiment of"
                " this store (import into another store, or with --rekey)",
                code="decision_elsewhere",
            )
    refs: dict[str, DecisionRef] = {}
    units: dict[str, tuple[str, float]] = {}
    contextual = live.policy.contextual  # only a contextual policy's update reads the context
    for decision_id, (e, j) in fresh.items():
        live.decisions[j] += 1
        live.add_decisions[j] += 1
        live.dirty.add(j)
        context = json_text(e.context) if contextual else None
        refs[decision_id] = DecisionRef(
            e.arm_id, False, e.propensity, context, e.eligible, e.policy, e.ts
        )
        if e.unit_id is not None:
            units[e.unit_id] = (e.arm_id, e.propensity)  # the unit's last decision, as the fold
    result.decisions = len(fresh)
    rewarded = {d for d, ref in found.items() if ref.rewarded}
    events: list[RewardEvent] = []
    for o in outcomes:
        ref = refs.get(o.decision_id) or found.get(o.decision_id)
        if ref is None:
            result.orphans += 1
            continue
        if o.decision_id in rewarded:
            result.duplicate_outcomes += 1
            continue
        rewarded.add(o.decision_id)
        j = live.index[ref.arm_id]
        events.append(
            RewardEvent(o.ts, experiment_id, ref.arm_id, o.reward, 1.0, o.decision_id, o.kind)
        )
        add_reward(live, j, o.reward, 1.0, ref, o.ts)
        live.stale = True
    result.outcomes = len(events)
    if events:
        tx.append_rewards(events)
    if units:
        tx.save_assignments(experiment_id, [(u, arm, p) for u, (arm, p) in units.items()])
    return result


class ImportMixin(EngineBase):
    """The engine's import call (``octobandit import``)."""

    def import_logged(
        self,
        experiment_id: str,
        decisions: Sequence[ImportedDecision],
        outcomes: Sequence[ImportedOutcome] = (),
    ) -> ImportResult:
        """Record a batch of decisions made elsewhere and their outcomes in one
        transaction (all or nothing; idempotent by decision id, see :mod:`.imports`).

        Refused (nothing written) with :class:`~octobandit.errors.InvalidInput` naming
        the first bad row, and with :class:`~octobandit.errors.Conflict` for an experiment
        with an attribution window or a decision id logged in another experiment.
        """
        try:
            with self.storage.batch() as tx:
                if tx.others_wrote():  # re-read what another engine may have changed
                    self._reread.update(self._live)
                live = self._load(tx, experiment_id)
                if live.attribution is not None:
                    raise Conflict(
                        f"experiment {experiment_id!r} has an attribution window: import"
                        " into an experiment without one",
                        code="attribution_window",
                    )
                contexts = check_import(live, decisions, outcomes, self.limits)
                result = import_group(tx, live, decisions, outcomes, contexts)
                write_changes(tx, live)
        except BaseException:
            self._live.pop(experiment_id, None)  # the cache may hold uncommitted changes
            raise
        return result
