"""Schedules in ``t``, the number of observed rewards: decaying ε, annealed temperatures.

Every schedule is ``value(t) = max(floor, start · g(rate · t))`` with ``g(0) = 1``:

====================  =======================
``kind``              ``g(x)``
====================  =======================
``"none"``            ``1`` (``rate`` and ``floor`` unused)
``"exponential"``     ``exp(-x)``
``"inverse"``         ``1 / (1 + x)``
``"linear"``          ``1 - x``
``"log"``             ``1 / ln(e + x)``
====================  =======================

``t`` is a function of the statistics (:func:`observed_total`), so a policy
with a schedule is still a pure function of :class:`~octobandit.policies.base.ArmStats`.

>>> schedule("inverse", 0.5, 0.1, 0.0, [0, 10, 30]).tolist()
[0.5, 0.25, 0.125]
>>> schedule("linear", 0.5, 0.1, 0.05, [0, 5, 100]).tolist()
[0.5, 0.25, 0.05]
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from octobandit.errors import InvalidInput
from octobandit.policies.base import ArmStats, FloatArray

SCHEDULES = ("none", "exponential", "inverse", "linear", "log")


def observed_total(stats: ArmStats, mask: Any) -> FloatArray:
    """``t``: observed rewards summed over the enabled arms, shape ``(..., 1)``."""
    return np.asarray(np.where(mask, stats.n, 0.0).sum(axis=-1, keepdims=True), dtype=np.float64)


def schedule(kind: str, start: float, rate: float, floor: float, t: ArrayLike) -> FloatArray:
    """``max(floor, start · g(rate · t))`` for the schedule ``kind`` (any shape of ``t``)."""
    t_ = np.asarray(t, dtype=np.float64)
    if kind == "none":
        return np.full(t_.shape, float(start))
    x = rate * t_
    if kind == "exponential":
        g = np.exp(-x)
    elif kind == "inverse":
        g = 1.0 / (1.0 + x)
    elif kind == "linear":
        g = 1.0 - x
    elif kind == "log":
        g = 1.0 / np.log(np.e + x)
    else:
        raise ValueError(f"unknown schedule {kind!r}; known: {list(SCHEDULES)}")
    return np.asarray(np.maximum(start * g, floor), dtype=np.float64)


def check_choice(value: Any, field: str, options: tuple[str, ...]) -> str:
    """Validate one of a fixed set of strings, raising :class:`InvalidInput` naming ``field``."""
    if not isinstance(value, str) or value not in options:
        raise InvalidInput(f"must be one of {list(options)}", field=field)
    return value
