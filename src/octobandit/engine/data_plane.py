"""The data plane: decisions and rewards, run in groups committed in one transaction.

See :meth:`DataPlaneMixin.execute` (group commit).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from octobandit.engine.base import EngineBase
from octobandit.engine.bounds import MAX_ABS_REWARD, MAX_COUNT, MAX_TOTAL, total_exceeded
from octobandit.engine.context import context_vector
from octobandit.engine.live import _Live, add_reward, write_changes
from octobandit.engine.logged import check_logged, log_group, snapshot
from octobandit.engine.ops import (
    DecideOp,
    LogOp,
    LogResult,
    Op,
    RewardItem,
    RewardOp,
    RewardResult,
)
from octobandit.engine.sizes import check_size
from octobandit.errors import (
    BadRequest,
    Conflict,
    InvalidInput,
    NotFound,
    OctobanditError,
    StorageUnavailable,
)
from octobandit.model import DecisionEvent, DecisionRef, RewardEvent
from octobandit.policies.base import sample_categorical
from octobandit.storage.base import BatchTx
from octobandit.wire import LoggedDecision, decode_logged

log = logging.getLogger("octobandit.engine")
_HUGE = 1e308  # compared before math.isfinite, which overflows on a huge int


class DataPlaneMixin(EngineBase):
    """Decisions and rewards: the engine's data-plane calls."""

    def _decision_id(self, ts: float) -> str:
        # time-ordered (appends to the index) and 80 random bits
        return f"{int(ts * 1000):012x}{self._ids.getrandbits(80):020x}"

    def decide(
        self,
        experiment_id: str,
        *,
        n: int | None = None,
        unit_id: str | None = None,
        context: Any = None,
    ) -> Any:
        """One decision (a dict), or ``{"decisions": [...]}`` when ``n`` is given."""
        return self._one(DecideOp(experiment_id, n, unit_id, context))

    def reward(self, experiment_id: str, items: Sequence[RewardItem]) -> RewardResult:
        result: RewardResult = self._one(RewardOp(experiment_id, list(items)))
        return result

    def _one(self, op: Op) -> Any:
        (result,) = self.execute([op])
        if isinstance(result, BaseException):
            raise result
        return result

    def execute(self, ops: Sequence[Op]) -> list[Any]:
        """Run a group of data-plane requests in one transaction.

        Returns one entry per request: its result, or the
        :class:`~octobandit.errors.OctobanditError` that rejected it (nothing
        of a rejected request is written). Each experiment's share of the
        group runs in its own savepoint: an unexpected exception there (a bug,
        a poisoned state) is put in the slots of that experiment's requests
        (their writes are undone, its cached state dropped) while the others
        commit. A storage-wide failure
        (:class:`~octobandit.errors.StorageUnavailable`) rolls the whole group
        back and is raised.
        """
        start = time.perf_counter()
        try:
            return self._execute(ops)
        except StorageUnavailable as exc:
            self.telemetry.storage_error(exc.code)
            raise
        finally:
            self.telemetry.commit(len(ops), time.perf_counter() - start)

    def _execute(self, ops: Sequence[Op]) -> list[Any]:
        results: list[Any] = [None] * len(ops)
        parts: dict[
            str,
            tuple[list[tuple[int, DecideOp]], list[tuple[int, RewardOp]], list[tuple[int, LogOp]]],
        ] = {}
        for i, op in enumerate(ops):
            if isinstance(op, DecideOp):
                try:
                    self._check_decide(op)
                except OctobanditError as exc:
                    results[i] = exc
                    continue
                parts.setdefault(op.experiment_id, ([], [], []))[0].append((i, op))
            elif isinstance(op, RewardOp):
                parts.setdefault(op.experiment_id, ([], [], []))[1].append((i, op))
            else:
                try:
                    check_logged(op, self.limits)
                except OctobanditError as exc:
                    results[i] = exc
                    continue
                parts.setdefault(op.experiment_id, ([], [], []))[2].append((i, op))
        try:
            with self.storage.batch() as tx:
                if tx.others_wrote():  # re-read what another engine may have changed
                    self._reread.update(self._live)
                for experiment_id, (decides, rewards, logged) in parts.items():
                    try:
                        with tx.savepoint():
                            self._experiment_part(
                                tx, experiment_id, decides, rewards, results, logged
                            )
                    except StorageUnavailable:
                        raise
                    except Exception as exc:  # a bug or a poisoned experiment: only its requests
                        self._live.pop(experiment_id, None)
                        log.exception("group commit: experiment %r failed", experiment_id)
                        for i, _ in [*decides, *rewards, *logged]:
                            if not isinstance(results[i], OctobanditError):
                                results[i] = exc
        except BaseException:
            self._live.clear()  # the cache may hold uncommitted changes
            self._reread.clear()
            raise
        return results

    def _experiment_part(
        self,
        tx: BatchTx,
        experiment_id: str,
        decides: list[tuple[int, DecideOp]],
        rewards: list[tuple[int, RewardOp]],
        results: list[Any],
        logged: list[tuple[int, LogOp]] | None = None,
    ) -> None:
        """One experiment's share of a group: decisions (the service's, then those made
        locally), then rewards, then its statistics."""
        if decides:
            self._decide_group(tx, experiment_id, decides, results)
        if logged:
            self._logged_group(tx, experiment_id, logged, results)
        if rewards:
            self._reward_group(tx, rewards, results)
        live = self._live.get(experiment_id)
        if live is not None:
            write_changes(tx, live)

    def log_decisions(
        self, experiment_id: str, items: Sequence[LoggedDecision] | bytes
    ) -> LogResult:
        """Record decisions made locally on a policy snapshot (all accepted, or none);
        ``items`` may be the JSON body of ``POST .../decisions/logged``."""
        if isinstance(items, bytes):
            items = decode_logged(items)
        result: LogResult = self._one(LogOp(experiment_id, list(items)))
        return result

    def policy_snapshot(self, experiment_id: str) -> dict[str, Any]:
        """What a local decider needs to decide like the service (see :mod:`.logged`)."""
        with self.storage.batch() as tx:
            if tx.others_wrote():
                self._reread.update(self._live)
            return snapshot(self._load(tx, experiment_id), self._serving_winner)

    def _logged_group(
        self,
        tx: BatchTx,
        experiment_id: str,
        group: list[tuple[int, LogOp]],
        results: list[Any],
    ) -> None:
        try:
            live = self._load(tx, experiment_id)
        except OctobanditError as exc:
            for i, _ in group:
                results[i] = exc
            return
        log_group(tx, live, group, results, self._clock())

    def _check_decide(self, op: DecideOp) -> None:
        limit = self.limits.max_decisions_per_request
        if op.n is not None and (
            isinstance(op.n, bool) or not isinstance(op.n, int) or not 1 <= op.n <= limit
        ):
            raise InvalidInput(f"must be an integer from 1 to {limit}", field="n")
        if op.unit_id is not None:
            if (
                not isinstance(op.unit_id, str)
                or not 0 < len(op.unit_id) <= self.limits.max_unit_id_chars
            ):
                raise InvalidInput(
                    f"must be a string of 1 to {self.limits.max_unit_id_chars} characters",
                    field="unit_id",
                )
            if op.n is not None:
                raise InvalidInput("a sticky decision (unit_id) is a single decision", field="n")
        if op.context is not None:
            size = check_size(op.context, self.limits.max_context_bytes, "context")
            if (op.n or 1) * size > self.limits.max_decision_bytes:
                raise InvalidInput(
                    f"n × context is {(op.n or 1) * size} bytes, over the"
                    f" {self.limits.max_decision_bytes}-byte limit of one request:"
                    " ask for fewer decisions or send a smaller context",
                    field="n",
                )

    def _decide_group(
        self,
        tx: BatchTx,
        experiment_id: str,
        group: list[tuple[int, DecideOp]],
        results: list[Any],
    ) -> None:
        try:
            live = self._load(tx, experiment_id)
            if not live.any_enabled:
                raise Conflict(
                    f"experiment {experiment_id!r} has no enabled arm: add or enable an arm",
                    code="no_enabled_arm",
                )
        except OctobanditError as exc:
            for i, _ in group:
                results[i] = exc
            return
        budget = self.limits.max_decision_bytes
        if live.payload_bytes and any((op.n or 1) * live.payload_bytes > budget for _, op in group):
            valid = []
            for i, op in group:
                if (op.n or 1) * live.payload_bytes > budget:
                    results[i] = InvalidInput(
                        f"n × payload (the largest arm payload is {live.payload_bytes} bytes)"
                        f" would answer more than {budget} bytes: ask for at most"
                        f" {max(1, budget // live.payload_bytes)} decisions",
                        field="n",
                    )
                else:
                    valid.append((i, op))
            group = valid
            if not group:
                return
        features = live.record.options.get("context_features")
        if features is not None:
            valid = []
            for i, op in group:
                try:
                    op.context = context_vector(op.context, features)
                except OctobanditError as exc:
                    results[i] = exc
                    continue
                valid.append((i, op))
            group = valid
            if not group:
                return
        indices = [i for i, _ in group]
        ops = [op for _, op in group]
        ts = self._clock()
        sticky: dict[str, tuple[str, float]] = {}
        units = [op.unit_id for op in ops if op.unit_id is not None]
        if units:
            sticky = {
                unit: (arm, p)
                for unit, (arm, p) in tx.find_assignments(experiment_id, units).items()
                if arm in live.index and live.enabled[live.index[arm]]
            }
        fresh = sum((op.n or 1) for op in ops if op.unit_id not in sticky)
        arms: list[int] = []
        props: list[float] = []
        explored = True  # fresh decisions drawn by the policy (not paused-greedy or a winner)
        eligible = int(live.enabled.sum())
        if fresh:
            winner = self._serving_winner(live)
            if winner is not None:
                arms, props, explored = [winner] * fresh, [1.0] * fresh, False
            elif live.record.status != "paused" and live.policy.contextual:
                assert live.state is not None
                contexts = np.array(
                    [
                        op.context
                        for op in ops
                        if op.unit_id not in sticky
                        for _ in range(op.n or 1)
                    ],
                    dtype=np.float64,
                ).reshape(fresh, live.dim)
                probs = live.policy.state_probabilities(
                    live.stats, live.enabled, live.state, contexts=contexts, time=ts
                )
                drawn = sample_categorical(probs, self.rng)
                arms = drawn.tolist()
                props = probs[np.arange(fresh), drawn].tolist()
            elif live.record.status != "paused":
                now = time.monotonic()
                if live.probs is None or (
                    live.stale and now - live.probs_at >= self.refresh_interval
                ):
                    if live.state is not None:
                        live.probs = live.policy.state_probabilities(
                            live.stats, live.enabled, live.state, time=ts
                        ).reshape(-1)
                    else:
                        live.probs = live.policy.probabilities(live.stats, live.enabled)
                    live.probs_at, live.stale = now, False
                choice = live.policy.choose(
                    live.stats, self.rng, size=fresh, enabled=live.enabled, probabilities=live.probs
                )
                arms = choice.arms.tolist()
                props = choice.propensities.tolist()
            else:  # paused: serve the best estimate, no exploration
                best = live.policy.greedy(live.stats, live.enabled)
                arms, props, explored = [best] * fresh, [1.0] * fresh, False
        events: list[DecisionEvent] = []
        new_units: list[tuple[str, str, float]] = []
        k = 0
        for op, i in zip(ops, indices, strict=True):
            out = []
            for _ in range(op.n or 1):
                if op.unit_id is not None and op.unit_id in sticky:
                    arm_id, p = sticky[op.unit_id]
                    j = live.index[arm_id]
                    # a re-serve repeats its first draw; its assignment keeps no flag, but a
                    # draw with propensity 1 among several arms carried no exploration
                    policy = p < 1.0 or eligible == 1
                else:
                    j, p, policy = arms[k], props[k], explored
                    k += 1
                    arm_id = live.arm_ids[j]
                    if op.unit_id is not None:
                        sticky[op.unit_id] = (arm_id, p)
                        new_units.append((op.unit_id, arm_id, p))
                decision_id = self._decision_id(ts)
                events.append(
                    DecisionEvent(
                        ts,
                        experiment_id,
                        decision_id,
                        arm_id,
                        p,
                        op.unit_id,
                        op.context,
                        eligible=eligible,
                        policy=policy,
                    )
                )
                live.decisions[j] += 1
                live.add_decisions[j] += 1
                live.dirty.add(j)
                out.append(
                    {
                        "decision_id": decision_id,
                        "experiment_id": experiment_id,
                        "arm_id": arm_id,
                        "payload": live.payloads[j],
                        "propensity": p,
                    }
                )
            results[i] = out[0] if op.n is None else {"decisions": out}
        tx.append_decisions(events)
        if new_units:
            tx.save_assignments(experiment_id, new_units)

    @staticmethod
    def _serving_winner(live: _Live) -> int | None:
        """The winner's index when a concluded experiment serves it only (if still enabled)."""
        conclusion = live.record.conclusion
        if live.record.status != "concluded" or conclusion is None:
            return None
        if conclusion.get("after_conclusion") != "serve_winner":
            return None
        j = live.index.get(conclusion.get("winner", ""))
        return j if j is not None and live.enabled[j] else None

    def _check_rewards(self, op: RewardOp, binary: bool) -> None:
        if not op.items:
            raise BadRequest("no rewards given", code="empty")
        if len(op.items) > self.limits.max_rewards_per_request:
            raise InvalidInput(
                f"at most {self.limits.max_rewards_per_request} rewards per request",
                field="rewards",
            )
        many = len(op.items) > 1
        for i, item in enumerate(op.items):
            r = item.reward
            bad_count = (
                isinstance(item.count, bool)
                or not isinstance(item.count, int | float)
                or not 1 <= item.count <= MAX_COUNT
                or item.count != int(item.count)
                or (item.decision_id is not None and item.count != 1)
            )
            number = isinstance(r, int | float) and -_HUGE < r < _HUGE  # NaN fails too
            if (
                number
                and math.isfinite(r)
                and abs(r) <= MAX_ABS_REWARD
                and (not binary or 0.0 <= r <= 1.0)
                and (item.decision_id is None) != (item.arm_id is None)
                and not bad_count
            ):
                continue
            where = f"rewards[{i}]." if many else ""
            if not number or not math.isfinite(r):
                raise InvalidInput("must be a finite number", field=f"{where}reward")
            if abs(r) > MAX_ABS_REWARD:
                raise InvalidInput(
                    f"must lie in [-{MAX_ABS_REWARD:.0e}, {MAX_ABS_REWARD:.0e}]",
                    field=f"{where}reward",
                )
            if binary and not 0.0 <= r <= 1.0:
                raise InvalidInput(
                    "a binary experiment takes rewards in [0, 1]", field=f"{where}reward"
                )
            if bad_count:
                raise InvalidInput(
                    f"count is a whole number from 1 to {MAX_COUNT:,}, only with arm_id",
                    field=f"{where}count",
                )
            raise InvalidInput(
                "give either decision_id or arm_id", field=where.rstrip(".") or "body"
            )

    def _reward_group(
        self, tx: BatchTx, group: list[tuple[int, RewardOp]], results: list[Any]
    ) -> None:
        """Apply a group's reward requests: one look-up and one insert for the group.

        Each request is all-or-nothing; a decision rewarded twice (in earlier
        groups, earlier in this group or twice in one request) counts once.
        """
        checked: dict[str, list[tuple[int, RewardOp]]] = {}
        for i, op in group:
            try:
                live = self._load(tx, op.experiment_id)
                self._check_rewards(op, live.record.reward_type == "binary")
            except OctobanditError as exc:
                results[i] = exc
                continue
            checked.setdefault(op.experiment_id, []).append((i, op))
        ts = self._clock()
        events: list[RewardEvent] = []
        for experiment_id, ops in checked.items():
            live = self._live[experiment_id]
            wanted = [it.decision_id for _, op in ops for it in op.items if it.decision_id]
            rule = live.attribution
            first = rule is not None and rule.aggregation == "first"
            found = tx.find_decisions(experiment_id, wanted, parts=first) if wanted else {}
            rewarded = {d for d, ref in found.items() if ref.rewarded}
            settled = tx.settled_through(experiment_id) if live.attribution is not None else 0
            for i, op in ops:
                try:
                    results[i] = self._apply(live, op, found, rewarded, events, ts, settled)
                except OctobanditError as exc:
                    results[i] = exc
        if events:
            tx.append_rewards(events)

    @staticmethod
    def _apply(
        live: _Live,
        op: RewardOp,
        found: Mapping[str, DecisionRef],
        rewarded: set[str],
        events: list[RewardEvent],
        ts: float,
        settled: int = 0,
    ) -> RewardResult:
        """One reward request. With an attribution window (``settled``: the experiment's
        watermark), a reward inside the decision's window is logged as a ``part`` and
        counted when the window closes (see :mod:`.settlement`): the first part, or
        with ``aggregation: sum`` their total. One after the window closed is logged
        as ``late`` and never counted."""
        rule = live.attribution
        arms: list[int] = []
        for n, item in enumerate(op.items):  # resolve everything before changing anything
            if item.decision_id is not None:
                hit = found.get(item.decision_id)
                if hit is None:
                    raise NotFound(
                        f"decision {item.decision_id!r} not found in experiment"
                        f" {op.experiment_id!r}",
                        code="decision_not_found",
                    )
                arms.append(live.index[hit[0]])
            elif live.policy.contextual or rule is not None:
                raise InvalidInput(
                    "a contextual experiment takes rewards by decision_id"
                    " (the context comes from the decision)"
                    if rule is None
                    else "an experiment with an attribution window takes rewards by"
                    " decision_id (a decision never rewarded gets the default)",
                    field=f"rewards[{n}].arm_id" if len(op.items) > 1 else "arm_id",
                )
            else:
                j = live.index.get(item.arm_id)  # type: ignore[arg-type]
                if j is None:
                    raise NotFound(
                        f"arm {item.arm_id!r} not found in experiment {op.experiment_id!r}",
                        code="arm_not_found",
                    )
                arms.append(j)
        added: dict[int, float] = {}
        for item, j in zip(op.items, arms, strict=True):
            added[j] = added.get(j, 0.0) + float(item.count)
        for j, c in added.items():
            if live.n[j] + c > MAX_TOTAL:
                raise total_exceeded(live.arm_ids[j], "rewards")
        accepted = late = 0
        for item, j in zip(op.items, arms, strict=True):
            r, c = float(item.reward), float(item.count)
            ref = found.get(item.decision_id) if item.decision_id is not None else None
            kind = "reward"
            if rule is not None and ref is not None:
                assert ref.seq is not None and ref.ts is not None
                if ref.seq <= settled or ts >= ref.ts + rule.window:
                    kind = "late"  # after the window (settled or not): never counted
                elif rule.aggregation == "first" and item.decision_id in rewarded:
                    continue  # a duplicate: the first reward is the outcome
                else:
                    kind = "part"  # counted when the window closes
            elif item.decision_id is not None and item.decision_id in rewarded:
                continue
            if kind != "late" and item.decision_id is not None:
                rewarded.add(item.decision_id)
            events.append(
                RewardEvent(ts, op.experiment_id, live.arm_ids[j], r, c, item.decision_id, kind)
            )
            if kind == "late":
                late += 1
                continue
            accepted += 1
            if kind == "reward":
                add_reward(live, j, r, c, ref, ts)
                live.stale = True
        return RewardResult(
            accepted=accepted,
            duplicates=len(op.items) - accepted - late,
            late=None if rule is None else late,
        )
