"""The JSON shape of experiments and arms, as the HTTP API answers them."""

from __future__ import annotations

from typing import Any

from octobandit.model import ArmRecord, ExperimentRecord, iso_time


def experiment_view(record: ExperimentRecord) -> dict[str, Any]:
    """The JSON shape of an experiment, shared by every door."""
    return {
        "id": record.id,
        "name": record.name,
        "status": record.status,
        "policy": record.policy,
        "reward": {"type": record.reward_type},
        "arms": [arm_view(a) for a in record.arms],
        "context": (
            {"features": record.options["context_features"]}
            if "context_features" in record.options
            else None
        ),
        "stopping": record.options.get("stopping"),
        "snapshot_interval": record.options.get("snapshot_interval"),
        "conclusion": record.conclusion,
        "version": record.version,
        "created_at": iso_time(record.created_at),
        "updated_at": iso_time(record.updated_at),
    }


def arm_view(arm: ArmRecord) -> dict[str, Any]:
    return {
        "id": arm.arm_id,
        "payload": arm.payload,
        "enabled": arm.enabled and not arm.deleted,
        "deleted": arm.deleted,
        "prior": arm.prior,
    }
