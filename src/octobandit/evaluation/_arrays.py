"""The array contract of the estimators, checked once, with errors that name the array and
the index at fault.

The contract follows OBP's (Saito et al., the Open Bandit Pipeline): ``n`` logged rounds,
``K`` actions, ``L`` positions (slots of a slate; ``L = 1`` without positions).

- ``reward`` (n,): the observed reward of each round, finite;
- ``action`` (n,): the logged action, integers in ``0..K-1``;
- ``pscore`` (n,): the logging policy's probability of the logged action (at its
  position), in ``(0, 1]``;
- ``position`` (n,), optional: the slot of the logged action, integers in ``0..L-1``;
  all ``0`` when omitted;
- ``action_dist`` (n, K, L), or (n, K) for ``L = 1``: the evaluation policy's
  probabilities; every ``action_dist[i, :, l]`` sums to 1;
- ``estimated_rewards_by_reg_model`` (n, K, L), or (n, K): a reward model's prediction
  for every round, action and position (DM and the doubly robust estimators).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

#: how far from 1 a row of ``action_dist`` may sum
SUM_TOLERANCE = 1e-6

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]


class EvaluationError(ValueError):
    """The logged arrays cannot be evaluated as given; ``array`` names the array at fault and
    ``index`` the first bad round (or ``None`` when it is about the whole array)."""

    def __init__(self, message: str, *, array: str | None = None, index: int | None = None):
        super().__init__(message)
        self.array = array
        self.index = index


@dataclass(frozen=True)
class Logged:
    """Validated arrays: ``action_dist`` and the reward model always (n, K, L)."""

    reward: Floats
    action: Ints
    position: Ints
    action_dist: Floats
    pscore: Floats | None
    q_hat: Floats | None

    @property
    def n(self) -> int:
        return int(self.reward.shape[0])

    @property
    def n_actions(self) -> int:
        return int(self.action_dist.shape[1])

    def pi_logged(self) -> Floats:
        """The evaluation policy's probability of the logged action at its position."""
        return self.action_dist[np.arange(self.n), self.action, self.position]

    def weights(self) -> Floats:
        """The importance weights ``action_dist[i, a_i, p_i] / pscore[i]``."""
        assert self.pscore is not None
        return self.pi_logged() / self.pscore

    def q_logged(self) -> Floats:
        """The reward model's prediction for the logged action at its position."""
        assert self.q_hat is not None
        return self.q_hat[np.arange(self.n), self.action, self.position]

    def q_policy(self) -> Floats:
        """The reward model's value of the evaluation policy in each round (DM's term)."""
        assert self.q_hat is not None
        rows = np.arange(self.n)
        pi = self.action_dist[rows, :, self.position]
        q = self.q_hat[rows, :, self.position]
        return np.asarray((pi * q).sum(axis=1), dtype=np.float64)


def _first(mask: npt.NDArray[np.bool_]) -> int:
    return int(np.flatnonzero(mask.ravel())[0])


def _vector(name: str, value: npt.ArrayLike | None, n: int | None) -> npt.NDArray[np.generic]:
    if value is None:
        raise EvaluationError(f"{name} is missing", array=name)
    arr = np.asarray(value)
    if arr.ndim != 1:
        raise EvaluationError(
            f"{name} must be one-dimensional, of shape (n,); got shape {arr.shape}", array=name
        )
    if n is not None and arr.shape[0] != n:
        raise EvaluationError(
            f"{name} has {arr.shape[0]} rounds but reward has {n} (shape mismatch)", array=name
        )
    return arr


def _floats(name: str, arr: npt.NDArray[np.generic]) -> Floats:
    if arr.dtype.kind not in "iuf":
        raise EvaluationError(f"{name} must be numeric; got dtype {arr.dtype}", array=name)
    out = arr.astype(np.float64)
    bad = ~np.isfinite(out)
    if bad.any():
        i = _first(bad)
        raise EvaluationError(f"{name}[{i}] is {out[i]}, not a finite number", array=name, index=i)
    return out


def _indices(name: str, arr: npt.NDArray[np.generic], size: int, what: str) -> Ints:
    if arr.dtype.kind in "iu":
        ints = arr.astype(np.int64)
    elif arr.dtype.kind == "f":
        values = _floats(name, arr)
        frac = values != np.round(values)
        if frac.any():
            i = _first(frac)
            raise EvaluationError(
                f"{name}[{i}] = {values[i]} is not an integer", array=name, index=i
            )
        ints = values.astype(np.int64)
    else:
        raise EvaluationError(f"{name} must hold integers; got dtype {arr.dtype}", array=name)
    out = (ints < 0) | (ints >= size)
    if out.any():
        i = _first(out)
        raise EvaluationError(
            f"{name}[{i}] = {ints[i]} is out of range: action_dist has {size} {what}, "
            f"so {name} must be in 0..{size - 1}",
            array=name,
            index=i,
        )
    return ints


def _cube(name: str, value: npt.ArrayLike, n: int) -> Floats:
    arr = np.asarray(value)
    if arr.ndim == 2:
        arr = arr[:, :, np.newaxis]
    if arr.ndim != 3:
        raise EvaluationError(
            f"{name} must have shape (n, K, L) or (n, K); got shape {np.asarray(value).shape}",
            array=name,
        )
    if arr.shape[0] != n:
        raise EvaluationError(
            f"{name} has {arr.shape[0]} rounds but reward has {n} (shape mismatch)", array=name
        )
    if arr.dtype.kind not in "iuf":
        raise EvaluationError(f"{name} must be numeric; got dtype {arr.dtype}", array=name)
    out = arr.astype(np.float64)
    bad = ~np.isfinite(out)
    if bad.any():
        i, a, pos = np.argwhere(bad)[0]
        raise EvaluationError(
            f"{name}[{i}, {a}, {pos}] is {out[i, a, pos]}, not a finite number",
            array=name,
            index=int(i),
        )
    return out


def check_pscore(pscore: npt.ArrayLike | None, n: int) -> Floats:
    """The logging propensities: present, finite, in (0, 1]."""
    if pscore is None:
        raise EvaluationError(
            "pscore is missing: importance weighting needs the logging policy's probability "
            "of each logged action",
            array="pscore",
        )
    p = _floats("pscore", _vector("pscore", pscore, n))
    bad = (p <= 0) | (p > 1)
    if bad.any():
        i = _first(bad)
        why = "zero" if p[i] == 0 else ("negative" if p[i] < 0 else "greater than 1")
        raise EvaluationError(
            f"pscore[{i}] = {p[i]} is {why}: a propensity must be in (0, 1] "
            "(a logged action had a positive probability of being chosen)",
            array="pscore",
            index=i,
        )
    return p


def check_not_deterministic(pscore: Floats, n_actions: int) -> None:
    """A logger that chose its action with probability 1 in every round never tried the
    others: importance weighting has nothing to reweight."""
    if n_actions > 1 and bool(np.all(pscore == 1.0)):
        raise EvaluationError(
            f"pscore is 1 in every round: the logging policy was deterministic, so importance "
            f"weighting cannot evaluate other actions than the logged ones ({n_actions} "
            "actions); use a logger that explores, or DM with a reward model",
            array="pscore",
        )


def validate(
    *,
    reward: npt.ArrayLike,
    action: npt.ArrayLike,
    action_dist: npt.ArrayLike,
    pscore: npt.ArrayLike | None = None,
    position: npt.ArrayLike | None = None,
    estimated_rewards_by_reg_model: npt.ArrayLike | None = None,
    need_pscore: bool = False,
    need_q_hat: bool = False,
) -> Logged:
    """Check the arrays against the contract; raise :class:`EvaluationError` at the first
    violation (array and index in the message)."""
    r = _floats("reward", _vector("reward", reward, None))
    n = int(r.shape[0])
    if n == 0:
        raise EvaluationError("reward is empty: there are no logged rounds", array="reward")
    if action_dist is None:
        raise EvaluationError("action_dist is missing", array="action_dist")
    pi = _cube("action_dist", action_dist, n)
    _, n_actions, n_positions = pi.shape
    negative = pi < 0
    if negative.any():
        i, a, pos = np.argwhere(negative)[0]
        raise EvaluationError(
            f"action_dist[{i}, {a}, {pos}] = {pi[i, a, pos]} is negative",
            array="action_dist",
            index=int(i),
        )
    sums = pi.sum(axis=1)  # (n, L)
    off = np.abs(sums - 1.0) > SUM_TOLERANCE
    if off.any():
        i, pos = np.argwhere(off)[0]
        raise EvaluationError(
            f"action_dist[{i}, :, {pos}] sums to {float(sums[i, pos])!r}, not 1 (tolerance "
            f"{SUM_TOLERANCE}): each round's action distribution must be a probability vector",
            array="action_dist",
            index=int(i),
        )
    a_ = _indices("action", _vector("action", action, n), n_actions, "actions")
    if position is None:
        p_ = np.zeros(n, dtype=np.int64)
    else:
        p_ = _indices("position", _vector("position", position, n), n_positions, "positions")
    ps: Floats | None = None
    if pscore is not None or need_pscore:
        ps = check_pscore(pscore, n)
    q: Floats | None = None
    if estimated_rewards_by_reg_model is not None or need_q_hat:
        if estimated_rewards_by_reg_model is None:
            raise EvaluationError(
                "estimated_rewards_by_reg_model is missing: DM and the doubly robust "
                "estimators need a reward model's predictions of shape (n, K, L) "
                "(see RegressionModel)",
                array="estimated_rewards_by_reg_model",
            )
        q = _cube("estimated_rewards_by_reg_model", estimated_rewards_by_reg_model, n)
        if q.shape != pi.shape:
            raise EvaluationError(
                f"estimated_rewards_by_reg_model has shape {q.shape} but action_dist has "
                f"shape {pi.shape} (shape mismatch)",
                array="estimated_rewards_by_reg_model",
            )
    return Logged(reward=r, action=a_, position=p_, action_dist=pi, pscore=ps, q_hat=q)
