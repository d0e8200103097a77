"""What valid experiments and arms look like: ids, names, statuses, limits, spec checks.

The checks of the specs the control plane receives live here; the request
:class:`Limits` are enforced by the engine (and so by every door).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from octobandit.engine.priors import prior_pseudo_counts
from octobandit.errors import InvalidInput
from octobandit.model import ArmRecord
from octobandit.policies import Policy

EXPERIMENT_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
ARM_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
STATUSES = ("running", "paused")  # "concluded" is reached through the stopping rule


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
