"""Discounted Thompson sampling: Thompson sampling on exponentially forgotten statistics.

For piecewise-stationary problems, where the best arm may change: every arm's
sufficient statistics are multiplied by ``2^(-Δ / half_life)`` as time passes, so
an observation's weight halves every ``half_life`` observations (or seconds), and
the posterior of an arm that is no longer played widens back towards the prior.

Reference: V. Raj & S. Kalyani, "Taming non-stationary bandits: a Bayesian
approach", arXiv:1707.09727 (2017).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from octobandit.policies.base import (
    ArmStats,
    BoolArray,
    FloatArray,
    IntArray,
    Policy,
    _as_mask,
    check_number,
)
from octobandit.policies.schedules import check_choice
from octobandit.policies.thompson import ThompsonSampling

#: Units of ``half_life``.
HALF_LIFE_UNITS = ("observations", "seconds")


def _fresh_batch(stats: ArmStats) -> tuple[int, int]:
    """(B, K) of a fresh state matching 1-D ``(K,)`` or 2-D ``(B, K)`` statistics."""
    if stats.n.ndim == 1:
        return 1, stats.k
    return int(stats.n.shape[0]), stats.k


@dataclass(frozen=True, slots=True)
class DiscountedThompson(Policy):
    """Thompson sampling on discounted statistics (Raj & Kalyani 2017).

    **State** (one problem per row, ``(B, K)`` each): the discounted count ``n``,
    sum ``s`` and sum of squares ``ss`` of each arm's rewards, and the time ``t`` at
    which they were last decayed. Every arm's values are its own, so an arm added
    later is a column of ``init_state(B, 1)`` (zeros) concatenated along axis 1.

    **Update.** When an observation (mean reward ``r`` of ``count`` rewards) arrives,
    the problem's clock moves to ``T``: in ``"observations"`` mode ``T = max_i t_i +
    count`` (every observation is one unit of time); in ``"seconds"`` mode ``T =
    max(max_i t_i, time)``. Every arm is decayed to ``T`` by ``2^(-(T - t_i) /
    half_life)`` (so all arms of a problem share ``t``), then the observation is
    added with weight ``count · 2^(-(T - time) / half_life)``: 1 unless it is older
    than the state (a reward arriving late in seconds mode), so in seconds mode the
    state does not depend on the order in which rewards arrive. After ``m``
    observations of reward 1 on one arm, its discounted count is
    ``Σ_{i<m} 2^(-i / half_life)``.

    **Decision.** In seconds mode the state is decayed virtually to the decision
    ``time`` (never forwards past it); the posterior is then Thompson sampling's
    (:class:`~octobandit.policies.thompson.ThompsonSampling`, with the same prior
    parameters) on the discounted statistics: ``Beta(alpha + s, beta + n - s)`` for
    binary rewards, the Normal-Inverse-Gamma posterior for continuous ones. The
    probabilities are the posterior probabilities of being best, by quadrature.

    Without a state (:meth:`probabilities`) the policy is in its initial state: the
    statistics are ignored and every enabled arm is equally likely.

    >>> import numpy as np
    >>> p = DiscountedThompson(half_life=2.0)
    >>> state = p.init_state(1, 2)
    >>> for _ in range(3):
    ...     p.update_state(state, np.array([0]), np.array([1.0]), np.array([1.0]),
    ...                    propensities=np.array([np.nan]), contexts=None,
    ...                    times=np.array([0.0]))
    >>> state["n"].round(6).tolist()  # 1 + 2^(-1/2) + 2^(-1)
    [[2.207107, 0.0]]
    >>> # Beta(1 + n, 1) against Beta(1, 1): P(first is larger) = (1 + n) / (2 + n)
    >>> p.state_probabilities(ArmStats.zeros(2), None, state).round(4).tolist()
    [[0.7623, 0.2377]]
    """

    type = "discounted_thompson"
    exact_propensity = False
    stateful = True

    half_life: float = 500.0
    half_life_unit: str = "observations"
    alpha: float = 1.0
    beta: float = 1.0
    mu0: float | None = None
    kappa0: float = 0.01
    a0: float = 1.0
    b0: float | None = None
    reward: str = "binary"

    def __post_init__(self) -> None:
        h = check_number(self.half_life, "policy.half_life", low=0.0, low_open=True)
        object.__setattr__(self, "half_life", h)
        unit = check_choice(self.half_life_unit, "policy.half_life_unit", HALF_LIFE_UNITS)
        object.__setattr__(self, "half_life_unit", unit)
        ts = self.thompson()  # validates the prior, naming policy.<param>
        for name in ("alpha", "beta", "mu0", "kappa0", "a0", "b0"):
            object.__setattr__(self, name, getattr(ts, name))

    def thompson(self) -> ThompsonSampling:
        """The stationary Thompson sampling with the same prior."""
        return ThompsonSampling(
            alpha=self.alpha,
            beta=self.beta,
            mu0=self.mu0,
            kappa0=self.kappa0,
            a0=self.a0,
            b0=self.b0,
            reward=self.reward,
        )

    # -- state ----------------------------------------------------------------
    def init_state(self, batch: int, k: int, dim: int = 0) -> dict[str, FloatArray]:
        return {name: np.zeros((batch, k)) for name in ("n", "s", "ss", "t")}

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
        n, s, ss, t = state["n"], state["s"], state["ss"], state["t"]
        rows = np.arange(n.shape[0])
        r = np.asarray(rewards, dtype=np.float64)
        c = np.asarray(counts, dtype=np.float64)
        latest = t.max(axis=1)
        if self.half_life_unit == "seconds":
            at = np.asarray(times, dtype=np.float64)
            now = np.maximum(latest, at)
        else:
            now = latest + c
            at = now
        factor = np.exp2((t - now[:, None]) / self.half_life)  # <= 1
        n *= factor
        s *= factor
        ss *= factor
        t[...] = now[:, None]
        w = c * np.exp2((at - now) / self.half_life)
        n[rows, arms] += w
        s[rows, arms] += w * r
        ss[rows, arms] += w * r * r

    def decayed_stats(self, state: dict[str, FloatArray], time: float = 0.0) -> ArmStats:
        """The discounted statistics ``(B, K)`` at the decision ``time`` (seconds mode)."""
        t = state["t"]
        ref = t.max(axis=1, keepdims=True)
        if self.half_life_unit == "seconds":
            ref = np.maximum(ref, float(time))
        factor = np.exp2((t - ref) / self.half_life)
        return ArmStats(state["n"] * factor, state["s"] * factor, state["ss"] * factor)

    def state_probabilities(
        self,
        stats: ArmStats,
        enabled: Any,
        state: dict[str, FloatArray],
        *,
        contexts: FloatArray | None = None,
        time: float = 0.0,
    ) -> FloatArray:
        decayed = self.decayed_stats(state, time)
        mask = _as_mask(enabled, decayed.k)
        return self.thompson().probabilities(decayed, mask)

    def state_draw(
        self,
        stats: ArmStats,
        enabled: Any,
        state: dict[str, FloatArray],
        rng: np.random.Generator,
        *,
        contexts: FloatArray | None = None,
        time: float = 0.0,
    ) -> IntArray:
        """One posterior draw per problem: the same distribution as
        :meth:`state_probabilities`, much faster for many problems (simulations)."""
        decayed = self.decayed_stats(state, time)
        mask: BoolArray = np.broadcast_to(_as_mask(enabled, decayed.k), decayed.n.shape)
        return self.thompson()._draw(decayed, mask, rng)

    # -- stateless ----------------------------------------------------------
    def point_estimates(self, stats: ArmStats) -> FloatArray:
        return self.thompson().point_estimates(stats)

    def probabilities(self, stats: ArmStats, enabled: Any = None) -> FloatArray:
        batch, k = _fresh_batch(stats)
        probs = self.state_probabilities(stats, enabled, self.init_state(batch, k))
        return probs.reshape(stats.n.shape)
