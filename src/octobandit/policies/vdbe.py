"""ε-greedy with Value-Difference Based Exploration (VDBE): ε follows how much the values move.

Reference: M. Tokic, "Adaptive ε-greedy exploration in reinforcement learning based
on value differences", KI 2010: Advances in Artificial Intelligence (LNCS 6359,
203–210).
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
    ties_probabilities,
)


@dataclass(frozen=True, slots=True)
class VDBE(Policy):
    """ε-greedy whose ε is driven by the changes of the value estimates (Tokic 2010).

    Each observation of arm ``a`` (mean reward ``r`` of ``count`` rewards) moves its
    value ``Q_a`` towards ``r``: by ``count / (n_a + count)`` (a sample average, when
    ``alpha`` is None) or by ``1 - (1 - alpha)^count`` (a constant learning rate, one
    step per reward). With ``ΔQ`` the change, ε moves to

    ``ε ← δ · f + (1 - δ) · ε``, with
    ``f = (1 - exp(-|ΔQ| / σ)) / (1 + exp(-|ΔQ| / σ)) = tanh(|ΔQ| / 2σ)``,

    so ε grows while the estimates move (e.g. after a change of the rewards) and
    shrinks as they settle. ``σ`` (``sigma``, > 0, in reward units) is the inverse
    sensitivity; ``δ`` (``delta``, in (0, 1]) the weight of the latest observation.
    Tokic sets ``δ = 1/K``; since arms may be added, ``delta`` is a parameter
    (default 0.1, i.e. ``1/K`` for 10 arms). ε starts at 1.

    Arm ``i`` is chosen with probability ``(1 - ε) / |ties| + ε / K`` if it is tied
    for the best ``Q`` among the ``K`` enabled arms, ``ε / K`` otherwise (exact).
    Arms never observed have ``Q = initial_value``.

    **State** (``(B, K)`` each): ``q`` (values), ``n`` (rewards counted) and
    ``epsilon``: every arm holds a copy of the problem's ε, and the problem's ε is
    the largest copy. Updates write the new ε into every copy. A new arm's copy
    starts at 1, so adding an arm restarts exploration at ε = 1 (as for a new
    problem) and ε then decays again by the rule above.

    Without a state (:meth:`probabilities`) the policy is in its initial state
    (ε = 1): every enabled arm is equally likely.

    >>> import numpy as np
    >>> p = VDBE(sigma=0.5, delta=0.5)
    >>> state = p.init_state(1, 2)
    >>> p.update_state(state, np.array([0]), np.array([1.0]), np.array([1.0]),
    ...                propensities=np.array([np.nan]), contexts=None, times=np.array([0.0]))
    >>> state["q"].tolist(), round(float(state["epsilon"][0, 0]), 4)  # 0.5 tanh(1) + 0.5
    ([[1.0, 0.0]], 0.8808)
    >>> p.state_probabilities(ArmStats.zeros(2), None, state).round(4).tolist()
    [[0.5596, 0.4404]]
    """

    type = "vdbe"
    stateful = True

    sigma: float = 0.33
    delta: float = 0.1
    alpha: float | None = None
    initial_value: float = 0.0
    reward: str = "binary"

    def __post_init__(self) -> None:
        sigma = check_number(self.sigma, "policy.sigma", low=0.0, low_open=True)
        object.__setattr__(self, "sigma", sigma)
        delta = check_number(self.delta, "policy.delta", low=0.0, high=1.0, low_open=True)
        object.__setattr__(self, "delta", delta)
        if self.alpha is not None:
            alpha = check_number(self.alpha, "policy.alpha", low=0.0, high=1.0, low_open=True)
            object.__setattr__(self, "alpha", alpha)
        object.__setattr__(
            self, "initial_value", check_number(self.initial_value, "policy.initial_value")
        )

    def init_state(self, batch: int, k: int, dim: int = 0) -> dict[str, FloatArray]:
        return {
            "q": np.full((batch, k), self.initial_value),
            "n": np.zeros((batch, k)),
            "epsilon": np.ones((batch, k)),
        }

    def epsilon_of(self, state: dict[str, FloatArray]) -> FloatArray:
        """Each problem's ε, shape ``(B, 1)``."""
        return np.asarray(state["epsilon"].max(axis=1, keepdims=True), dtype=np.float64)

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
        q, n, eps = state["q"], state["n"], state["epsilon"]
        rows = np.arange(q.shape[0])
        c = np.asarray(counts, dtype=np.float64)
        r = np.asarray(rewards, dtype=np.float64)
        old = q[rows, arms]
        n_new = n[rows, arms] + c
        if self.alpha is None:
            step = np.where(n_new > 0, c / np.where(n_new > 0, n_new, 1.0), 0.0)
        else:
            step = 1.0 - (1.0 - self.alpha) ** c
        new = old + step * (r - old)
        f = np.tanh(np.abs(new - old) / (2.0 * self.sigma))
        eps_new = self.delta * f + (1.0 - self.delta) * eps.max(axis=1)
        q[rows, arms] = new
        n[rows, arms] = n_new
        eps[...] = eps_new[:, None]

    def state_probabilities(
        self,
        stats: ArmStats,
        enabled: Any,
        state: dict[str, FloatArray],
        *,
        contexts: FloatArray | None = None,
        time: float = 0.0,
    ) -> FloatArray:
        q = state["q"]
        mask = np.broadcast_to(_as_mask(enabled, q.shape[1]), q.shape)
        eps = self.epsilon_of(state)
        explore = mask / np.maximum(mask.sum(axis=-1, keepdims=True), 1)
        greedy = ties_probabilities(q, mask)
        return np.asarray((1.0 - eps) * greedy + eps * explore, dtype=np.float64)

    def probabilities(self, stats: ArmStats, enabled: Any = None) -> FloatArray:
        mask = _as_mask(enabled, stats.k)
        explore = np.broadcast_to(mask, stats.n.shape).astype(np.float64)
        return np.asarray(explore / explore.sum(axis=-1, keepdims=True), dtype=np.float64)
