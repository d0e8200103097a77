"""Sliding-window UCB: UCB on the last ``window`` observations only.

Reference: A. Garivier & E. Moulines, "On upper-confidence bound policies for
switching bandit problems", ALT 2011 (LNCS 6925, 174–188); arXiv:0805.3415.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from octobandit.errors import InvalidInput
from octobandit.policies.base import (
    ArmStats,
    FloatArray,
    IntArray,
    Policy,
    _as_mask,
    check_number,
    ties_probabilities,
)

#: the state keeps the last ``window`` rewards of every arm: at most 10^5 of them
MAX_WINDOW = 100_000


@dataclass(frozen=True, slots=True)
class SlidingWindowUCB(Policy):
    """SW-UCB (Garivier & Moulines 2011): the arm maximising, over the last ``W`` observations,

    ``μ̂_i(W) + c · sqrt(ln(min(t, W)) / N_i(W))``

    where ``t`` counts the problem's observations, ``N_i(W)`` is arm ``i``'s number
    of rewards among the last ``W`` observations and ``μ̂_i(W)`` their mean. In the
    paper's notation ``c = B·sqrt(ξ)`` (``B`` bounds the rewards, ``ξ > 1/2`` for the
    analysis); the default ``c = sqrt(0.6)`` is ``ξ = 0.6`` for rewards in [0, 1].
    An arm with no reward in the window has an infinite index, so such arms are
    served first. Deterministic up to ties (broken uniformly): the propensity is
    ``1 / |ties|``, so its logs cannot be evaluated off-policy.

    An observation is one reward report; a report of ``count`` rewards with mean
    ``r`` is one entry of the window that weighs ``count`` in ``N_i`` and in the sum.

    **State** (``B`` problems, ``K`` arms, ``W`` slots; every arm keeps its own
    observations, so a new arm is a column of ``init_state(B, 1)`` concatenated along
    axis 1): per arm a ring buffer of its observations in the window, ``rewards``,
    ``weights`` and ``steps`` (the problem's observation number, from 1; 0 for an
    empty slot), each ``(B, K, W)``; ``head`` (next slot) and ``size`` (entries in
    the window), ``n`` and ``s`` (the weight and weighted sum of those entries), and
    ``clock``, the problem's observation count (the same in every arm; a problem's
    clock is the maximum over its arms). Each update advances the clock, drops the
    entries older than ``clock - W`` and writes the new one: ``3·K·W + 5·K`` floats.
    A state kept while ``window`` is changed is re-packed (:meth:`repack`).

    Without a state (:meth:`probabilities`) the policy is in its initial state:
    every enabled arm is untried, so all are tied.

    >>> import numpy as np
    >>> p = SlidingWindowUCB(window=3, c=1.0)
    >>> state = p.init_state(1, 2)
    >>> for arm, r in [(0, 1.0), (1, 0.0), (1, 0.0), (1, 1.0)]:
    ...     p.update_state(state, np.array([arm]), np.array([r]), np.array([1.0]),
    ...                    propensities=np.array([np.nan]), contexts=None,
    ...                    times=np.array([0.0]))
    >>> state["n"].tolist(), state["s"].tolist()  # arm 0's reward left the window
    ([[0.0, 3.0]], [[0.0, 1.0]])
    >>> p.state_probabilities(ArmStats.zeros(2), None, state).tolist()
    [[1.0, 0.0]]
    """

    type = "sliding_window_ucb"
    deterministic = True
    stateful = True

    window: int = 1000
    c: float = math.sqrt(0.6)
    reward: str = "binary"

    def __post_init__(self) -> None:
        w = check_number(self.window, "policy.window", low=1.0, high=MAX_WINDOW)
        if w != int(w):
            raise InvalidInput("must be an integer", field="policy.window")
        object.__setattr__(self, "window", int(w))
        object.__setattr__(self, "c", check_number(self.c, "policy.c", low=0.0))

    # -- state ----------------------------------------------------------------
    def init_state(self, batch: int, k: int, dim: int = 0) -> dict[str, FloatArray]:
        ring = (batch, k, self.window)
        out = {name: np.zeros(ring) for name in ("rewards", "weights", "steps")}
        out.update({name: np.zeros((batch, k)) for name in ("head", "size", "n", "s", "clock")})
        return out

    def update_state(
        self,
        state: dict[str, FloatArray],
        arms: IntArray,
        rewards: FloatArray,
        counts: FloatArray,
        *,
        propensities: FloatArray,
        contexts: FloatArray | None,
        times: FloatArray,
    ) -> None:
        w_len = self.window
        if state["steps"].shape[2] != w_len:  # the window was changed: re-pack the state
            state.update(self.repack(state))
        buf_r, buf_w, steps = state["rewards"], state["weights"], state["steps"]
        head, size, n, s, clock = (state[k] for k in ("head", "size", "n", "s", "clock"))
        rows = np.arange(n.shape[0])
        now = clock.max(axis=1) + 1.0
        clock[...] = now[:, None]
        limit = (now - w_len)[:, None]
        # Drop the entries that left the window (one per update in steady state;
        # loop in case the clock jumped, e.g. after a state was assembled).
        while True:
            oldest = np.mod(head - size, w_len).astype(np.intp)
            old_step = np.take_along_axis(steps, oldest[..., None], axis=2)[..., 0]
            expired = (size > 0) & (old_step <= limit)
            if not expired.any():
                break
            b, a = np.nonzero(expired)
            slot = oldest[b, a]
            n[b, a] -= buf_w[b, a, slot]
            s[b, a] -= buf_w[b, a, slot] * buf_r[b, a, slot]
            steps[b, a, slot] = 0.0
            size[b, a] -= 1.0
            empty = size[b, a] == 0
            n[b[empty], a[empty]] = 0.0  # no rounding drift in empty windows
            s[b[empty], a[empty]] = 0.0
        pos = head[rows, arms].astype(np.intp)
        r = np.asarray(rewards, dtype=np.float64)
        c = np.asarray(counts, dtype=np.float64)
        buf_r[rows, arms, pos] = r
        buf_w[rows, arms, pos] = c
        steps[rows, arms, pos] = now
        head[rows, arms] = (pos + 1) % w_len
        size[rows, arms] += 1.0
        n[rows, arms] += c
        s[rows, arms] += c * r

    def repack(self, state: dict[str, FloatArray]) -> dict[str, FloatArray]:
        """A copy of ``state`` with ring buffers of ``window`` slots, keeping the entries
        of the last ``window`` reports (for a state kept while ``window`` was changed; a
        larger window fills up from then on: entries dropped before are gone)."""
        w_len = self.window
        steps = state["steps"]
        order = np.argsort(steps, axis=2, kind="stable")  # chronological, empty slots first
        st = np.take_along_axis(steps, order, axis=2)
        rw = np.take_along_axis(state["rewards"], order, axis=2)
        wt = np.take_along_axis(state["weights"], order, axis=2)
        clock = state["clock"].max(axis=1, keepdims=True)
        valid = (st > 0) & (st > clock[..., None] - w_len)
        later = np.flip(np.cumsum(np.flip(valid, axis=2), axis=2), axis=2) - valid
        keep = valid & (later < w_len)
        pos = np.cumsum(keep, axis=2) - 1
        b, a, j = np.nonzero(keep)
        slot = pos[b, a, j]
        batch, k = steps.shape[:2]
        out = self.init_state(batch, k)
        out["steps"][b, a, slot] = st[b, a, j]
        out["rewards"][b, a, slot] = rw[b, a, j]
        out["weights"][b, a, slot] = wt[b, a, j]
        size = keep.sum(axis=2).astype(np.float64)
        out["size"] = size
        out["head"] = np.mod(size, w_len)
        out["n"] = np.where(keep, wt, 0.0).sum(axis=2)
        out["s"] = np.where(keep, wt * rw, 0.0).sum(axis=2)
        out["clock"] = np.broadcast_to(clock, (batch, k)).copy()
        return out

    def indices(self, state: dict[str, FloatArray]) -> FloatArray:
        """SW-UCB index of every arm, ``(B, K)`` (``inf`` for arms untried in the window)."""
        if "steps" in state and state["steps"].shape[2] != self.window:
            state = self.repack(state)
        n, s = state["n"], state["s"]
        t = np.minimum(state["clock"].max(axis=1, keepdims=True), float(self.window))
        log_t = np.log(np.maximum(t, 1.0))
        tried = n > 0
        safe = np.where(tried, n, 1.0)
        idx = np.where(tried, s / safe + self.c * np.sqrt(log_t / safe), np.inf)
        return np.asarray(idx, dtype=np.float64)

    def state_probabilities(
        self,
        stats: ArmStats,
        enabled: Any,
        state: dict[str, FloatArray],
        *,
        contexts: FloatArray | None = None,
        time: float = 0.0,
    ) -> FloatArray:
        idx = self.indices(state)
        mask = np.broadcast_to(_as_mask(enabled, idx.shape[-1]), idx.shape)
        return ties_probabilities(idx, mask)

    # -- stateless ----------------------------------------------------------
    def probabilities(self, stats: ArmStats, enabled: Any = None) -> FloatArray:
        batch = 1 if stats.n.ndim == 1 else int(stats.n.shape[0])
        fresh = {"n": np.zeros((batch, stats.k)), "s": np.zeros((batch, stats.k))}
        fresh["clock"] = np.zeros((batch, stats.k))
        probs = self.state_probabilities(stats, enabled, fresh)
        return probs.reshape(stats.n.shape)
