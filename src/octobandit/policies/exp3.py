"""EXP3: exponential weights on importance-weighted reward estimates (adversarial bandits).

Reference: P. Auer, N. Cesa-Bianchi, Y. Freund & R. E. Schapire, "The nonstochastic
multiarmed bandit problem", SIAM Journal on Computing 32(1) (2002) 48–77.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from octobandit.policies.base import (
    ArmStats,
    FloatArray,
    IntArray,
    Policy,
    _as_mask,
    check_number,
)


@dataclass(frozen=True, slots=True)
class EXP3(Policy):
    """EXP3 (Auer et al. 2002) for rewards in [0, 1].

    Arm ``i`` is chosen with probability

    ``p_i = (1 - γ) · exp(γ Ŝ_i / K) / Σ_j exp(γ Ŝ_j / K) + γ / K``

    over the ``K`` enabled arms (0 for a disabled arm), where ``Ŝ_i`` sums arm
    ``i``'s importance-weighted rewards ``x / p``: an unbiased estimate of the
    rewards it would have earned had it been played every time. The softmax is
    computed after subtracting the largest exponent (no overflow), so the
    propensity is exact. ``γ`` in (0, 1] is the exploration rate; Auer et al.'s
    tuning for a known horizon is ``min(1, sqrt(K ln K / ((e - 1) g)))``, ``g`` a
    bound on the best arm's total reward.

    **Update.** A reward ``x`` reported for a decision adds ``count · x / p`` to the
    arm's ``Ŝ``, with ``p`` the propensity logged with the decision (the probability
    the arm was actually drawn with). A reward reported per arm (propensity NaN)
    uses the arm's current probability, recomputed from the state with every arm
    enabled. Rewards are assumed to lie in [0, 1]; rescale continuous rewards.

    **State:** ``gain`` (``(B, K)``), the sums ``Ŝ``; a new arm starts at 0, behind
    arms that have accumulated estimated rewards (EXP3 is slow to adopt a late arm).

    Without a state (:meth:`probabilities`) the policy is in its initial state:
    every enabled arm is equally likely.

    >>> import numpy as np
    >>> p = EXP3(gamma=0.3)
    >>> state = p.init_state(1, 3)
    >>> p.update_state(state, np.array([1]), np.array([1.0]), np.array([1.0]),
    ...                propensities=np.array([0.25]), contexts=None, times=np.array([0.0]))
    >>> state["gain"].tolist()
    [[0.0, 4.0, 0.0]]
    >>> # 0.7 · softmax(0, 0.4, 0) + 0.1
    >>> p.state_probabilities(ArmStats.zeros(3), None, state).round(4).tolist()
    [[0.3005, 0.3991, 0.3005]]
    """

    type = "exp3"
    stateful = True

    gamma: float = 0.1
    reward: str = "binary"

    def __post_init__(self) -> None:
        g = check_number(self.gamma, "policy.gamma", low=0.0, high=1.0, low_open=True)
        object.__setattr__(self, "gamma", g)

    def init_state(self, batch: int, k: int, dim: int = 0) -> dict[str, FloatArray]:
        return {"gain": np.zeros((batch, k))}

    def _probs(self, gain: FloatArray, mask: Any) -> FloatArray:
        mask = np.broadcast_to(mask, gain.shape)
        k = np.maximum(mask.sum(axis=-1, keepdims=True), 1)
        z = np.where(mask, self.gamma * gain / k, -np.inf)
        z = z - z.max(axis=-1, keepdims=True)
        w = np.exp(z)  # exactly 0 for disabled arms, 1 for the largest
        soft = w / w.sum(axis=-1, keepdims=True)
        return np.asarray((1.0 - self.gamma) * soft + self.gamma * mask / k, dtype=np.float64)

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
        gain = state["gain"]
        rows = np.arange(gain.shape[0])
        p = np.asarray(propensities, dtype=np.float64).copy()
        unknown = ~(p > 0)  # NaN, or not a usable probability
        if unknown.any():
            current = self._probs(gain[unknown], np.ones(gain.shape[1], dtype=bool))
            p[unknown] = current[np.arange(int(unknown.sum())), arms[unknown]]
        gain[rows, arms] += np.asarray(counts) * np.asarray(rewards) / p

    def state_probabilities(
        self,
        stats: ArmStats,
        enabled: Any,
        state: dict[str, FloatArray],
        *,
        contexts: FloatArray | None = None,
        time: float = 0.0,
    ) -> FloatArray:
        gain = state["gain"]
        return self._probs(gain, _as_mask(enabled, gain.shape[1]))

    def probabilities(self, stats: ArmStats, enabled: Any = None) -> FloatArray:
        return self._probs(np.zeros(stats.n.shape), _as_mask(enabled, stats.k))
