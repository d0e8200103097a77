"""Contextual policies on a disjoint linear model: LinUCB and linear Thompson sampling.

Each arm ``i`` has its own ridge regression of the reward on the context ``x`` (a
vector of ``d`` features, the experiment's declared features in their declared
order). Its state is

* ``A_i = λ I + Σ c · x xᵀ`` (shape ``(B, K, d, d)`` over a batch ``B`` of problems), and
* ``b_i = Σ c · r · x`` (shape ``(B, K, d)``),

summed over the rewards observed for the arm, a reward ``r`` reported with count
``c`` counting as ``c`` identical observations in the same context. The ridge
estimate is ``θ_i = A_i⁻¹ b_i`` and ``xᵀ A_i⁻¹ x`` measures how little the arm is
known in direction ``x``. Every arm's slice of the state depends on that arm's
observations only, so states of different arms concatenate along axis 1 (a new
arm starts from ``init_state(B, 1, d)``).

Nothing here adds an intercept: declare a constant feature (always 1) if arms
should differ by a baseline reward, as Li et al. (2010) do.

The linear systems are solved with :func:`numpy.linalg.solve`, batched over
problems and arms; no inverse is stored or grown, so the state stays exact
(``A`` and ``b`` are plain sums) however long the experiment runs.

References: L. Li, W. Chu, J. Langford & R. E. Schapire, "A contextual-bandit
approach to personalized news article recommendation", WWW 2010 (Algorithm 1);
S. Agrawal & N. Goyal, "Thompson sampling for contextual bandits with linear
payoffs", ICML 2013.
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
    sample_categorical,
    ties_probabilities,
)
from octobandit.stats.posterior import student_t_prob_best

__all__ = ["DisjointRidge", "LinUCB", "LinearThompson", "linear_scores"]

NEEDS_CONTEXTS = "contextual policy needs contexts"

#: Smallest score standard deviation handed to the quadrature (a positive normal float).
_TINY_SCALE = float(np.finfo(np.float64).tiny)


def _need(contexts: Any) -> FloatArray:
    if contexts is None:
        raise ValueError(NEEDS_CONTEXTS)
    x = np.asarray(contexts, dtype=np.float64)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise ValueError(f"contexts must have shape (M, dim), got {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("contexts must be finite")
    return x


def _state(state: dict[str, FloatArray]) -> tuple[FloatArray, FloatArray]:
    try:
        a, b = state["A"], state["b"]
    except KeyError as exc:
        raise ValueError(f"state lacks {exc.args[0]!r}: build it with init_state") from exc
    if b.ndim != 3 or a.shape != (*b.shape, b.shape[-1]):
        raise ValueError(f"state shapes A {a.shape}, b {b.shape}: want (B, K, d, d) and (B, K, d)")
    return a, b


def linear_scores(
    state: dict[str, FloatArray], contexts: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """``(x · θ_i, xᵀ A_i⁻¹ x)`` for every context and arm, each of shape (N, K).

    With a state of ``B`` problems, ``contexts`` (M, d) gives one context per
    problem (``M = B``) or, for one problem (``B = 1``), ``M`` contexts scored on
    the same state.
    """
    a, b = _state(state)
    x = _need(contexts)
    batch, k, d = b.shape
    m = x.shape[0]
    if x.shape[1] != d:
        raise ValueError(f"contexts have {x.shape[1]} features, the state has {d}")
    if m == batch:
        rhs = np.stack([b, np.broadcast_to(x[:, None, :], b.shape)], axis=-1)  # (B, K, d, 2)
        y = np.linalg.solve(a, rhs)
        loc = np.einsum("bkd,bd->bk", y[..., 0], x)
        quad = np.einsum("bkd,bd->bk", y[..., 1], x)
    elif batch == 1:
        rhs = np.concatenate([b[0][..., None], np.broadcast_to(x.T, (k, d, m))], axis=-1)
        y = np.linalg.solve(a[0], rhs)  # (K, d, 1 + M)
        loc = x @ y[..., 0].T
        quad = np.einsum("kdm,md->mk", y[..., 1:], x)
    else:
        raise ValueError(
            f"{m} contexts for a state of {batch} problems: "
            "give one context per problem, or many for a state of one problem"
        )
    return np.asarray(loc, dtype=np.float64), np.maximum(quad, 0.0)


def _mask(enabled: Any, shape: tuple[int, ...]) -> BoolArray:
    try:
        mask = np.broadcast_to(_as_mask(enabled, shape[-1]), shape)
    except ValueError as exc:
        raise ValueError(f"enabled does not broadcast to {shape}: {exc}") from exc
    if not mask.any(axis=-1).all():
        raise ValueError("no enabled arm to choose from")
    return mask


#: Ranges that keep ``A_i = ridge·I + Σ x xᵀ`` well conditioned and every index finite,
#: with context features bounded by ``MAX_FEATURE`` (|x| ≤ 10^4 in the engine): the
#: smallest eigenvalue (≥ ridge) stays above float64 resolution of the largest
#: (≤ ridge + n·d·10^8), so ``A_i`` is never numerically singular.
MIN_RIDGE, MAX_RIDGE = 1e-3, 1e6
MIN_SCALE, MAX_SCALE = 1e-6, 1e6
MAX_FEATURE = 1e4


class DisjointRidge(Policy):
    """Base of the disjoint linear policies: the per-arm ridge state and its updates."""

    stateful = True
    contextual = True

    ridge: float

    def init_state(self, batch: int, k: int, dim: int = 0) -> dict[str, FloatArray]:
        """``A = λ I`` and ``b = 0`` for ``batch`` problems with ``k`` arms and ``dim`` features."""
        if int(batch) < 0 or int(k) < 0:
            raise ValueError("batch and k must be >= 0")
        if int(dim) < 1:
            raise ValueError(f"{self.type} needs at least one context feature (dim >= 1)")
        d = int(dim)
        a = np.zeros((int(batch), int(k), d, d))
        a[..., np.arange(d), np.arange(d)] = self.ridge
        return {"A": a, "b": np.zeros((int(batch), int(k), d))}

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
        """``A_i += c · x xᵀ`` and ``b_i += c · r · x`` for each problem's arm ``i`` (in place).

        Propensities and times are not used (no importance weighting, no forgetting).
        """
        a, b = _state(state)
        x = _need(contexts)
        batch, _, d = b.shape
        arm = np.asarray(arms, dtype=np.intp).reshape(-1)
        r = np.asarray(rewards, dtype=np.float64).reshape(-1)
        c = np.asarray(counts, dtype=np.float64).reshape(-1)
        if x.shape != (batch, d) or not arm.shape == r.shape == c.shape == (batch,):
            raise ValueError(
                f"want one observation per problem: arms, rewards, counts ({batch},), "
                f"contexts ({batch}, {d}); got {arm.shape}, {r.shape}, {c.shape}, {x.shape}"
            )
        if not (np.isfinite(r).all() and np.isfinite(c).all() and (c >= 0).all()):
            raise ValueError("rewards must be finite and counts finite and >= 0")
        rows = np.arange(batch)
        a[rows, arm] += c[:, None, None] * (x[:, :, None] * x[:, None, :])
        b[rows, arm] += (c * r)[:, None] * x

    def coefficients(self, state: dict[str, FloatArray]) -> FloatArray:
        """The ridge estimates ``θ_i = A_i⁻¹ b_i``, shape (B, K, d)."""
        a, b = _state(state)
        return np.asarray(np.linalg.solve(a, b[..., None])[..., 0], dtype=np.float64)

    def probabilities(self, stats: ArmStats, enabled: Any = None) -> FloatArray:
        """Not defined without contexts: use :meth:`state_probabilities`."""
        raise ValueError(NEEDS_CONTEXTS)

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
        """One arm per row of :meth:`state_probabilities`, drawn from that distribution."""
        probs = self.state_probabilities(stats, enabled, state, contexts=contexts, time=time)
        return sample_categorical(probs, rng)


@dataclass(frozen=True, slots=True)
class LinUCB(DisjointRidge):
    """Disjoint LinUCB (Li, Chu, Langford & Schapire 2010, Algorithm 1).

    In context ``x`` it serves the enabled arm with the largest index
    ``x · θ_i + alpha · sqrt(xᵀ A_i⁻¹ x)`` (see the module docstring for ``A_i``,
    ``θ_i``). The choice is deterministic up to ties, broken uniformly, so the
    propensity is ``1 / |ties|`` per context (1.0 in general): its logs cannot be
    evaluated off-policy. Before any observation every arm has the same index, so
    the first choices are uniform.

    ``alpha`` scales exploration (Li et al.: ``1 + sqrt(ln(2/δ)/2)`` for
    confidence ``1 - δ`` with rewards in [0, 1]; scale it with the noise of the
    rewards); ``ridge`` is ``λ``, the prior precision of every coefficient.

    >>> import numpy as np
    >>> p = LinUCB(alpha=1.0, reward="continuous")
    >>> state = p.init_state(1, 2, 2)            # one problem, two arms, two features
    >>> x = np.array([[1.0, 0.5]])
    >>> p.update_state(state, np.array([0]), np.array([1.0]), np.array([1.0]),
    ...                propensities=np.array([np.nan]), contexts=x, times=np.zeros(1))
    >>> state["A"][0, 0].tolist(), state["b"][0, 0].tolist()
    ([[2.0, 0.5], [0.5, 1.25]], [1.0, 0.5])
    >>> p.indices(state, x).round(4).tolist()   # 5/9 + sqrt(5/9), 0 + sqrt(5/4)
    [[1.3009, 1.118]]
    >>> p.state_probabilities(ArmStats.zeros(2), None, state, contexts=x).tolist()
    [[1.0, 0.0]]
    """

    type = "linucb"
    deterministic = True

    alpha: float = 1.0
    ridge: float = 1.0
    reward: str = "binary"

    def __post_init__(self) -> None:
        alpha = check_number(self.alpha, "policy.alpha", low=0.0, high=MAX_SCALE)
        object.__setattr__(self, "alpha", alpha)
        ridge = check_number(self.ridge, "policy.ridge", low=MIN_RIDGE, high=MAX_RIDGE)
        object.__setattr__(self, "ridge", ridge)

    def indices(self, state: dict[str, FloatArray], contexts: FloatArray | None) -> FloatArray:
        """The LinUCB index of every arm in every context, shape (N, K)."""
        loc, quad = linear_scores(state, _need(contexts))
        return np.asarray(loc + self.alpha * np.sqrt(quad), dtype=np.float64)

    def state_probabilities(
        self,
        stats: ArmStats,
        enabled: Any,
        state: dict[str, FloatArray],
        *,
        contexts: FloatArray | None = None,
        time: float = 0.0,
    ) -> FloatArray:
        """``1 / |ties|`` on the enabled arms with the largest index, per context."""
        idx = self.indices(state, contexts)
        return ties_probabilities(idx, _mask(enabled, idx.shape))


@dataclass(frozen=True, slots=True)
class LinearThompson(DisjointRidge):
    """Linear Thompson sampling (Agrawal & Goyal 2013) on the disjoint model.

    Each arm's coefficients are drawn from ``N(θ_i, v² A_i⁻¹)`` and the arm with
    the largest sampled score ``x · θ̃_i`` is served. For a context ``x`` the
    scores are independent normals, ``x · θ̃_i ~ N(x · θ_i, v² xᵀ A_i⁻¹ x)``,
    so the probability of serving arm ``i`` is ``P(arm i's score is the
    largest)``, computed by Gauss–Legendre quadrature
    (:func:`~octobandit.stats.posterior.student_t_prob_best` with ``df = inf``,
    absolute error ~1e-8): the service draws the arm from that distribution, so
    the logged propensity is the probability used, and every enabled arm keeps a
    positive one (off-policy evaluation works). :meth:`state_draw` samples the
    scores instead (the same distribution, much cheaper, for simulations).

    ``v`` scales the posterior (Agrawal & Goyal's ``v``; about the reward noise's
    standard deviation in practice); ``ridge`` is ``λ``, the prior precision.

    >>> import numpy as np
    >>> p = LinearThompson(v=1.0, reward="continuous")
    >>> state = p.init_state(1, 2, 1)            # one feature: scores N(θ_i x, x² / A_i)
    >>> p.update_state(state, np.array([0]), np.array([3.0]), np.array([2.0]),
    ...                propensities=np.array([np.nan]), contexts=np.ones((1, 1)), times=[0])
    >>> p.coefficients(state)[0, :, 0].tolist()   # 2·3 / (1 + 2), 0
    [2.0, 0.0]
    >>> # P(N(2, 1/3) > N(0, 1)) = Φ(2 / sqrt(4/3)) = 0.95837
    >>> probs = p.state_probabilities(ArmStats.zeros(2), None, state, contexts=[[1.0]])
    >>> probs.round(5).tolist()
    [[0.95837, 0.04163]]
    """

    type = "linear_thompson"

    v: float = 1.0
    ridge: float = 1.0
    reward: str = "binary"

    def __post_init__(self) -> None:
        v = check_number(self.v, "policy.v", low=MIN_SCALE, high=MAX_SCALE)
        object.__setattr__(self, "v", v)
        ridge = check_number(self.ridge, "policy.ridge", low=MIN_RIDGE, high=MAX_RIDGE)
        object.__setattr__(self, "ridge", ridge)

    def score_distribution(
        self, state: dict[str, FloatArray], contexts: FloatArray | None
    ) -> tuple[FloatArray, FloatArray]:
        """Mean and standard deviation of each arm's sampled score, each (N, K)."""
        loc, quad = linear_scores(state, _need(contexts))
        return loc, self.v * np.sqrt(quad)

    def state_probabilities(
        self,
        stats: ArmStats,
        enabled: Any,
        state: dict[str, FloatArray],
        *,
        contexts: FloatArray | None = None,
        time: float = 0.0,
    ) -> FloatArray:
        """P(each arm's sampled score is the largest), per context."""
        loc, scale = self.score_distribution(state, contexts)
        mask = _mask(enabled, loc.shape)
        # A zero context gives every arm the score 0 exactly: a tie.
        flat = ~(scale > 0).any(axis=-1)
        out = np.empty_like(loc)
        if flat.any():
            out[flat] = ties_probabilities(loc[flat], mask[flat])
        live = ~flat
        if live.any():
            out[live] = student_t_prob_best(
                loc[live], np.maximum(scale[live], _TINY_SCALE), np.inf, mask=mask[live]
            )
        return out

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
        """Draw the scores, serve the largest: the distribution of :meth:`state_probabilities`."""
        loc, scale = self.score_distribution(state, contexts)
        mask = _mask(enabled, loc.shape)
        scores = np.where(mask, loc + scale * rng.standard_normal(loc.shape), -np.inf)
        arms = np.asarray(np.argmax(scores, axis=-1), dtype=np.intp)
        flat = ~(scale > 0).any(axis=-1)
        if flat.any():
            arms[flat] = sample_categorical(ties_probabilities(loc[flat], mask[flat]), rng)
        return arms
