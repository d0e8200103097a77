"""Where an integration's experiments live: an embedded store, or a remote service.

Every integration (Flask, ASGI, Seldon, a chat bot) talks to octobandit through one
small interface, :class:`Bandits`, so each works the same embedded in the app (an
SQLite file by default, no service to run) or against an octobandit service (the
HTTP API through :class:`~octobandit.client.Client`). Either way every assignment is
a logged decision with its propensity.

>>> bandits = connect("sqlite:///:memory:")
>>> bandits.ensure_experiment({"id": "demo", "arms": [{"id": "a"}, {"id": "b"}]})
>>> d = bandits.decide("demo")
>>> d.arm_id in {"a", "b"}, bandits.reward("demo", d.decision_id, 1.0).accepted
(True, 1)
>>> bandits.close()
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import msgspec

from octobandit import wire


class Bandits(Protocol):
    """What an integration needs of octobandit (see :func:`connect`)."""

    def ensure_experiment(self, spec: Mapping[str, Any]) -> None:
        """Create the experiment ``spec`` describes unless one with its id exists (an
        existing experiment is kept as it is: its arms and statistics are the truth)."""

    def get_experiment(self, experiment_id: str) -> wire.Experiment: ...

    def add_arm(self, experiment_id: str, spec: Mapping[str, Any]) -> None: ...

    def update_arm(self, experiment_id: str, arm_id: str, changes: Mapping[str, Any]) -> None:
        """Change an arm's ``enabled`` and/or ``payload``."""

    def update_experiment(self, experiment_id: str, changes: Mapping[str, Any]) -> None:
        """Change an experiment's ``policy`` (merged as ``PATCH`` does), ``status``, ..."""

    def decide(
        self, experiment_id: str, *, unit_id: str | None = None, context: Any = None
    ) -> wire.Decision: ...

    def reward(self, experiment_id: str, decision_id: str, value: float) -> wire.RewardAnswer: ...

    def reward_arm(
        self, experiment_id: str, arm_id: str, value: float, count: int = 1
    ) -> wire.RewardAnswer: ...

    def set_arm_stats(self, experiment_id: str, arm_id: str, stats: Mapping[str, Any]) -> None: ...

    def stats(self, experiment_id: str) -> wire.Stats: ...

    def conclusion(self, experiment_id: str) -> wire.Conclusion: ...

    def close(self) -> None: ...


def connect(url: str | None = None, *, api_key: str | None = None, **options: Any) -> Bandits:
    """:class:`RemoteBandits` for an ``http(s)://`` service URL, else :class:`EmbeddedBandits`
    on the store ``url`` names (an SQLite path or URL, a PostgreSQL URL; default
    ``octobandit.db``). ``options`` go to the client or to the embedded engine.
    ``api_key`` (default: ``$OCTOBANDIT_API_KEY``) is sent as ``Authorization: Bearer``."""
    if url is not None and url.startswith(("http://", "https://")):
        api_key = api_key or os.environ.get("OCTOBANDIT_API_KEY") or None
        return RemoteBandits(url, api_key=api_key, **options)
    return EmbeddedBandits(url or "octobandit.db", **options)


#: the fields of an experiment spec the SDK's ``create_experiment`` takes as keywords
CREATE_FIELDS = ("policy", "arms", "name", "reward", "context", "stopping", "snapshot_interval")


def create_options(spec: Mapping[str, Any]) -> dict[str, Any]:
    """An experiment spec (``id`` aside) as the SDK's ``create_experiment`` keywords."""
    return {name: spec.get(name) for name in CREATE_FIELDS}


class RemoteBandits:
    """:class:`Bandits` over an octobandit service (the HTTP API, through the SDK)."""

    def __init__(self, url: str, *, api_key: str | None = None, **options: Any) -> None:
        from octobandit.client import Client

        self.client = Client(url, api_key=api_key, **options)

    def ensure_experiment(self, spec: Mapping[str, Any]) -> None:
        from octobandit.client import ConflictError, NotFoundError

        experiment_id = str(spec["id"])
        try:
            self.client.get_experiment(experiment_id)
            return
        except NotFoundError:
            pass
        with contextlib.suppress(ConflictError):  # another process created it meanwhile
            self.client.create_experiment(experiment_id, **create_options(spec))

    def get_experiment(self, experiment_id: str) -> wire.Experiment:
        return self.client.get_experiment(experiment_id)

    def add_arm(self, experiment_id: str, spec: Mapping[str, Any]) -> None:
        rest = {k: v for k, v in spec.items() if k != "id"}
        self.client.add_arm(experiment_id, str(spec["id"]), **rest)

    def update_arm(self, experiment_id: str, arm_id: str, changes: Mapping[str, Any]) -> None:
        self.client.update_arm(experiment_id, arm_id, **changes)

    def update_experiment(self, experiment_id: str, changes: Mapping[str, Any]) -> None:
        self.client.update_experiment(experiment_id, **changes)

    def decide(
        self, experiment_id: str, *, unit_id: str | None = None, context: Any = None
    ) -> wire.Decision:
        return self.client.decide(experiment_id, unit_id=unit_id, context=context)

    def reward(self, experiment_id: str, decision_id: str, value: float) -> wire.RewardAnswer:
        return self.client.reward(experiment_id, decision_id, value)

    def reward_arm(
        self, experiment_id: str, arm_id: str, value: float, count: int = 1
    ) -> wire.RewardAnswer:
        return self.client.reward_arm(experiment_id, arm_id, value, count=count)

    def set_arm_stats(self, experiment_id: str, arm_id: str, stats: Mapping[str, Any]) -> None:
        self.client.set_arm_stats(experiment_id, arm_id, **stats)

    def stats(self, experiment_id: str) -> wire.Stats:
        return self.client.stats(experiment_id)

    def conclusion(self, experiment_id: str) -> wire.Conclusion:
        return self.client.conclusion(experiment_id)

    def close(self) -> None:
        self.client.close()


class EmbeddedBandits:
    """:class:`Bandits` on an engine in this process (no service to run).

    Calls are serialised by a lock (the engine is single-threaded; a threaded web
    server may call from many threads). A daemon thread ticks the engine every
    ``tick_seconds``: it settles closed attribution windows and takes snapshots.
    Several processes may open one SQLite file or PostgreSQL database: they share
    its experiments, as the service's workers do.
    """

    def __init__(
        self,
        store: str = "octobandit.db",
        *,
        tick_seconds: float = 1.0,
        seed: int | None = None,
        state: str | None = None,
    ) -> None:
        from octobandit.engine import Engine
        from octobandit.storage import open_store

        self.engine = Engine(open_store(store, state=state), seed=seed)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        if tick_seconds > 0:
            self._ticker = threading.Thread(
                target=self._tick, args=(tick_seconds,), name="octobandit-tick", daemon=True
            )
            self._ticker.start()

    def _tick(self, every: float) -> None:
        import logging

        log = logging.getLogger("octobandit.integrations")
        while not self._stop.wait(every):
            try:
                with self._lock:
                    self.engine.tick()
            except Exception:  # the next tick retries
                log.exception("tick failed")

    def ensure_experiment(self, spec: Mapping[str, Any]) -> None:
        from octobandit.errors import Conflict

        with self._lock:
            if self.engine.storage.get_experiment(str(spec["id"])) is not None:
                return
            with contextlib.suppress(Conflict):  # another process created it meanwhile
                self.engine.create_experiment(spec)

    def get_experiment(self, experiment_id: str) -> wire.Experiment:
        from octobandit.api.views import experiment_view

        with self._lock:
            return experiment_view(self.engine.get_experiment(experiment_id))

    def add_arm(self, experiment_id: str, spec: Mapping[str, Any]) -> None:
        with self._lock:
            self.engine.add_arm(experiment_id, spec)

    def update_arm(self, experiment_id: str, arm_id: str, changes: Mapping[str, Any]) -> None:
        with self._lock:
            self.engine.update_arm(experiment_id, arm_id, changes)

    def update_experiment(self, experiment_id: str, changes: Mapping[str, Any]) -> None:
        with self._lock:
            self.engine.update_experiment(experiment_id, changes)

    def decide(
        self, experiment_id: str, *, unit_id: str | None = None, context: Any = None
    ) -> wire.Decision:
        with self._lock:
            out = self.engine.decide(experiment_id, unit_id=unit_id, context=context)
        return msgspec.convert(out, wire.Decision)

    def _rewards(self, experiment_id: str, items: Sequence[Any]) -> wire.RewardAnswer:
        with self._lock:
            result = self.engine.reward(experiment_id, items)
        return wire.RewardAnswer(result.accepted, result.duplicates, result.late)

    def reward(self, experiment_id: str, decision_id: str, value: float) -> wire.RewardAnswer:
        from octobandit.engine import RewardItem

        return self._rewards(experiment_id, [RewardItem(value, decision_id=decision_id)])

    def reward_arm(
        self, experiment_id: str, arm_id: str, value: float, count: int = 1
    ) -> wire.RewardAnswer:
        from octobandit.engine import RewardItem

        return self._rewards(experiment_id, [RewardItem(value, arm_id=arm_id, count=count)])

    def set_arm_stats(self, experiment_id: str, arm_id: str, stats: Mapping[str, Any]) -> None:
        with self._lock:
            self.engine.set_arm_stats(experiment_id, arm_id, stats)

    def stats(self, experiment_id: str) -> wire.Stats:
        with self._lock:
            return msgspec.convert(self.engine.stats(experiment_id), wire.Stats)

    def conclusion(self, experiment_id: str) -> wire.Conclusion:
        with self._lock:
            return msgspec.convert(self.engine.conclusion(experiment_id), wire.Conclusion)

    def close(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        with self._lock:
            self.engine.storage.close()
