"""Off-policy estimators of a policy's value from logged bandit feedback.

Every estimator is written as sums of per-round terms: the estimate is a function of those
sums (a mean, or a ratio of two sums), which is what makes the bootstrap cheap: a resample
is a reweighting of the same terms, not a new pass through the data.

Notation: round ``i`` logged action ``a_i`` at position ``p_i`` with probability
``pscore[i]`` and observed ``reward[i]``; the evaluation policy gives that action probability
``π_i = action_dist[i, a_i, p_i]``; the importance weight is ``w_i = π_i / pscore[i]``; a
reward model predicts ``q(i, a, p)``; ``n`` is the number of rounds.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from octobandit.evaluation._arrays import (
    EvaluationError,
    Floats,
    Logged,
    check_not_deterministic,
    validate,
)

#: at most this many float64 gathered per bootstrap chunk (32 MB per term)
_CHUNK = 1 << 22

Seed = int | np.random.Generator | None


class OffPolicyEstimator:
    """The shared machinery: validation, the point estimate and the bootstrap interval.

    A subclass sets ``name``, says whether it needs ``pscore`` and the reward model, and
    gives its per-round ``_terms`` and how ``_combine`` turns their sums into the estimate.
    """

    name: ClassVar[str]
    needs_pscore: ClassVar[bool] = True
    needs_reward_model: ClassVar[bool] = False
    #: whether a given ``pscore`` is read (and so checked) when it is not required
    uses_pscore: ClassVar[bool] = True

    def _terms(self, data: Logged) -> list[Floats]:
        raise NotImplementedError

    def _combine(self, sums: Floats, n: int) -> Floats:
        """``sums`` is (terms, B): each term summed over one (re)sample of the rounds."""
        return np.asarray(sums[0] / n, dtype=np.float64)

    def _validate(
        self,
        reward: npt.ArrayLike,
        action: npt.ArrayLike,
        action_dist: npt.ArrayLike,
        pscore: npt.ArrayLike | None,
        position: npt.ArrayLike | None,
        estimated_rewards_by_reg_model: npt.ArrayLike | None,
    ) -> Logged:
        data = validate(
            reward=reward,
            action=action,
            action_dist=action_dist,
            pscore=pscore if self.uses_pscore else None,
            position=position,
            estimated_rewards_by_reg_model=(
                estimated_rewards_by_reg_model if self.needs_reward_model else None
            ),
            need_pscore=self.needs_pscore,
            need_q_hat=self.needs_reward_model,
        )
        if self.needs_pscore:
            assert data.pscore is not None
            check_not_deterministic(data.pscore, data.n_actions)
        return data

    def estimate_policy_value(
        self,
        *,
        reward: npt.ArrayLike,
        action: npt.ArrayLike,
        action_dist: npt.ArrayLike,
        pscore: npt.ArrayLike | None = None,
        position: npt.ArrayLike | None = None,
        estimated_rewards_by_reg_model: npt.ArrayLike | None = None,
    ) -> float:
        """The estimated value of the evaluation policy ``action_dist``.

        The arrays are keyword-only (OBP's methods order them differently from one estimator
        to the next); each estimator reads those it needs and ignores the others.
        """
        data = self._validate(
            reward, action, action_dist, pscore, position, estimated_rewards_by_reg_model
        )
        terms = np.stack(self._terms(data))
        return float(self._combine(terms.sum(axis=1)[:, np.newaxis], data.n)[0])

    def estimate_interval(
        self,
        *,
        reward: npt.ArrayLike,
        action: npt.ArrayLike,
        action_dist: npt.ArrayLike,
        pscore: npt.ArrayLike | None = None,
        position: npt.ArrayLike | None = None,
        estimated_rewards_by_reg_model: npt.ArrayLike | None = None,
        alpha: float = 0.05,
        n_bootstrap_samples: int = 1000,
        random_state: Seed = None,
    ) -> dict[str, float]:
        """A percentile bootstrap confidence interval of level ``1 - alpha``.

        The rounds are resampled with replacement ``n_bootstrap_samples`` times and the
        estimate recomputed on each resample; the interval is the ``alpha/2`` and
        ``1 - alpha/2`` quantiles of those estimates. Returns ``{"mean", "lower", "upper"}``
        (``mean`` is the mean of the bootstrap estimates). The reward model, when there is
        one, is held fixed: its own fitting error is not resampled.
        """
        if not 0 < alpha < 1:
            raise EvaluationError(f"alpha = {alpha} must be in (0, 1)")
        if n_bootstrap_samples < 1:
            raise EvaluationError(f"n_bootstrap_samples = {n_bootstrap_samples} must be >= 1")
        data = self._validate(
            reward, action, action_dist, pscore, position, estimated_rewards_by_reg_model
        )
        terms = np.stack(self._terms(data))  # (k, n)
        (values,) = _bootstrap([(self, terms)], data.n, n_bootstrap_samples, random_state)
        return _interval(values, alpha)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _bootstrap(
    jobs: list[tuple[OffPolicyEstimator, Floats]], n: int, n_samples: int, random_state: Seed
) -> list[Floats]:
    """Each estimator's re-estimates on the same ``n_samples`` resamples of the ``n``
    rounds (one draw of the resamples, shared by every estimator): the finite ones."""
    rng = np.random.default_rng(random_state)
    per_chunk = max(1, _CHUNK // n)
    parts: list[list[Floats]] = [[] for _ in jobs]
    for start in range(0, n_samples, per_chunk):
        b = min(per_chunk, n_samples - start)
        idx = rng.integers(0, n, size=(b, n))
        for part, (estimator, terms) in zip(parts, jobs, strict=True):
            with np.errstate(divide="ignore", invalid="ignore"):
                sums = np.stack([term[idx].sum(axis=1) for term in terms])  # (k, b)
                part.append(estimator._combine(sums, n))
    out = []
    for part in parts:
        values = np.concatenate(part)
        out.append(values[np.isfinite(values)])
    return out


def _interval(values: Floats, alpha: float) -> dict[str, float]:
    if values.size == 0:
        raise EvaluationError("no bootstrap resample gave a finite estimate")
    lower, upper = np.quantile(values, [alpha / 2, 1 - alpha / 2])
    return {"mean": float(values.mean()), "lower": float(lower), "upper": float(upper)}


class InverseProbabilityWeighting(OffPolicyEstimator):
    """Inverse probability weighting (IPS, Horvitz-Thompson): ``mean(w_i * reward_i)``.

    Unbiased whenever ``pscore`` is the true logging propensity and the logger gave every
    action the evaluation policy may choose a positive probability; its variance grows with
    the weights and with the size of the rewards (a constant added to every reward adds to
    the variance).

    >>> from octobandit.evaluation import InverseProbabilityWeighting
    >>> ipw = InverseProbabilityWeighting()
    >>> ipw.estimate_policy_value(
    ...     reward=[1, 0, 1, 0],
    ...     action=[0, 1, 0, 2],
    ...     pscore=[0.5, 0.25, 0.4, 0.25],
    ...     action_dist=[[0.8, 0.1, 0.1]] * 4,
    ... )
    0.9
    """

    name = "ipw"

    def _terms(self, data: Logged) -> list[Floats]:
        return [data.weights() * data.reward]


class SelfNormalizedInverseProbabilityWeighting(OffPolicyEstimator):
    """Self-normalised IPS: ``sum(w_i * reward_i) / sum(w_i)``.

    Biased by ``O(1/n)`` but consistent, bounded by the rewards' range, and invariant to a
    constant added to every reward; usually much less variable than IPS when the weights
    are large.

    >>> from octobandit.evaluation import SelfNormalizedInverseProbabilityWeighting
    >>> snipw = SelfNormalizedInverseProbabilityWeighting()
    >>> round(snipw.estimate_policy_value(
    ...     reward=[1, 0, 1, 0],
    ...     action=[0, 1, 0, 2],
    ...     pscore=[0.5, 0.25, 0.4, 0.25],
    ...     action_dist=[[0.8, 0.1, 0.1]] * 4,
    ... ), 6)  # 3.6 / 4.4
    0.818182
    """

    name = "snipw"

    def _terms(self, data: Logged) -> list[Floats]:
        w = data.weights()
        return [w * data.reward, w]

    def _combine(self, sums: Floats, n: int) -> Floats:
        return np.asarray(sums[0] / sums[1], dtype=np.float64)


class DirectMethod(OffPolicyEstimator):
    """The direct method: the reward model's value of the policy,
    ``mean_i sum_a action_dist[i, a, p_i] * q(i, a, p_i)``.

    Needs no propensities and has a small variance, but it is only as right as the reward
    model: a misspecified model biases it whatever ``n``.

    >>> from octobandit.evaluation import DirectMethod
    >>> DirectMethod().estimate_policy_value(
    ...     reward=[1, 0],
    ...     action=[0, 1],
    ...     action_dist=[[0.5, 0.5], [1.0, 0.0]],
    ...     estimated_rewards_by_reg_model=[[0.2, 0.6], [0.4, 0.0]],
    ... )  # (0.4 + 0.4) / 2
    0.4
    """

    name = "dm"
    needs_pscore = False
    uses_pscore = False
    needs_reward_model = True

    def _terms(self, data: Logged) -> list[Floats]:
        return [data.q_policy()]


class DoublyRobust(OffPolicyEstimator):
    """Doubly robust: DM plus an importance-weighted correction of the model's residual,
    ``mean_i [dm_i + w_i * (reward_i - q(i, a_i, p_i))]``.

    Unbiased when the propensities are right (whatever the model), consistent when the model
    is right (whatever the propensities); less variable than IPS when the model explains the
    rewards.

    >>> from octobandit.evaluation import DoublyRobust
    >>> round(DoublyRobust().estimate_policy_value(
    ...     reward=[1, 0],
    ...     action=[0, 1],
    ...     pscore=[0.5, 0.5],
    ...     action_dist=[[0.5, 0.5], [1.0, 0.0]],
    ...     estimated_rewards_by_reg_model=[[0.2, 0.6], [0.4, 0.0]],
    ... ), 6)  # ((0.4 + 1 * 0.8) + (0.4 + 0)) / 2
    0.8
    """

    name = "dr"
    needs_reward_model = True

    def _terms(self, data: Logged) -> list[Floats]:
        w = data.weights()
        return [data.q_policy() + w * (data.reward - data.q_logged())]


class SelfNormalizedDoublyRobust(OffPolicyEstimator):
    """Self-normalised DR: the correction divided by the mean weight,
    ``mean_i dm_i + sum_i w_i (reward_i - q(i, a_i, p_i)) / sum_i w_i``.

    >>> from octobandit.evaluation import SelfNormalizedDoublyRobust
    >>> round(SelfNormalizedDoublyRobust().estimate_policy_value(
    ...     reward=[1, 0],
    ...     action=[0, 1],
    ...     pscore=[0.5, 0.5],
    ...     action_dist=[[0.5, 0.5], [1.0, 0.0]],
    ...     estimated_rewards_by_reg_model=[[0.2, 0.6], [0.4, 0.0]],
    ... ), 6)  # 0.4 + (1 * 0.8 + 0 * 0) / (1 + 0)
    1.2
    """

    name = "sndr"
    needs_reward_model = True

    def _terms(self, data: Logged) -> list[Floats]:
        w = data.weights()
        return [data.q_policy(), w * (data.reward - data.q_logged()), w]

    def _combine(self, sums: Floats, n: int) -> Floats:
        return np.asarray(sums[0] / n + sums[1] / sums[2], dtype=np.float64)


class SwitchDoublyRobust(OffPolicyEstimator):
    """Switch-DR (Wang et al. 2017): DR's correction only where the weight is at most
    ``tau``, the model alone elsewhere, ``mean_i [dm_i + 1{w_i <= tau} w_i (reward_i - q_i)]``.

    ``tau = inf`` (the default, as OBP's) is DR, ``tau = 0`` is DM; in between it trades
    DR's variance from large weights for the model's bias on the rounds it switches.

    >>> from octobandit.evaluation import SwitchDoublyRobust
    >>> round(SwitchDoublyRobust(tau=0.5).estimate_policy_value(
    ...     reward=[1, 0],
    ...     action=[0, 1],
    ...     pscore=[0.5, 0.5],
    ...     action_dist=[[0.5, 0.5], [1.0, 0.0]],
    ...     estimated_rewards_by_reg_model=[[0.2, 0.6], [0.4, 0.0]],
    ... ), 6)  # the weight 1 > 0.5 is switched to the model: (0.4 + 0.4) / 2
    0.4
    """

    name = "switch-dr"
    needs_reward_model = True

    def __init__(self, tau: float = float("inf")) -> None:
        if not tau >= 0:
            raise EvaluationError(f"tau = {tau} must be >= 0")
        self.tau = float(tau)

    def _terms(self, data: Logged) -> list[Floats]:
        w = data.weights()
        kept = np.where(w <= self.tau, w, 0.0)
        return [data.q_policy() + kept * (data.reward - data.q_logged())]

    def __repr__(self) -> str:
        return f"SwitchDoublyRobust(tau={self.tau})"


class Replay(OffPolicyEstimator):
    """The replay method (Li, Chu, Langford and Wang, WSDM 2011): the mean reward over the
    rounds where the evaluation policy's action equals the logged one.

    In each round the evaluation policy's action is drawn from
    ``action_dist[i, :, p_i]`` with a generator seeded by ``random_state``: for a
    deterministic policy (one-hot rows) the draw is its action and the seed plays no part;
    for a stochastic policy this is the rejection-sampling form, where round ``i`` is kept
    with probability ``π_i``.

    Assumptions: the logger chose uniformly at random, independently of the context (every
    action had the same probability in every round). Then the kept rounds are distributed
    exactly as rounds run by the evaluation policy and their mean reward is the on-policy
    value (unbiased given the number kept; about ``n / K`` rounds are kept). Under any other
    logger it is biased: use ``ipw``, ``snipw`` or ``dr``. When ``pscore`` is given it must
    be the same in every round (else :class:`EvaluationError`); without it the assumption is
    taken on trust. The logged rounds are a fixed stream: a policy that learns as it
    replays is not modelled here.

    >>> from octobandit.evaluation import Replay
    >>> Replay().estimate_policy_value(
    ...     reward=[1, 0, 1, 0],
    ...     action=[0, 1, 0, 2],
    ...     pscore=[1 / 3] * 4,
    ...     action_dist=[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0]],
    ... )  # rounds 0, 1 and 3 match: (1 + 0 + 0) / 3
    0.3333333333333333
    """

    name = "replay"
    needs_pscore = False

    def __init__(self, random_state: int | None = 12345) -> None:
        self.random_state = random_state

    def _validate(
        self,
        reward: npt.ArrayLike,
        action: npt.ArrayLike,
        action_dist: npt.ArrayLike,
        pscore: npt.ArrayLike | None,
        position: npt.ArrayLike | None,
        estimated_rewards_by_reg_model: npt.ArrayLike | None,
    ) -> Logged:
        data = super()._validate(
            reward, action, action_dist, pscore, position, estimated_rewards_by_reg_model
        )
        if data.pscore is not None:
            check_not_deterministic(data.pscore, data.n_actions)
            differs = np.abs(data.pscore - data.pscore[0]) > 1e-9 * data.pscore[0]
            if differs.any():
                i = int(np.flatnonzero(differs)[0])
                raise EvaluationError(
                    f"pscore[{i}] = {data.pscore[i]} differs from pscore[0] = "
                    f"{data.pscore[0]}: replay assumes a uniformly random logger; use ipw, "
                    "snipw or dr for this log",
                    array="pscore",
                    index=i,
                )
        return data

    def _terms(self, data: Logged) -> list[Floats]:
        rng = np.random.default_rng(self.random_state)
        rows = np.arange(data.n)
        cum = np.cumsum(data.action_dist[rows, :, data.position], axis=1)
        u = rng.random(data.n) * cum[:, -1]
        chosen = np.minimum((cum <= u[:, np.newaxis]).sum(axis=1), data.n_actions - 1)
        matched = (chosen == data.action).astype(np.float64)
        if not matched.any():
            raise EvaluationError(
                "replay kept no round: the evaluation policy's action never equals the logged one"
            )
        return [matched * data.reward, matched]

    def _combine(self, sums: Floats, n: int) -> Floats:
        return np.asarray(sums[0] / sums[1], dtype=np.float64)

    def __repr__(self) -> str:
        return f"Replay(random_state={self.random_state})"


def _arg(arrays: dict[str, Any], name: str) -> Any:
    if name not in arrays:
        raise TypeError(f"evaluate() needs the array {name!r}")
    return arrays[name]


def evaluate(
    estimators: Iterable[OffPolicyEstimator],
    *,
    n_bootstrap_samples: int = 1000,
    random_state: int | None = 12345,
    **arrays: Any,
) -> dict[str, dict[str, Any]]:
    """Every estimator's value and 95% bootstrap interval on the same arrays:
    ``{name: {"value": float, "ci95": [lower, upper]}}``.

    ``arrays`` are the keyword arrays of :meth:`OffPolicyEstimator.estimate_policy_value`
    (``reward``, ``action``, ``action_dist``, ``pscore``, ``position``,
    ``estimated_rewards_by_reg_model``); an estimator uses those it needs. ``context`` is
    accepted and ignored (the estimators see it only through the reward model), so a whole
    logged dataset can be passed as it is. The intervals are seeded by ``random_state``.

    >>> from octobandit.evaluation import (
    ...     InverseProbabilityWeighting, SelfNormalizedInverseProbabilityWeighting, evaluate)
    >>> out = evaluate(
    ...     [InverseProbabilityWeighting(), SelfNormalizedInverseProbabilityWeighting()],
    ...     reward=[1, 0, 1, 0],
    ...     action=[0, 1, 0, 2],
    ...     pscore=[0.5, 0.25, 0.4, 0.25],
    ...     action_dist=[[0.8, 0.1, 0.1]] * 4,
    ...     n_bootstrap_samples=200,
    ... )
    >>> sorted(out), out["ipw"]["value"]
    (['ipw', 'snipw'], 0.9)
    >>> lower, upper = out["ipw"]["ci95"]
    >>> lower <= 0.9 <= upper
    True
    """
    known = {
        "reward",
        "action",
        "action_dist",
        "pscore",
        "position",
        "estimated_rewards_by_reg_model",
        "context",
    }
    unknown = sorted(set(arrays) - known)
    arrays.pop("context", None)
    if unknown:
        raise TypeError(f"evaluate() got unknown arrays: {', '.join(unknown)}")
    if n_bootstrap_samples < 1:
        raise EvaluationError(f"n_bootstrap_samples = {n_bootstrap_samples} must be >= 1")
    jobs: list[tuple[OffPolicyEstimator, Floats]] = []
    values: dict[str, float] = {}
    n = 0
    for estimator in estimators:
        if estimator.name in values:
            raise EvaluationError(f"two estimators are named {estimator.name!r}")
        data = estimator._validate(
            _arg(arrays, "reward"),
            _arg(arrays, "action"),
            _arg(arrays, "action_dist"),
            arrays.get("pscore"),
            arrays.get("position"),
            arrays.get("estimated_rewards_by_reg_model"),
        )
        terms = np.stack(estimator._terms(data))
        values[estimator.name] = float(
            estimator._combine(terms.sum(axis=1)[:, np.newaxis], data.n)[0]
        )
        jobs.append((estimator, terms))
        n = data.n
    # the same resamples for every estimator, as when each drew its own from random_state
    resampled = _bootstrap(jobs, n, n_bootstrap_samples, random_state) if jobs else []
    out: dict[str, dict[str, Any]] = {}
    for (estimator, _), boot in zip(jobs, resampled, strict=True):
        ci = _interval(boot, 0.05)
        out[estimator.name] = {"value": values[estimator.name], "ci95": [ci["lower"], ci["upper"]]}
    return out
