"""Experiments and arms as the HTTP API answers them: the wire types of :mod:`octobandit.wire`."""

from __future__ import annotations

from octobandit import wire
from octobandit.model import ArmRecord, ExperimentRecord, iso_time


def experiment_view(record: ExperimentRecord) -> wire.Experiment:
    """An experiment's answer, shared by every door."""
    features = record.options.get("context_features")
    return wire.Experiment(
        id=record.id,
        name=record.name,
        status=record.status,
        policy=record.policy,
        reward=wire.RewardSpec(record.reward_type, **(record.options.get("reward") or {})),
        arms=[arm_view(a) for a in record.arms],
        context=wire.ContextSpec(features) if features is not None else None,
        stopping=record.options.get("stopping"),
        snapshot_interval=record.options.get("snapshot_interval"),
        conclusion=record.conclusion,
        version=record.version,
        created_at=iso_time(record.created_at),
        updated_at=iso_time(record.updated_at),
    )


def arm_view(arm: ArmRecord) -> wire.Arm:
    return wire.Arm(
        id=arm.arm_id,
        payload=arm.payload,
        enabled=arm.enabled and not arm.deleted,
        deleted=arm.deleted,
        prior=arm.prior,
    )
