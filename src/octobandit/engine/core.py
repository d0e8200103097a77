"""The experiment engine: life cycle, decisions, rewards and statistics.

The engine knows nothing of HTTP. Every door (the REST API, the CLI, the
Python SDK, integrations) calls it. Control-plane calls are one storage
transaction each. Data-plane work (decisions, rewards) goes through
:meth:`Engine.execute`, which runs a group of requests in one transaction:
the requests of a group succeed or fail independently, and the group's writes
are committed together (group commit), before any caller is answered.

>>> from octobandit.storage import SQLiteStorage
>>> engine = Engine(SQLiteStorage(":memory:"), seed=7)
>>> _ = engine.create_experiment({"id": "demo", "policy": {"type": "epsilon_greedy"},
...                               "arms": [{"id": "a"}, {"id": "b"}]})
>>> d = engine.decide("demo")
>>> d["arm_id"] in {"a", "b"}
True
>>> engine.reward("demo", [RewardItem(reward=1.0, decision_id=d["decision_id"])])
RewardResult(accepted=1, duplicates=0)
>>> engine.stats("demo")["total_reward"]
1.0
"""

from __future__ import annotations

import logging
import math
import os
import random
import re
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from octobandit.engine.bounds import MAX_ABS_REWARD, MAX_COUNT, MAX_TOTAL, total_exceeded
from octobandit.engine.conclusions import (
    assess,
    conclusion_view,
    parse_options,
    reward_gain,
    snapshot_data,
)
from octobandit.engine.context import context_vector, parse_features
from octobandit.engine.ops import DecideOp, Op, RewardItem, RewardOp, RewardResult
from octobandit.engine.priors import centred, check_stats, prior_pseudo_counts, prior_stats
from octobandit.engine.sizes import check_size, json_size
from octobandit.engine.state import encode_state, load_state
from octobandit.errors import (
    BadRequest,
    Conflict,
    InvalidInput,
    NotFound,
    OctobanditError,
    StorageUnavailable,
)
from octobandit.model import (
    ArmRecord,
    ArmStatsDelta,
    ArmStatsRow,
    DecisionEvent,
    DecisionRef,
    ExperimentRecord,
    RewardEvent,
    Snapshot,
    decode_json,
    iso_time,
)
from octobandit.policies import ArmStats, Policy, make_policy
from octobandit.policies.base import FloatArray, sample_categorical
from octobandit.stats.intervals import mean_interval
from octobandit.storage.base import BatchTx, Storage
from octobandit.storage.fold import IPS_EXCLUDED, IPS_SUMS, ips_base, ips_row

log = logging.getLogger("octobandit.engine")
EXPERIMENT_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
ARM_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
log = logging.getLogger("octobandit.engine")
STATUSES = ("running", "paused")  # "concluded" is reached through the stopping rule
_HUGE = 1e308  # compared before math.isfinite, which overflows on a huge int


@dataclass(frozen=True, slots=True)
class Limits:
    """Documented request limits (also enforced by the HTTP API)."""

    max_arms: int = 1000
    max_decisions_per_request: int = 1000
    max_rewards_per_request: int = 10_000
    max_body_bytes: int = 1 << 20
    max_unit_id_chars: int = 256
    max_name_chars: int = 200
    #: an arm's payload, serialised as compact JSON
    max_payload_bytes: int = 8 * 1024
    #: a decision's context, serialised as compact JSON
    max_context_bytes: int = 64 * 1024
    #: what one decision request may answer (n × largest payload) or log (n × context)
    max_decision_bytes: int = 1 << 20
    #: nesting of arrays and objects in a request body
    max_json_depth: int = 32


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


def _is_text(value: str) -> bool:
    """Whether a string is valid Unicode text (no lone surrogate such as ``"\\ud800"``)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _require(mapping: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(mapping, Mapping):
        raise InvalidInput("must be an object", field=where)
    return mapping


def _arm_record(
    spec: Any, where: str, ts: float, reward_type: str, policy: Mapping[str, Any]
) -> ArmRecord:
    spec = _require(spec, where)
    unknown = set(spec) - {"id", "payload", "enabled", "prior"}
    if unknown:
        raise InvalidInput(f"unknown fields {sorted(unknown)}", field=where)
    arm_id = spec.get("id")
    if not isinstance(arm_id, str) or not ARM_ID.fullmatch(arm_id):
        raise InvalidInput(
            "arm id must be 1-128 characters of letters, digits and . _ : -,"
            " starting with a letter or digit",
            field=f"{where}.id",
        )
    enabled = spec.get("enabled", True)
    if not isinstance(enabled, bool):
        raise InvalidInput("must be true or false", field=f"{where}.enabled")
    prior = spec.get("prior")
    if prior is not None:
        prior = prior_pseudo_counts(prior, reward_type, policy, f"{where}.prior")
    return ArmRecord(
        arm_id=arm_id, payload=spec.get("payload"), enabled=enabled, created_at=ts, prior=prior
    )


def _check_contextual(policy: Policy, options: Mapping[str, Any]) -> None:
    if policy.contextual and not options.get("context_features"):
        raise InvalidInput(
            f"policy {policy.type!r} needs the experiment's context features",
            field="context.features",
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


class Engine:
    """Experiments over a :class:`~octobandit.storage.base.Storage`.

    ``seed`` fixes the random stream (tests, simulations); by default it comes
    from the operating system, so that several worker processes never share it.

    ``refresh_interval`` (seconds) bounds how often the selection distribution
    is recomputed from new rewards under load (0: after every group). Between
    refreshes decisions are drawn from the last distribution, and the logged
    propensity is always the probability with which the served arm was drawn.
    Configuration changes (arms, status, policy) take effect at once.
    """

    def __init__(
        self,
        storage: Storage,
        *,
        seed: int | None = None,
        clock: Callable[[], float] = time.time,
        limits: Limits | None = None,
        refresh_interval: float = 0.0,
    ) -> None:
        self.storage = storage
        self.refresh_interval = refresh_interval
        self.limits = limits or Limits()
        self.rng = np.random.default_rng(seed)
        self._ids = random.Random(seed if seed is not None else int.from_bytes(os.urandom(16)))
        self._clock = clock
        self._live: dict[str, _Live] = {}
        #: cached experiments another engine may have changed since (see :meth:`_load`)
        self._reread: set[str] = set()

    # ------------------------------------------------------------------ helpers
    def _decision_id(self, ts: float) -> str:
        # time-ordered (appends to the index) and 80 random bits
        return f"{int(ts * 1000):012x}{self._ids.getrandbits(80):020x}"

    def _record(self, experiment_id: str) -> ExperimentRecord:
        record = self.storage.get_experiment(experiment_id)
        if record is None:
            raise NotFound(f"experiment {experiment_id!r} not found", code="experiment_not_found")
        return record

    def _changed(self, experiment_id: str) -> ExperimentRecord:
        self._live.pop(experiment_id, None)
        return self._record(experiment_id)

    # ------------------------------------------------------------ control plane
    def create_experiment(self, spec: Mapping[str, Any]) -> ExperimentRecord:
        """Create an experiment from ``{"id"?, "name"?, "policy"?, "arms"?, "reward"?}``."""
        spec = _require(spec, "body")
        unknown = set(spec) - {
            "id", "name", "policy", "arms", "reward", "stopping", "snapshot_interval", "context",
        }  # fmt: skip
        if unknown:
            raise InvalidInput(f"unknown fields {sorted(unknown)}", field="body")
        experiment_id = spec.get("id")
        if experiment_id is None:
            experiment_id = "exp-" + uuid.uuid4().hex[:12]
        elif not isinstance(experiment_id, str) or not EXPERIMENT_ID.fullmatch(experiment_id):
            raise InvalidInput(
                "must match [a-z0-9][a-z0-9_-]{0,63} (lower-case slug, at most 64 characters)",
                field="id",
            )
        name = spec.get("name") or experiment_id
        if (
            not isinstance(name, str)
            or len(name) > self.limits.max_name_chars
            or not _is_text(name)
        ):
            raise InvalidInput(
                f"must be a string of at most {self.limits.max_name_chars} characters", field="name"
            )
        reward = _require(spec.get("reward") or {"type": "binary"}, "reward")
        reward_type = reward.get("type", "binary")
        if set(reward) - {"type"}:
            raise InvalidInput(f"unknown fields {sorted(set(reward) - {'type'})}", field="reward")
        policy_spec = _require(spec.get("policy") or {"type": "thompson"}, "policy")
        policy = make_policy(policy_spec, reward_type)
        options = parse_options(spec)
        if spec.get("context") is not None:
            options["context_features"] = parse_features(spec["context"])
        _check_contextual(policy, options)
        ts = self._clock()
        arm_specs = spec.get("arms") or []
        if not isinstance(arm_specs, list):
            raise InvalidInput("must be a list", field="arms")
        if len(arm_specs) > self.limits.max_arms:
            raise InvalidInput(f"at most {self.limits.max_arms} arms", field="arms")
        params = policy.params()
        arms = [
            _arm_record(a, f"arms[{i}]", ts, reward_type, params) for i, a in enumerate(arm_specs)
        ]
        seen: set[str] = set()
        for i, arm in enumerate(arms):
            check_size(arm.payload, self.limits.max_payload_bytes, f"arms[{i}].payload")
            if arm.arm_id in seen:
                raise InvalidInput(f"duplicate arm id {arm.arm_id!r}", field=f"arms[{i}].id")
            seen.add(arm.arm_id)
            arm.position = i
        record = ExperimentRecord(
            id=experiment_id,
            name=name,
            policy=policy.params(),
            reward_type=reward_type,
            created_at=ts,
            updated_at=ts,
            arms=arms,
            options=options,
        )
        try:  # the history starts at creation, not one snapshot interval later
            first = Snapshot(record.id, ts, "created", snapshot_data(record))
        except Exception:  # a summary bug must not refuse the experiment; the tick retries
            log.exception("no creation snapshot for %s", record.id)
            first = None
        self.storage.create_experiment(record)
        self._live.pop(experiment_id, None)
        if first is not None:
            self.storage.add_snapshot(first)
        return record

    def get_experiment(self, experiment_id: str) -> ExperimentRecord:
        return self._record(experiment_id)

    def list_experiments(self) -> list[ExperimentRecord]:
        return self.storage.list_experiments()

    def update_experiment(self, experiment_id: str, changes: Mapping[str, Any]) -> ExperimentRecord:
        """Change ``name``, ``status``, ``policy``, ``stopping`` or ``snapshot_interval``.

        Setting ``running`` or ``paused`` on a concluded experiment re-opens it
        (the recorded conclusion is cleared; its snapshot stays in the history).

        ``policy`` is merged into the current parameters when its ``type`` is
        absent or the same; a new ``type`` replaces the policy (statistics are
        kept: they do not depend on the policy).
        """
        changes = _require(changes, "body")
        unknown = set(changes) - {"name", "status", "policy", "stopping", "snapshot_interval"}
        if unknown:
            raise InvalidInput(f"unknown or read-only fields {sorted(unknown)}", field="body")
        current = self._record(experiment_id)
        out: dict[str, Any] = {}
        if "name" in changes:
            name = changes["name"]
            if (
                not isinstance(name, str)
                or not name
                or len(name) > self.limits.max_name_chars
                or not _is_text(name)
            ):
                raise InvalidInput(
                    f"must be a non-empty string of at most {self.limits.max_name_chars} chars",
                    field="name",
                )
            out["name"] = name
        if "status" in changes:
            if changes["status"] not in STATUSES:
                raise InvalidInput(f"must be one of {list(STATUSES)}", field="status")
            out["status"] = changes["status"]
            if current.conclusion is not None:
                out["conclusion"] = None
        if "policy" in changes:
            patch = _require(changes["policy"], "policy")
            kind = patch.get("type", current.policy["type"])
            merged = {**current.policy, **patch} if kind == current.policy["type"] else dict(patch)
            new_policy = make_policy(merged, current.reward_type)
            if new_policy.contextual and not current.options.get("context_features"):
                raise Conflict(  # the experiment's state, not the body, is what's missing
                    f"policy {new_policy.type!r} needs context features, and experiment"
                    f" {experiment_id!r} declares none (create a new experiment with them)",
                    code="needs_context",
                )
            out["policy"] = new_policy.params()
            if kind != current.policy["type"]:
                out["policy_state"] = None  # another family: its state starts afresh
        if "stopping" in changes or "snapshot_interval" in changes:
            out["options"] = parse_options(changes, current.options)
        if out:
            self.storage.update_experiment(experiment_id, out, self._clock())
        return self._changed(experiment_id)

    def delete_experiment(self, experiment_id: str) -> None:
        self._live.pop(experiment_id, None)
        if not self.storage.delete_experiment(experiment_id):
            raise NotFound(f"experiment {experiment_id!r} not found", code="experiment_not_found")

    def delete_all(self) -> int:
        self._live.clear()
        return self.storage.delete_all()

    def reset(self, experiment_id: str) -> ExperimentRecord:
        """Statistics back to their priors; the event log keeps a reset marker."""
        self._live.pop(experiment_id, None)
        self.storage.reset_experiment(experiment_id, self._clock())
        return self._changed(experiment_id)

    def add_arm(self, experiment_id: str, spec: Mapping[str, Any]) -> ArmRecord:
        record = self._record(experiment_id)
        if len(record.arms) >= self.limits.max_arms:
            raise Conflict(
                f"experiment already has {self.limits.max_arms} arms", code="too_many_arms"
            )
        ts = self._clock()
        arm = _arm_record(spec, "body", ts, record.reward_type, record.policy)
        check_size(arm.payload, self.limits.max_payload_bytes, "payload")
        self.storage.add_arm(experiment_id, arm, ts)
        self._live.pop(experiment_id, None)
        return arm

    def update_arm(self, experiment_id: str, arm_id: str, changes: Mapping[str, Any]) -> ArmRecord:
        changes = _require(changes, "body")
        unknown = set(changes) - {"enabled", "payload"}
        if unknown:
            raise InvalidInput(f"unknown or read-only fields {sorted(unknown)}", field="body")
        if "enabled" in changes and not isinstance(changes["enabled"], bool):
            raise InvalidInput("must be true or false", field="enabled")
        if "payload" in changes:
            check_size(changes["payload"], self.limits.max_payload_bytes, "payload")
        arm = self._arm(experiment_id, arm_id)
        if arm.deleted and changes.get("enabled"):
            raise Conflict(f"arm {arm_id!r} was deleted and cannot be enabled", code="arm_deleted")
        if changes:
            self.storage.update_arm(experiment_id, arm_id, changes, self._clock())
        return self._arm(experiment_id, arm_id, changed=True)

    def delete_arm(self, experiment_id: str, arm_id: str) -> None:
        """Retire an arm: never chosen again; its history stays in the statistics."""
        self._arm(experiment_id, arm_id)
        self.storage.update_arm(
            experiment_id, arm_id, {"deleted": True, "enabled": False}, self._clock()
        )
        self._live.pop(experiment_id, None)

    def set_arm_stats(
        self, experiment_id: str, arm_id: str, values: Mapping[str, Any]
    ) -> ArmRecord:
        """Overwrite an arm's observed statistics (fixtures, migrations from another system).

        ``values``: ``decisions``, ``rewards``, ``reward_sum``, ``reward_sq_sum``
        (missing ones are 0; for binary rewards the squares default to the sum).
        The change is logged as a ``set_stats`` event.
        """
        values = _require(values, "body")
        record = self._record(experiment_id)
        self._arm(experiment_id, arm_id)
        checked = check_stats(
            values,
            record.reward_type,
            "body",
            keys=("decisions", "rewards", "reward_sum", "reward_sq_sum"),
        )
        shift, m2 = centred(checked["rewards"], checked["reward_sum"], checked["reward_sq_sum"])
        row = ArmStatsRow(
            arm_id,
            int(checked["decisions"]),
            checked["rewards"],
            checked["reward_sum"],
            m2,
            shift=shift,
        )
        self.storage.set_arm_stats(experiment_id, row, self._clock())
        self._live.pop(experiment_id, None)
        return self._arm(experiment_id, arm_id, changed=True)

    def _arm(self, experiment_id: str, arm_id: str, *, changed: bool = False) -> ArmRecord:
        record = self._changed(experiment_id) if changed else self._record(experiment_id)
        for arm in record.arms:
            if arm.arm_id == arm_id:
                return arm
        raise NotFound(
            f"arm {arm_id!r} not found in experiment {experiment_id!r}", code="arm_not_found"
        )

    # --------------------------------------------------------------- statistics
    def stats(self, experiment_id: str) -> dict[str, Any]:
        record = self._record(experiment_id)
        arms = []
        for a in record.arms:
            mean = a.reward_sum / a.rewards if a.rewards > 0 else None
            ci = mean_interval(
                a.reward_sum, a.reward_sq_sum, a.rewards, record.reward_type, shift=a.shift
            )
            arms.append(
                {
                    "arm_id": a.arm_id,
                    "enabled": a.enabled and not a.deleted,
                    "deleted": a.deleted,
                    "decisions": a.decisions,
                    "rewards": a.rewards,
                    "reward_sum": a.reward_sum,
                    "mean_reward": mean,
                    "ci95": list(ci) if ci is not None else None,
                }
            )
        return {
            "experiment_id": record.id,
            "status": record.status,
            "total_decisions": sum(a.decisions for a in record.arms),
            "total_reward": math.fsum(a.reward_sum for a in record.arms),
            "reward_gain_vs_equal_split": reward_gain(record),
            "arms": arms,
        }

    # ----------------------------------------------------- conclusions, history
    def conclusion(self, experiment_id: str) -> dict[str, Any]:
        """Whether the stopping rule is met now, which arm wins and why (the numbers)."""
        return conclusion_view(self._record(experiment_id))

    def history(self, experiment_id: str, limit: int = 1000) -> dict[str, Any]:
        """Snapshots as time series per arm (decisions, rewards, mean, interval, P(best))."""
        record = self._record(experiment_id)
        snaps = self.storage.snapshots(experiment_id, limit)
        fields = ("decisions", "rewards", "mean", "ci95", "prob_best", "expected_loss", "enabled")
        series: dict[str, dict[str, list[Any]]] = {}
        for i, snap in enumerate(snaps):
            for row in snap.data["arms"]:
                arm = series.setdefault(row["arm_id"], {f: [None] * len(snaps) for f in fields})
                for f in fields:
                    arm[f][i] = row.get(f)
        return {
            "experiment_id": experiment_id,
            "snapshot_interval": record.options.get("snapshot_interval"),
            "at": [iso_time(s.ts) for s in snaps],
            "reason": [s.reason for s in snaps],
            "arms": series,
        }

    def tick(self, now: float | None = None) -> int:
        """Take the snapshots that are due; conclude experiments whose rule is met.

        The stopping rule of an experiment with ``auto_conclude`` is checked at
        each of its snapshots. Returns the number of snapshots taken. An
        experiment that fails is logged and skipped (it is retried at the next
        tick); the others still get their snapshots.
        """
        now = self._clock() if now is None else now
        taken = 0
        for record in self.storage.due_for_snapshot(now):
            try:
                taken += self._tick_one(record, now)
            except StorageUnavailable:
                raise
            except Exception:  # one experiment's failure must not starve the others
                log.exception("snapshot tick: experiment %r failed", record.id)
        return taken

    def health(self) -> dict[str, str] | None:
        """``None`` while the storage takes writes, else ``{"reason", "message"}`` (cheap)."""
        return self.storage.health()

    def _tick_one(self, record: ExperimentRecord, now: float) -> int:
        """Conclude ``record`` if its rule says so, and snapshot it; returns snapshots taken."""
        stopping = record.options.get("stopping") or {}
        if record.status == "running" and stopping.get("auto_conclude"):
            result, _ = assess(record)
            if result is not None and result.met and result.winner is not None:
                self.storage.conclude(
                    record.id,
                    {
                        "winner": record.arms[result.winner].arm_id,
                        "at": iso_time(now),
                        "reason": result.reason,
                        "prob_best": result.prob_best,
                        "expected_loss": result.expected_loss,
                        "after_conclusion": stopping.get("after_conclusion"),
                    },
                    now,
                )
                self._live.pop(record.id, None)
                record = self._record(record.id)
                self.storage.add_snapshot(
                    Snapshot(record.id, now, "conclusion", snapshot_data(record))
                )
                return 1
        return int(
            self.storage.add_snapshot(Snapshot(record.id, now, "interval", snapshot_data(record)))
        )

    # -------------------------------------------------------------- data plane
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
        results: list[Any] = [None] * len(ops)
        parts: dict[str, tuple[list[tuple[int, DecideOp]], list[tuple[int, RewardOp]]]] = {}
        for i, op in enumerate(ops):
            if isinstance(op, DecideOp):
                try:
                    self._check_decide(op)
                except OctobanditError as exc:
                    results[i] = exc
                    continue
                parts.setdefault(op.experiment_id, ([], []))[0].append((i, op))
            else:
                parts.setdefault(op.experiment_id, ([], []))[1].append((i, op))
        try:
            with self.storage.batch() as tx:
                if tx.others_wrote():  # re-read what another engine may have changed
                    self._reread.update(self._live)
                for experiment_id, (decides, rewards) in parts.items():
                    try:
                        with tx.savepoint():
                            self._experiment_part(tx, experiment_id, decides, rewards, results)
                    except StorageUnavailable:
                        raise
                    except Exception as exc:  # a bug or a poisoned experiment: only its requests
                        self._live.pop(experiment_id, None)
                        log.exception("group commit: experiment %r failed", experiment_id)
                        for i, _ in [*decides, *rewards]:
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
    ) -> None:
        """One experiment's share of a group: decisions, then rewards, then its statistics."""
        if decides:
            self._decide_group(tx, experiment_id, decides, results)
        if rewards:
            self._reward_group(tx, rewards, results)
        live = self._live.get(experiment_id)
        if live is None:
            return
        if live.state_dirty and live.state is not None:
            tx.write_policy_state(live.record.id, encode_state(live.state))
            live.state_dirty = False
        if live.dirty:
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

    def _load(self, tx: BatchTx, experiment_id: str) -> _Live:
        """The experiment's cached state, read (again) inside the group's transaction.

        After another engine wrote to the store, a cached experiment is re-read:
        when only its statistics moved (same version, arms and settings, and a
        stateless policy), they are refreshed in place and the selection
        distribution is kept until its refresh interval is up, like after this
        engine's own rewards; anything else rebuilds the cached state.
        """
        live = self._live.get(experiment_id)
        if live is not None and experiment_id in self._reread:
            self._reread.discard(experiment_id)
            record = tx.load_experiment(experiment_id)
            if record is not None and live.state is None and _same_setup(live.record, record):
                live.refresh(record)
                return live
            self._live.pop(experiment_id, None)
            live = None
        if live is None:
            self._reread.discard(experiment_id)
            record = tx.load_experiment(experiment_id)
            if record is None:
                raise NotFound(
                    f"experiment {experiment_id!r} not found", code="experiment_not_found"
                )
            live = self._live[experiment_id] = _Live.of(record)
        return live

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
            found = tx.find_decisions(experiment_id, wanted) if wanted else {}
            rewarded = {d for d, ref in found.items() if ref.rewarded}
            for i, op in ops:
                try:
                    results[i] = self._apply(live, op, found, rewarded, events, ts)
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
    ) -> RewardResult:
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
            elif live.policy.contextual:
                raise InvalidInput(
                    "a contextual experiment takes rewards by decision_id"
                    " (the context comes from the decision)",
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
        accepted = 0
        for item, j in zip(op.items, arms, strict=True):
            if item.decision_id is not None:
                if item.decision_id in rewarded:
                    continue
                rewarded.add(item.decision_id)
            r, c = float(item.reward), float(item.count)
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
            ref = found.get(item.decision_id) if item.decision_id is not None else None
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
            events.append(
                RewardEvent(ts, op.experiment_id, live.arm_ids[j], r, c, item.decision_id)
            )
            accepted += 1
        if accepted:
            live.stale = True
        return RewardResult(accepted=accepted, duplicates=len(op.items) - accepted)
