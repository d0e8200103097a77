"""What the engine counts about its own work, for ``/metrics`` (see docs/metrics.md).

The engine knows nothing of Prometheus: it keeps plain counters and
fixed-bucket histograms here, and :meth:`Telemetry.report` gives them as plain
data (picklable, so the engine process sends them to an HTTP worker over its
socket like any engine call). The HTTP door turns them into metric families.

Every update runs on the thread that runs the engine (the storage thread, or
the engine process's only thread), like :meth:`report`: no lock is needed.

>>> t = Telemetry()
>>> t.commit(3, 0.002)
>>> t.commit(600, 0.2)
>>> r = t.report()
>>> r["commit_size"]["count"], r["commit_size"]["sum"]
(2, 603.0)
>>> r["commit_size"]["buckets"]  # per bucket: <= 1, 2, 4 ... 512, then +Inf
[0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1]
"""

from __future__ import annotations

import bisect
from typing import Any

#: upper bounds of the group-commit size buckets (requests per group; the group is at most 512)
COMMIT_SIZE_BUCKETS: tuple[float, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
#: upper bounds of the commit latency buckets (seconds)
COMMIT_SECONDS_BUCKETS: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)  # fmt: skip


class Histogram:
    """Counts per bucket (not cumulative; the last is +Inf), their number and sum."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    def report(self) -> dict[str, Any]:
        return {
            "bounds": list(self.bounds),
            "buckets": list(self.counts),
            "count": sum(self.counts),
            "sum": self.total,
        }


class Telemetry:
    """Group commits (size, latency), storage errors by kind and snapshot ticks."""

    def __init__(self) -> None:
        self.commit_size = Histogram(COMMIT_SIZE_BUCKETS)
        self.commit_seconds = Histogram(COMMIT_SECONDS_BUCKETS)
        self.storage_errors: dict[str, int] = {}
        self.ticks = 0
        self.snapshots = 0

    def commit(self, size: int, seconds: float) -> None:
        """A group of ``size`` data-plane requests ran (committed or failed) in ``seconds``."""
        self.commit_size.observe(size)
        self.commit_seconds.observe(seconds)

    def storage_error(self, kind: str) -> None:
        """The storage refused work: ``kind`` is the error's code (``storage_full``, ...)."""
        self.storage_errors[kind] = self.storage_errors.get(kind, 0) + 1

    def tick(self, snapshots: int) -> None:
        self.ticks += 1
        self.snapshots += snapshots

    def report(self) -> dict[str, Any]:
        return {
            "commit_size": self.commit_size.report(),
            "commit_seconds": self.commit_seconds.report(),
            "storage_errors": dict(self.storage_errors),
            "ticks": self.ticks,
            "snapshots": self.snapshots,
        }
