"""Conclusions, snapshots and experiment options, on top of :mod:`octobandit.stats.conclusion`.

An experiment's ``options`` hold its stopping rule and snapshot cadence:

>>> parse_options({"stopping": {"prob_best": 0.99, "auto_conclude": True}})["stopping"]["prob_best"]
0.99
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from octobandit.engine.priors import prior_stats
from octobandit.errors import InvalidInput
from octobandit.model import ExperimentRecord
from octobandit.policies import ArmStats, make_policy
from octobandit.stats.conclusion import (
    PRIOR_KEYS,
    Conclusion,
    InvalidRule,
    PosteriorSummary,
    StoppingRule,
    evaluate,
    posterior_summary,
    reward_gain_vs_equal_split,
)
from octobandit.storage.fold import IPS_ELIGIBLE, IPS_EXCLUDED, IPS_LEGACY, ips_row

AFTER_CONCLUSION = ("serve_winner", "keep_learning")
DEFAULT_SNAPSHOT_INTERVAL = 300.0
MIN_SNAPSHOT_INTERVAL = 1.0


#: the longest snapshot interval: a year
MAX_SNAPSHOT_INTERVAL = 365 * 24 * 3600.0


def parse_options(
    spec: Mapping[str, Any], current: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Validate ``{"stopping": {...}, "snapshot_interval": s}`` merged over ``current``.

    Every other key of ``current`` (such as ``context_features``) is kept as it is.

    ``stopping`` takes the :class:`StoppingRule` parameters plus ``auto_conclude``
    (default false) and ``after_conclusion`` (``serve_winner``, the default, or
    ``keep_learning``).
    """
    current = current or {}
    stopping = dict(current.get("stopping") or {})
    patch = spec.get("stopping")
    if patch is not None:
        if not isinstance(patch, Mapping):
            raise InvalidInput("must be an object", field="stopping")
        stopping.update(patch)
    auto = stopping.pop("auto_conclude", False)
    if not isinstance(auto, bool):
        raise InvalidInput("must be true or false", field="stopping.auto_conclude")
    after = stopping.pop("after_conclusion", "serve_winner")
    if after not in AFTER_CONCLUSION:
        raise InvalidInput(
            f"must be one of {list(AFTER_CONCLUSION)}", field="stopping.after_conclusion"
        )
    try:
        rule = StoppingRule.from_params(stopping)
    except InvalidRule as exc:
        message = str(exc).removeprefix(f"{exc.field}: ")
        raise InvalidInput(message, field=f"stopping.{exc.field}") from exc
    interval = spec.get(
        "snapshot_interval", current.get("snapshot_interval", DEFAULT_SNAPSHOT_INTERVAL)
    )
    if (
        isinstance(interval, bool)
        or not isinstance(interval, int | float)
        or not MIN_SNAPSHOT_INTERVAL <= interval <= MAX_SNAPSHOT_INTERVAL
    ):
        raise InvalidInput(
            f"must be a number of seconds from {MIN_SNAPSHOT_INTERVAL:g}"
            f" to {MAX_SNAPSHOT_INTERVAL:g} (a year)",
            field="snapshot_interval",
        )
    return {
        **current,  # other options (e.g. context_features) are kept: options merge
        "stopping": {**rule.params(), "auto_conclude": auto, "after_conclusion": after},
        "snapshot_interval": float(interval),
    }


def rule_of(record: ExperimentRecord) -> StoppingRule:
    params = dict(record.options.get("stopping") or {})
    params.pop("auto_conclude", None)
    params.pop("after_conclusion", None)
    return StoppingRule.from_params(params)


def arm_stats(
    record: ExperimentRecord, *, with_prior: bool = True
) -> tuple[ArmStats, np.ndarray[Any, np.dtype[np.bool_]]]:
    """Per-arm statistics (plus the arms' prior pseudo-observations) and the enabled mask."""
    stats = ArmStats.of(
        n=[a.rewards for a in record.arms],
        s=[a.reward_sum for a in record.arms],
        ss=[a.reward_sq_sum for a in record.arms],
        c=[a.shift for a in record.arms],
    )
    if with_prior and any(a.prior for a in record.arms):
        stats = stats + prior_stats([a.prior for a in record.arms])
    enabled = np.array([a.enabled and not a.deleted for a in record.arms], dtype=bool)
    return stats, enabled


#: policies whose parameters (alpha, beta, mu0, kappa0, a0, b0) are the posterior's prior
BAYESIAN_POLICIES = frozenset({"thompson", "discounted_thompson"})


def prior_of(record: ExperimentRecord) -> dict[str, float | None]:
    """The posterior's prior: the Thompson parameters if the policy has them, else defaults.

    ``None`` (an unset ``mu0`` or ``b0``) means estimated from the data.
    """
    if record.policy.get("type") not in BAYESIAN_POLICIES:  # e.g. vdbe's or linucb's alpha
        return {}  # is an exploration parameter, not a Beta prior: the defaults
    keys = PRIOR_KEYS[record.reward_type]
    return {
        k: None if record.policy[k] is None else float(record.policy[k])
        for k in keys
        if k in record.policy
    }


def summarize(record: ExperimentRecord) -> PosteriorSummary | None:
    """Posterior summary of the experiment (``None`` when it has no enabled arm)."""
    stats, enabled = arm_stats(record)
    if not enabled.any():
        return None
    return posterior_summary(stats, record.reward_type, prior=prior_of(record), enabled=enabled)


def _num(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def arms_view(record: ExperimentRecord, summary: PosteriorSummary | None) -> list[dict[str, Any]]:
    out = []
    for i, a in enumerate(record.arms):
        row: dict[str, Any] = {
            "arm_id": a.arm_id,
            "enabled": a.enabled and not a.deleted,
            "decisions": a.decisions,
            "rewards": a.rewards,
        }
        if summary is not None:
            row.update(
                mean=_num(summary.mean[i]),
                ci95=[_num(summary.ci95_low[i]), _num(summary.ci95_high[i])],
                prob_best=_num(summary.prob_best[i]),
                expected_loss=_num(summary.expected_loss[i]),
            )
        else:
            row.update(mean=None, ci95=None, prob_best=None, expected_loss=None)
        out.append(row)
    return out


def assess(record: ExperimentRecord) -> tuple[Conclusion | None, PosteriorSummary | None]:
    summary = summarize(record)
    if summary is None:
        return None, None
    names = [a.arm_id for a in record.arms]
    counts = [a.rewards for a in record.arms]
    return evaluate(rule_of(record), summary, counts, arm_names=names), summary


def conclusion_view(record: ExperimentRecord) -> dict[str, Any]:
    """``GET /conclusion``: is the stopping rule met, which arm wins, and why."""
    result, summary = assess(record)
    names = [a.arm_id for a in record.arms]
    view: dict[str, Any] = {
        "experiment_id": record.id,
        "status": record.status,
        "rule": record.options.get("stopping"),
        "concluded": record.conclusion,
        "arms": arms_view(record, summary),
    }
    if result is None:
        view.update(
            met=False,
            winner=None,
            leader=None,
            reason="No winner: the experiment has no enabled arm.",
            failed=["arms"],
            prob_best=None,
            expected_loss=None,
            loss_threshold=None,
        )
        return view
    view.update(
        met=result.met,
        winner=names[result.winner] if result.winner is not None else None,
        leader=names[result.leader],
        reason=result.reason,
        failed=list(result.failed),
        prob_best=_num(result.prob_best),
        expected_loss=_num(result.expected_loss),
        loss_threshold=_num(result.loss_threshold),
    )
    return view


def snapshot_data(record: ExperimentRecord) -> dict[str, Any]:
    return {"status": record.status, "arms": arms_view(record, summarize(record))}


EXCLUDED_REASON = (
    "served without exploration (while paused: the best estimate; after a conclusion:"
    " the winner; or with propensity 1): they say nothing of the other arms"
)
LEGACY_NOTE = (
    "decisions logged before the number of enabled arms was recorded are compared"
    " with an equal split over the arms enabled now"
)


@dataclass(frozen=True, slots=True)
class IpsGain:
    """The inverse-propensity gain estimate and what it covers."""

    estimate: float
    se: float
    covered: int  # rewarded decisions in the estimate
    excluded: int  # rewarded decisions served without exploration, left out
    legacy: int  # covered decisions compared with today's enabled arms


def _ips_gain(record: ExperimentRecord) -> IpsGain | None:
    """Inverse-propensity estimate of the gain over an equal split of the rewarded decisions.

    For a rewarded decision ``t`` with reward ``r_t``, logged propensity ``p_t`` and
    ``K_t`` arms enabled when it was made, ``r_t / (K_t p_t)`` is an unbiased estimate
    of what an equal split over those arms would have earned on it, whatever the
    policy did before (the allocation may be adaptive), provided every enabled arm
    had a positive probability. The gain is ``Σ d_t`` with ``d_t = r_t - r_t / (K_t
    p_t)``; its standard error is ``sqrt(n · var(d))``. Decisions served without
    exploration are left out (counted in ``excluded``); decisions logged without
    ``K_t`` use today's number of enabled arms. ``None`` when some rewards carry no
    propensity (per-arm batch rewards, admin-set statistics), fewer than two
    decisions are covered, or the policy is deterministic.
    """
    rows = [ips_row(a.ips) for a in record.arms if a.ips]
    k = sum(1 for a in record.arms if a.enabled and not a.deleted)
    if not rows or make_policy(record.policy, record.reward_type).deterministic:
        return None
    sums = np.sum(np.array(rows, dtype=np.float64), axis=0).tolist()
    n_l, r1_l, r2_l, w1_l, x_l, w2_l = sums[IPS_LEGACY : IPS_LEGACY + 6]
    n_k, r1_k, r2_k, w1_k, x_k, w2_k = sums[IPS_ELIGIBLE : IPS_ELIGIBLE + 6]
    excluded = sums[IPS_EXCLUDED]
    n = n_l + n_k
    if n < 2 or n + excluded < sum(a.rewards for a in record.arms) or (n_l and k == 0):
        return None
    kl = k or 1
    total = (r1_l - w1_l / kl) + (r1_k - w1_k)
    total_sq = (r2_l - 2.0 * x_l / kl + w2_l / (kl * kl)) + (r2_k - 2.0 * x_k + w2_k)
    var = max(total_sq - total * total / n, 0.0) / (n - 1)
    return IpsGain(total, math.sqrt(n * var), round(n), round(excluded), round(n_l))


#: why an answer fell back to the model estimate, said in its ``note``
MODEL_NOTE = (
    "model estimate: some rewards carry no decision propensity (rewards by arm, admin"
    " statistics) or the policy is deterministic, so inverse-propensity weighting does not"
    " apply; it covers every decision, including any served without exploration"
)


def reward_gain(record: ExperimentRecord) -> dict[str, Any]:
    """Estimated reward gained over an equal split of the same traffic, with a 95% interval.

    ``method`` is ``"ips"`` (unbiased under adaptive allocation, see :func:`_ips_gain`)
    when every reward was joined to its decision's propensity under a randomised
    policy, else ``"model"``: the posterior plug-in estimate of
    :func:`~octobandit.stats.conclusion.reward_gain_vs_equal_split`, which is biased
    upwards when the allocation adapted (documented in docs/conclusions.md).

    ``decisions_covered`` counts the rewarded decisions the estimate is about;
    ``decisions_excluded`` those left out, and ``excluded_reason`` why.
    """
    view: dict[str, Any] = {
        "estimate": None,
        "se": None,
        "ci95": None,
        "method": None,
        "decisions_covered": 0,
        "decisions_excluded": 0,
        "excluded_reason": None,
        "note": None,
    }
    stats, _ = arm_stats(record, with_prior=False)
    if not (stats.n > 0).any():
        return view
    ips = _ips_gain(record)
    if ips is not None:
        estimate, se = ips.estimate, ips.se
        view.update(
            method="ips",
            decisions_covered=ips.covered,
            decisions_excluded=ips.excluded,
            excluded_reason=EXCLUDED_REASON if ips.excluded else None,
            note=f"{ips.legacy} {LEGACY_NOTE}" if ips.legacy else None,
        )
    else:
        decisions = [a.decisions for a in record.arms]
        estimate, se = reward_gain_vs_equal_split(
            stats, decisions, reward_type=record.reward_type, prior=prior_of(record)
        )
        view.update(
            method="model",
            decisions_covered=sum(decisions),
            note=MODEL_NOTE,  # every decision, also any served without exploration
        )
    ci = [_num(estimate - 1.96 * se), _num(estimate + 1.96 * se)] if math.isfinite(se) else None
    view.update(estimate=_num(estimate), se=_num(se), ci95=ci)
    return view
