"""The experiment engine: life cycle, decisions, rewards and statistics.

The engine knows nothing of HTTP. Every door (the REST API, the CLI, the
Python SDK, integrations) calls it. Control-plane calls are one storage
transaction each. Data-plane work (decisions, rewards) goes through
:meth:`Engine.execute`, which runs a group of requests in one transaction:
the requests of a group succeed or fail independently, and the group's writes
are committed together (group commit), before any caller is answered.

:class:`Engine` is a facade over its parts, one idea each: the spec checks
(:mod:`~octobandit.engine.specs`), the control plane
(:mod:`~octobandit.engine.control`), the data plane
(:mod:`~octobandit.engine.data_plane`) over the live cache
(:mod:`~octobandit.engine.live`), the life cycle of snapshots and conclusions
(:mod:`~octobandit.engine.lifecycle`), the settlement of attribution windows
(:mod:`~octobandit.engine.settlement`) and the reports
(:mod:`~octobandit.engine.reporting`).

>>> from octobandit.engine import RewardItem
>>> from octobandit.storage import SQLiteStorage
>>> engine = Engine(SQLiteStorage(":memory:"), seed=7)
>>> _ = engine.create_experiment({"id": "demo", "policy": {"type": "epsilon_greedy"},
...                               "arms": [{"id": "a"}, {"id": "b"}]})
>>> d = engine.decide("demo")
>>> d["arm_id"] in {"a", "b"}
True
>>> engine.reward("demo", [RewardItem(reward=1.0, decision_id=d["decision_id"])])
RewardResult(accepted=1, duplicates=0, late=None)
>>> engine.stats("demo")["total_reward"]
1.0
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from octobandit.engine.control import ControlPlaneMixin
from octobandit.engine.data_plane import DataPlaneMixin
from octobandit.engine.imports import ImportMixin
from octobandit.engine.lifecycle import LifecycleMixin
from octobandit.engine.live import _Live
from octobandit.engine.reporting import ReportingMixin
from octobandit.engine.settlement import SettlementMixin
from octobandit.engine.specs import Limits
from octobandit.engine.telemetry import Telemetry
from octobandit.storage.base import Storage

__all__ = ["Engine", "Limits"]


class Engine(
    ControlPlaneMixin,
    DataPlaneMixin,
    ImportMixin,
    SettlementMixin,
    LifecycleMixin,
    ReportingMixin,
):
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
        #: group commits, storage errors and ticks, for ``/metrics``
        self.telemetry = Telemetry()

    def health(self) -> dict[str, str] | None:
        """``None`` while the storage takes writes, else ``{"reason", "message"}`` (cheap)."""
        return self.storage.health()

    def metrics(self) -> dict[str, Any]:
        """What ``/metrics`` shows of the engine: :meth:`Telemetry.report`, the WAL size
        (``wal_bytes``: SQLite only, else ``None``) and, per experiment, each arm's
        decisions and rewards counted so far (``experiments``: ``[[id, [[arm_id,
        decisions, rewards], ...]], ...]``, deleted arms left out), read from the store."""
        report = self.telemetry.report()
        wal_size = getattr(self.storage, "wal_size", None)
        report["wal_bytes"] = wal_size() if callable(wal_size) else None
        report["experiments"] = [
            [r.id, [[a.arm_id, a.decisions, a.rewards] for a in r.arms if not a.deleted]]
            for r in self.storage.list_experiments()
        ]
        return report
