"""Reports on an experiment: its statistics, its conclusion now, its snapshot history."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from octobandit.engine.attribution import Attribution
from octobandit.engine.base import EngineBase
from octobandit.engine.conclusions import conclusion_view, reward_gain
from octobandit.engine.eventlog import DEFAULT_PAGE, check_page, event_view, parse_time
from octobandit.model import iso_time
from octobandit.stats.intervals import mean_interval


class ReportingMixin(EngineBase):
    """Statistics, conclusion and history: the engine's read-only reports."""

    def stats(self, experiment_id: str) -> dict[str, Any]:
        """Per arm: decisions, rewards, mean and interval, and, with an attribution
        window, the decisions still pending (every decision gets one outcome, so
        pending = decisions - outcomes counted) and the rewards they have received so
        far (counted when their windows close)."""
        record = self._record(experiment_id)
        windowed = Attribution.of(record) is not None
        received = self.storage.pending_rewards(experiment_id) if windowed else {}
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
                    "pending": max(0, a.decisions - round(a.rewards)) if windowed else None,
                    "pending_reward_sum": received.get(a.arm_id, 0.0) if windowed else None,
                }
            )
        return {
            "experiment_id": record.id,
            "status": record.status,
            "total_decisions": sum(a.decisions for a in record.arms),
            "total_reward": math.fsum(a.reward_sum for a in record.arms),
            "reward_gain_vs_equal_split": reward_gain(record),
            "arms": arms,
            "pending_decisions": sum(a["pending"] for a in arms) if windowed else None,
        }

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

    def events(
        self,
        experiment_id: str,
        after: int = 0,
        limit: int = DEFAULT_PAGE,
        kinds: Sequence[str] | None = None,
        since: float | str | None = None,
        until: float | str | None = None,
    ) -> dict[str, Any]:
        """One page of the experiment's event log: ``{"events": [...], "next": cursor}``.

        At most ``limit`` events with ``seq > after`` in log order, of the given
        ``kinds`` and with ``since <= ts < until`` (epoch seconds or ISO 8601).
        ``next`` is the last ``seq`` of a full page (pass it as ``after``), ``None``
        after the last page. A deleted experiment's log is gone with it: 404.
        """
        after, limit, kinds = check_page(after, limit, kinds)
        start, end = parse_time(since, "since"), parse_time(until, "until")
        self._record(experiment_id)
        page = self.storage.events_page(
            experiment_id, after=after, limit=limit, kinds=kinds, since=start, until=end
        )
        return {
            "events": [event_view(e) for e in page],
            "next": page[-1].seq if len(page) == limit else None,
        }
