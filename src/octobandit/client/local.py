"""Local decisions: :class:`LocalDecider` (``Client.local(experiment_id)``).

Decisions are made in this process with the service's own policy code
(:mod:`octobandit.policies`, which needs NumPy and SciPy) from a versioned
policy snapshot the service publishes (``GET .../policy-snapshot``), refreshed
in the background every ``refresh_interval`` seconds. Every decision is logged
to the service (``POST .../decisions/logged``) with its propensity, the
snapshot's version, its unit and context, in background batches; the service
counts them exactly like its own decisions, and rewards go by decision id.

Importing :mod:`octobandit.client` does not import this module: it is loaded
by :meth:`Client.local`.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Self

import numpy as np

from octobandit import wire
from octobandit.policies import make_policy
from octobandit.policies.base import ArmStats, sample_categorical

log = logging.getLogger("octobandit.client")

Snapshotter = Callable[[], wire.PolicySnapshot]
Sender = Callable[[list[wire.LoggedDecision]], wire.LoggedAnswer]


class _Model:
    """A snapshot made ready to decide from (immutable once built; swapped whole)."""

    def __init__(self, snap: wire.PolicySnapshot, rng: np.random.Generator, block: int) -> None:
        self.snap = snap
        self.version = snap.version
        self.experiment_id = snap.experiment_id
        self.arm_ids = [a.id for a in snap.arms]
        self.payloads = [a.payload for a in snap.arms]
        self.index = {a: j for j, a in enumerate(self.arm_ids)}
        self.enabled = np.array([a.enabled for a in snap.arms], dtype=bool)
        self.policy = make_policy(snap.policy, snap.reward_type)
        st = snap.stats
        self.stats = ArmStats.of(st.n, st.s, st.ss, st.c)
        self.state = (
            None
            if snap.state is None
            else {
                name: np.asarray(a.data, dtype=np.float64).reshape(a.shape)
                for name, a in snap.state.items()
            }
        )
        self.features = snap.context_features
        self.rng = rng
        self.block = block
        self.fixed: int | None = None  # served with propensity 1 (winner, paused-greedy)
        self.probs: np.ndarray[Any, np.dtype[np.float64]] | None = None
        self.arms: list[int] = []
        self.props: list[float] = []
        self.next = 0
        if not self.enabled.any():
            return
        if snap.winner is not None and snap.winner in self.index:
            self.fixed = self.index[snap.winner]
        elif snap.status == "paused":
            self.fixed = self.policy.greedy(self.stats, self.enabled)
        elif not self.policy.contextual:
            if self.state is not None:
                self.probs = self.policy.state_probabilities(
                    self.stats, self.enabled, self.state, time=time.time()
                ).reshape(-1)
            else:
                self.probs = self.policy.probabilities(self.stats, self.enabled)

    def draw(self) -> tuple[int, float]:
        """One non-contextual draw from the selection distribution (drawn in blocks with
        :meth:`Policy.choose`, exactly as the service draws a group's decisions)."""
        if self.fixed is not None:
            return self.fixed, 1.0
        if self.next >= len(self.arms):
            choice = self.policy.choose(
                self.stats,
                self.rng,
                size=self.block,
                enabled=self.enabled,
                probabilities=self.probs,
            )
            self.arms = choice.arms.tolist()
            self.props = choice.propensities.tolist()
            self.next = 0
        k = self.next
        self.next = k + 1
        return self.arms[k], self.props[k]

    def draw_context(self, vector: list[float]) -> tuple[int, float]:
        if self.fixed is not None:
            return self.fixed, 1.0
        assert self.state is not None
        contexts = np.array([vector], dtype=np.float64)
        probs = self.policy.state_probabilities(
            self.stats, self.enabled, self.state, contexts=contexts, time=time.time()
        )
        j = int(sample_categorical(probs, self.rng)[0])
        return j, float(probs[0, j])


def _vector(context: Any, features: Sequence[str]) -> list[float]:
    if isinstance(context, Mapping):
        missing = [f for f in features if f not in context]
        if missing or len(context) != len(features):
            raise ValueError(f"context needs exactly the features {list(features)}")
        return [float(context[f]) for f in features]
    if context is None:
        raise ValueError(f"this experiment needs a context with features {list(features)}")
    values = context.tolist() if hasattr(context, "tolist") else list(context)
    if len(values) != len(features):
        raise ValueError(f"expected {len(features)} numbers ({', '.join(features)})")
    return [float(v) for v in values]


class LocalDecider:
    """Decides in this process from the service's policy snapshot; logs every decision.

    Made by :meth:`octobandit.client.Client.local` (see docs/client.md, "Local decisions").

    * ``refresh_interval``: seconds between snapshot refreshes (in the background).
    * ``batch_size``: logged decisions per request (at most 10,000).
    * ``buffer_size``: logged decisions held in memory at most, counting the batch
      in flight; when it is full, :meth:`decide` waits for the background sender
      (it never drops a decision). A process killed without :meth:`close` loses
      what the buffer holds: at most ``buffer_size`` decisions (the batch in
      flight may or may not have been recorded).
    * ``flush_interval``: seconds at most a logged decision waits before it is sent.
    * ``seed``: seeds the policy's random stream (default: from the OS).

    Sticky rule: a unit's first decision *in this decider* is remembered
    (in memory, for the decider's life) and served again to the unit with the
    same propensity while its arm stays enabled, like the service re-serves a
    unit; the service records it as the unit's assignment unless the unit
    already has one. A unit decided by the service earlier, or by another
    process, is not looked up: stickiness across processes holds only for
    decisions made by the service.
    """

    def __init__(
        self,
        snapshot: Snapshotter,
        send: Sender,
        *,
        refresh_interval: float = 5.0,
        batch_size: int = 1_000,
        buffer_size: int = 100_000,
        flush_interval: float = 0.2,
        seed: int | None = None,
        block: int = 4096,
    ) -> None:
        if not 1 <= batch_size <= 10_000:
            raise ValueError("batch_size must be from 1 to 10,000")
        if buffer_size < batch_size:
            raise ValueError("buffer_size must be at least batch_size")
        self._snapshot = snapshot
        self._send = send
        self.refresh_interval = refresh_interval
        self.batch_size = batch_size
        self.buffer_size = buffer_size
        self.flush_interval = flush_interval
        self._block = block
        self._rng = np.random.default_rng(seed)
        self._ids = random.Random(seed if seed is not None else int.from_bytes(os.urandom(16)))
        self._model = _Model(snapshot(), self._rng, block)
        self._model_at = time.monotonic()
        #: unit → (arm id, propensity, snapshot version) of its first decision here
        self._units: dict[str, tuple[str, float, str]] = {}
        self._lock = threading.Lock()
        self._cv = threading.Condition(self._lock)
        self._pending: list[wire.LoggedDecision] = []
        self._in_flight = 0
        self._flushing = False
        self._closed = False
        #: logged decisions the service refused (a 4xx; logged, not retried)
        self.refused = 0
        #: logged decisions the service recorded (accepted + duplicates)
        self.sent = 0
        self._thread = threading.Thread(target=self._run, name="octobandit-local", daemon=True)
        self._thread.start()

    @property
    def version(self) -> str:
        """The version of the snapshot in use."""
        return self._model.version

    def refresh(self) -> str:
        """Fetch the snapshot now; returns its version."""
        model = _Model(self._snapshot(), self._rng, self._block)
        with self._lock:
            self._model, self._model_at = model, time.monotonic()
        return model.version

    def decide(self, unit_id: str | None = None, context: Any = None) -> wire.Decision:
        """Choose an arm locally; the decision is logged to the service in the background.

        Thread-safe. Waits only while the buffer of logged decisions is full."""
        ts = time.time()
        with self._lock:
            if self._closed:
                raise RuntimeError("the local decider is closed")
            model = self._model
            if model.features is not None:
                context = _vector(context, model.features)
            sticky = self._units.get(unit_id) if unit_id is not None else None
            j = -1
            if sticky is not None:  # served again while its arm stays enabled, like the service
                arm_id, p, version = sticky
                j = model.index.get(arm_id, -1)
                if j >= 0 and not model.enabled[j]:
                    j = -1
            if j < 0:
                if model.features is not None:
                    j, p = model.draw_context(context)
                else:
                    j, p = model.draw()
                arm_id, version = model.arm_ids[j], model.version
                if unit_id is not None:
                    self._units[unit_id] = (arm_id, p, version)
            decision_id = f"{int(ts * 1000):012x}{self._ids.getrandbits(80):020x}"
            pending = self._pending
            while len(pending) + self._in_flight >= self.buffer_size:
                self._cv.notify_all()
                self._cv.wait(1.0)
                pending = self._pending
            pending.append(
                wire.LoggedDecision(decision_id, arm_id, p, version, unit_id, context, ts)
            )
            if len(pending) == self.batch_size:
                self._cv.notify_all()
        return wire.Decision(decision_id, model.experiment_id, arm_id, model.payloads[j], p)

    def flush(self, timeout: float | None = None) -> None:
        """Send every logged decision now; returns when the service has them (or when
        ``timeout`` seconds have passed: ``TimeoutError``)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            self._flushing = True
            self._cv.notify_all()
            try:
                while self._pending or self._in_flight:
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        raise TimeoutError(f"{len(self._pending)} logged decisions still pending")
                    self._cv.wait(left if left is not None else 1.0)
            finally:
                self._flushing = False

    @property
    def pending(self) -> int:
        """Logged decisions not yet acknowledged by the service."""
        with self._lock:
            return len(self._pending) + self._in_flight

    def close(self, timeout: float | None = 30.0) -> None:
        """Flush, then stop the background thread (idempotent). When ``timeout`` passes
        first (the service is down), raises ``TimeoutError``; what is pending is lost
        at exit (a warning says how many)."""
        if self._closed:
            return
        try:
            self.flush(timeout)
        except TimeoutError:
            log.warning("local decisions: %d logged decisions not delivered", self.pending)
            raise
        finally:
            with self._lock:
                self._closed = True
                self._cv.notify_all()
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- the background thread ------------------------------------------------------

    def _run(self) -> None:
        delay = 0.0
        while True:
            with self._lock:
                idle = not self._closed and not self._flushing
                if idle and len(self._pending) < self.batch_size:
                    self._cv.wait(max(delay, self.flush_interval))
                if self._closed and not self._pending:
                    return
                batch = self._pending[: self.batch_size]
                del self._pending[: len(batch)]
                self._in_flight = len(batch)
            if time.monotonic() - self._model_at >= self.refresh_interval:
                try:
                    self.refresh()
                except Exception as exc:  # keep deciding on the old snapshot
                    log.warning("local decisions: snapshot refresh failed: %s", exc)
                    self._model_at = time.monotonic()
            if not batch:
                continue
            try:
                answer = self._send(batch)
            except Exception as exc:
                status = getattr(exc, "status", None)
                if isinstance(status, int) and 400 <= status < 500 and status not in (408, 429):
                    log.error("local decisions: %d refused by the service: %s", len(batch), exc)
                    with self._lock:
                        self.refused += len(batch)
                        self._in_flight = 0
                        self._cv.notify_all()
                    continue
                log.warning("local decisions: sending failed, will retry: %s", exc)
                with self._lock:
                    self._pending[:0] = batch  # back in front, in order
                    self._in_flight = 0
                delay = min(max(delay * 2, 0.5), 10.0)
                time.sleep(delay)
                continue
            delay = 0.0
            with self._lock:
                self.sent += answer.accepted + answer.duplicates
                self._in_flight = 0
                self._cv.notify_all()
