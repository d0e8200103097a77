"""The control plane: create, change, reset and delete experiments and arms.

One storage transaction per call (see :class:`~octobandit.engine.core.Engine`).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Any

from octobandit.engine.attribution import REWARD_FIELDS, Attribution
from octobandit.engine.base import EngineBase
from octobandit.engine.conclusions import arms_view, assess, parse_options, snapshot_data
from octobandit.engine.context import parse_features
from octobandit.engine.priors import centred, check_stats
from octobandit.engine.sizes import check_size
from octobandit.engine.specs import (
    EXPERIMENT_ID,
    STATUSES,
    _arm_record,
    _check_contextual,
    _is_text,
    _require,
)
from octobandit.errors import Conflict, InvalidInput, NotFound
from octobandit.model import (
    ApiKeyRecord,
    ArmRecord,
    ArmStatsRow,
    ExperimentRecord,
    Snapshot,
    iso_time,
)
from octobandit.policies import make_policy

log = logging.getLogger("octobandit.engine")


class ControlPlaneMixin(EngineBase):
    """Experiments and arms: the engine's control-plane calls."""

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
        if set(reward) - set(REWARD_FIELDS):
            extra = sorted(set(reward) - set(REWARD_FIELDS))
            raise InvalidInput(f"unknown fields {extra}", field="reward")
        policy_spec = _require(spec.get("policy") or {"type": "thompson"}, "policy")
        policy = make_policy(policy_spec, reward_type)
        options = parse_options(spec)
        attribution = Attribution.parse(reward, reward_type)
        if attribution is not None:
            options["reward"] = attribution.params()
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

    def api_keys(self) -> list[ApiKeyRecord]:
        """Every stored API key (hashes only): what the HTTP workers' key cache reloads."""
        return self.storage.api_keys()

    def update_experiment(self, experiment_id: str, changes: Mapping[str, Any]) -> ExperimentRecord:
        """Change ``name``, ``status``, ``policy``, ``stopping`` or ``snapshot_interval``.

        Setting ``running`` or ``paused`` on a concluded experiment re-opens it
        (the recorded conclusion is cleared; its snapshot stays in the history).
        Setting ``concluded`` (alone, optionally with a ``winner``) concludes it by
        hand: see :meth:`_conclude_by_hand`.

        ``policy`` is merged into the current parameters when its ``type`` is
        absent or the same; a new ``type`` replaces the policy (statistics are
        kept: they do not depend on the policy).
        """
        changes = _require(changes, "body")
        if changes.get("status") == "concluded":
            return self._conclude_by_hand(experiment_id, changes)
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

    def _conclude_by_hand(self, experiment_id: str, changes: Mapping[str, Any]) -> ExperimentRecord:
        """``{"status": "concluded", "winner"?}``: record a conclusion now, whatever the rule.

        The winner is the arm named (an arm of the experiment, not deleted; enabled or not) or else
        the enabled arm with the largest P(best) (the rule's leader). The conclusion
        is recorded as the stopping rule records one (``winner``, ``at``, ``reason``,
        the winner's ``prob_best`` and ``expected_loss``, ``after_conclusion``) plus
        ``"manual": true``, with a ``conclusion`` snapshot. Concluding a concluded
        experiment records the new conclusion.
        """
        unknown = set(changes) - {"status", "winner"}
        if unknown:
            raise InvalidInput(
                "status 'concluded' goes alone (with an optional winner), "
                f"not with {sorted(unknown)}",
                field="body",
            )
        record = self._record(experiment_id)
        names = [a.arm_id for a in record.arms]
        live_arms = {a.arm_id for a in record.arms if not a.deleted}
        winner = changes.get("winner")
        result, summary = assess(record)
        if winner is None:
            if result is None:
                raise Conflict(
                    f"experiment {experiment_id!r} has no enabled arm to conclude with",
                    code="no_enabled_arm",
                )
            winner = names[result.leader]
        elif not isinstance(winner, str) or winner not in live_arms:
            raise InvalidInput(f"must be an arm of experiment {experiment_id!r}", field="winner")
        row = next(r for r in arms_view(record, summary) if r["arm_id"] == winner)
        now = self._clock()
        rule_met = result is not None and result.met
        stopping = record.options.get("stopping") or {}
        self.storage.conclude(
            experiment_id,
            {
                "winner": winner,
                "at": iso_time(now),
                "reason": "Concluded by hand."
                + ("" if result is None else f" The stopping rule said: {result.reason}"),
                "prob_best": row.get("prob_best"),
                "expected_loss": row.get("expected_loss"),
                "after_conclusion": stopping.get("after_conclusion", "serve_winner"),
                "manual": True,
                "rule_met": rule_met,
            },
            now,
        )
        record = self._changed(experiment_id)
        self.storage.add_snapshot(Snapshot(experiment_id, now, "conclusion", snapshot_data(record)))
        return record

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
