"""Bounds on rewards, counts and per-arm totals that keep every statistic finite and exact.

Derivation (float64: largest finite value ~1.8e308, integers exact up to 2^53 ~ 9.0e15):

* A per-arm total (observed rewards, decisions, prior pseudo-counts) is at most
  :data:`MAX_TOTAL` = 10^15 < 2^53, and a reward item's ``count`` is a whole number from 1
  to :data:`MAX_COUNT` = 10^6: every sum of whole counts below 2^53 is exact, so totals
  stay exact integers (no count is ever silently rounded).
* A reward lies in [-:data:`MAX_ABS_REWARD`, +:data:`MAX_ABS_REWARD`] = ±10^12. Then per arm
  ``|Σ r| <= 10^15 · 10^12 = 10^27`` and every shifted square ``(r - c)² <= (2·10^12)²``,
  so ``Σ (r - c)² <= 4·10^39``; the posterior's ``b`` and scale, the intervals and the
  expected losses are built from these and stay below ~10^40.
* The importance-weighted sums add ``r / p`` and ``r² / p²`` for a decision served with
  propensity ``p``: with the bounds above they stay finite for every ``p > ~10^-134``
  (``4·10^39 / p² < 1.8e308``). A decision with a smaller propensity is served with that
  probability, i.e. never in practice.
* The bound is far above any business quantity (10^12 cents is 10 billion dollars) and
  leaves 15 significant digits for the mean of 10^15 rewards.

A non-zero count given as a statistic (an admin ``PUT .../stats`` or an arm ``prior``) must
be at least :data:`MIN_COUNT` (10^-6): a subnormal count would make a mean ``s / n`` overflow
or divide by zero.
"""

from __future__ import annotations

from octobandit.errors import Conflict

#: Largest accepted ``|reward|`` (every reward type; binary rewards lie in [0, 1] anyway).
MAX_ABS_REWARD = 1e12
#: Largest ``count`` of one reward item (whole numbers from 1).
MAX_COUNT = 1_000_000
#: Largest per-arm total of rewards or decisions (exact in float64: < 2^53).
MAX_TOTAL = 10**15
#: Smallest non-zero count in a statistic (admin statistics, priors).
MIN_COUNT = 1e-6


def total_exceeded(arm_id: str, what: str) -> Conflict:
    """The :class:`Conflict` for a write that would take an arm's total beyond :data:`MAX_TOTAL`."""
    return Conflict(
        f"arm {arm_id!r} would exceed {MAX_TOTAL:.0e} {what}, the largest total kept exact;"
        " reset the experiment or start a new one",
        code="total_exceeded",
    )
