"""Warm starts: arm priors as pseudo-observations, and admin-set statistics.

A prior is stored as pseudo-observations ``{"rewards", "reward_sum",
"reward_sq_sum"}`` that every policy adds to the arm's observed statistics
(they are not part of the observed statistics, so a reset keeps them). For a
binary experiment a prior may also be given as ``{"alpha", "beta"}``: the arm's
Beta posterior then starts at Beta(alpha, beta) under Thompson sampling.

>>> policy = {"type": "thompson", "alpha": 1.0, "beta": 1.0}
>>> prior_pseudo_counts({"alpha": 3, "beta": 9}, "binary", policy)
{'rewards': 10.0, 'reward_sum': 2.0, 'reward_sq_sum': 2.0}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from octobandit.engine.bounds import MAX_ABS_REWARD, MAX_TOTAL, MIN_COUNT
from octobandit.errors import InvalidInput
from octobandit.policies.base import ArmStats, check_number


def _number(value: Any, field: str, *, low: float | None = None) -> float:
    return check_number(value, field, low=low)


def _count(value: Any, field: str, *, whole: bool = False) -> float:
    """A count: 0, or from :data:`MIN_COUNT` to :data:`MAX_TOTAL` (a whole number if asked)."""
    x = _number(value, field, low=0)
    if x > MAX_TOTAL:
        raise InvalidInput(f"must be at most {MAX_TOTAL:.0e}", field=field)
    if whole and x != int(x):
        raise InvalidInput("must be a whole number", field=field)
    if 0 < x < MIN_COUNT:
        raise InvalidInput(f"must be 0 or at least {MIN_COUNT:g}", field=field)
    return x


def check_stats(
    values: Mapping[str, Any], reward_type: str, where: str, *, keys: tuple[str, ...]
) -> dict[str, float]:
    """Validate sufficient statistics (counts >= 0, binary sums in [0, count], variance >= 0).

    Counts are 0 or in [:data:`MIN_COUNT`, :data:`MAX_TOTAL`] (``decisions`` a whole number),
    and the sums are those of rewards of at most :data:`MAX_ABS_REWARD` in magnitude
    (``|reward_sum| <= rewards · R``, ``reward_sq_sum <= rewards · R²``), see
    :mod:`octobandit.engine.bounds`.
    """
    unknown = set(values) - set(keys)
    if unknown:
        raise InvalidInput(f"unknown fields {sorted(unknown)}; known: {list(keys)}", field=where)
    out: dict[str, float] = {}
    for k in keys:
        if k in ("decisions", "rewards"):
            out[k] = _count(values.get(k, 0), f"{where}.{k}", whole=k == "decisions")
    n = out["rewards"]
    s = out["reward_sum"] = _number(values.get("reward_sum", 0), f"{where}.reward_sum")
    if abs(s) > n * MAX_ABS_REWARD:
        raise InvalidInput(
            f"|reward_sum| must be at most rewards × {MAX_ABS_REWARD:.0e}",
            field=f"{where}.reward_sum",
        )
    if reward_type == "binary":
        if not 0 <= s <= n:
            raise InvalidInput(
                "a binary reward sum lies in [0, rewards]", field=f"{where}.reward_sum"
            )
        ss = _number(values.get("reward_sq_sum", s), f"{where}.reward_sq_sum", low=0)
    else:
        default = s * s / n if n > 0 else 0.0
        ss = _number(values.get("reward_sq_sum", default), f"{where}.reward_sq_sum", low=0)
    if ss > n * MAX_ABS_REWARD**2 * (1 + 1e-12):  # rounding of the default s² / n
        raise InvalidInput(
            f"reward_sq_sum must be at most rewards × {MAX_ABS_REWARD**2:.0e}",
            field=f"{where}.reward_sq_sum",
        )
    if n > 0 and ss * n < s * s * (1 - 1e-12):
        raise InvalidInput(
            "reward_sq_sum must be at least reward_sum² / rewards", field=f"{where}.reward_sq_sum"
        )
    if n == 0 and (s != 0 or ss != 0):
        raise InvalidInput("sums need rewards > 0", field=f"{where}.rewards")
    out["reward_sq_sum"] = ss
    return out


def centred(rewards: float, reward_sum: float, reward_sq_sum: float) -> tuple[float, float]:
    """``(shift, Σ(x - shift)²)`` for statistics given as plain sums, shifted to their mean.

    The one subtraction ``Σx² - (Σx)² / n`` happens once, on input; from then on the arm's
    squares are kept about the shift (see :class:`~octobandit.policies.base.ArmStats`).
    """
    if rewards <= 0:
        return 0.0, 0.0
    shift = reward_sum / rewards
    return shift, max(reward_sq_sum - reward_sum * shift, 0.0)


def prior_stats(priors: Sequence[Mapping[str, float] | None]) -> ArmStats:
    """The arms' prior pseudo-observations as :class:`ArmStats`, each centred on its mean."""
    n, s, c, ss = [], [], [], []
    for prior in priors:
        p = prior or {}
        rewards, total = float(p.get("rewards", 0.0)), float(p.get("reward_sum", 0.0))
        shift, m2 = centred(rewards, total, float(p.get("reward_sq_sum", 0.0)))
        n.append(rewards)
        s.append(total)
        c.append(shift)
        ss.append(m2)
    return ArmStats.of(n, s, ss, c)


def prior_pseudo_counts(
    spec: Any, reward_type: str, policy: Mapping[str, Any], where: str = "prior"
) -> dict[str, float]:
    """Normalise an arm prior to pseudo-observations (see the module docstring)."""
    if not isinstance(spec, Mapping):
        raise InvalidInput("must be an object", field=where)
    if "alpha" in spec or "beta" in spec:
        if reward_type != "binary":
            raise InvalidInput("alpha/beta priors are for binary rewards", field=where)
        if set(spec) - {"alpha", "beta"}:
            raise InvalidInput("give alpha and beta, or pseudo-observations", field=where)
        base_a = float(policy.get("alpha", 1.0))
        base_b = float(policy.get("beta", 1.0))
        a = _number(spec.get("alpha", base_a), f"{where}.alpha", low=base_a)
        b = _number(spec.get("beta", base_b), f"{where}.beta", low=base_b)
        successes, failures = a - base_a, b - base_b
        _count(successes + failures, f"{where}.alpha")
        return {
            "rewards": successes + failures,
            "reward_sum": successes,
            "reward_sq_sum": successes,
        }
    return check_stats(spec, reward_type, where, keys=("rewards", "reward_sum", "reward_sq_sum"))
