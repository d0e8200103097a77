"""A lean in-process bandit: ``pull()`` an arm, ``update(arm, reward)``, nothing else.

:class:`Bandit` is for a program that makes its decisions itself, one at a time,
in the same process (no service, no event log, no propensities). It keeps the
sufficient statistics of one problem in ``(1, K)`` arrays, as the batch path of
a policy expects them, updates them in place, and chooses with the policy's
own rule. For the three most common policies a fast path draws from exactly the
same distribution with few NumPy calls per step (each costs about a
microsecond on small arrays, more than the arithmetic it does):

* Thompson sampling (binary rewards): posterior draws are made in blocks.
  Row ``j`` of a ``(B, K)`` block holds the draws of pull ``j``, each from the
  arm's posterior ``Beta(alpha + s, beta + n - s)``. When an arm is updated, its
  draws for the pulls still to come are replaced by draws from its new
  posterior, so every draw a pull uses is an independent draw from the current
  posterior: this is posterior sampling, not an approximation of it.
* UCB1: arms never observed come first (uniformly); then the index
  ``mean + c·sqrt(ln N / n)`` of every arm, computed as the policy does; ties
  are broken uniformly. Plain Python for up to 32 arms, NumPy beyond.
* Epsilon-greedy without decay: one uniform draw per pull decides between a
  uniform arm (probability ε) and a uniformly chosen arm among those with the
  best mean, a set kept up to date as rewards arrive.

Any other additive, non-contextual policy draws with its own batch path on the
``(1, K)`` statistics (the code the simulator runs; slower).

A :class:`Bandit` is not thread-safe: use one per thread, or a lock.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping
from typing import Any

import numpy as np

from octobandit.policies.base import ArmStats, Policy
from octobandit.policies.epsilon_greedy import EpsilonGreedy
from octobandit.policies.thompson import ThompsonSampling
from octobandit.policies.ucb import UCB1

__all__ = ["Bandit"]

#: Uniform draws fetched from the generator at a time (epsilon-greedy, ties).
_UNIFORM_BLOCK = 1024
#: Up to this many arms the UCB1 indices are computed in plain Python.
_UCB_PYTHON_ARMS = 32


class Bandit:
    """One bandit problem in process: ``pull()`` returns an arm index, ``update`` adds a reward.

    ``policy`` is a policy object or its JSON spec (see
    :func:`~octobandit.policies.make_policy`; a spec builds a binary-reward
    policy), ``arms`` the number of arms ``K``, ``seed`` fixes the random draws.
    Rewards of binary-reward policies lie in ``[0, 1]``. Pulls and updates need
    not alternate: several pulls may be made before their rewards arrive, and a
    reward may be added for any arm at any time. :attr:`stats` gives the
    statistics so far (arrays of shape ``(1, K)``); :attr:`fast_path` names the
    path used (``"thompson"``, ``"ucb1"``, ``"epsilon_greedy"`` or ``"generic"``).
    ``block`` is the number of pulls whose Thompson draws are made at once.

    >>> from octobandit.policies import Bandit, ThompsonSampling
    >>> bandit = Bandit(ThompsonSampling(), arms=3, seed=7)
    >>> for _ in range(100):
    ...     arm = bandit.pull()
    ...     bandit.update(arm, 1.0 if arm == 2 else 0.0)
    >>> bandit.stats.n.shape, int(bandit.stats.n.sum())
    ((1, 3), 100)
    >>> int(bandit.stats.n.argmax()), bandit.fast_path
    (2, 'thompson')
    """

    __slots__ = (
        "_a0",
        "_b0",
        "_buf",
        "_c",
        "_eps",
        "_j",
        "_ml",
        "_n",
        "_n1",
        "_nl",
        "_pull",
        "_rng",
        "_s",
        "_s1",
        "_sl",
        "_ss",
        "_ss1",
        "_ssl",
        "_ties",
        "_top",
        "_total",
        "_u",
        "_ui",
        "_unseen",
        "_update",
        "binary",
        "block",
        "fast_path",
        "k",
        "policy",
    )

    def __init__(
        self,
        policy: Policy | Mapping[str, Any],
        arms: int,
        seed: int | None = None,
        *,
        block: int = 32,
    ) -> None:
        if isinstance(policy, Mapping):
            from octobandit.policies import make_policy

            policy = make_policy(policy)
        if not isinstance(policy, Policy):
            raise TypeError("policy must be a Policy or a policy spec")
        if policy.stateful or policy.contextual:
            raise ValueError(f"Bandit needs an additive, non-contextual policy, not {policy.type}")
        if isinstance(arms, bool) or not isinstance(arms, int | np.integer) or arms < 1:
            raise ValueError("arms must be a positive integer")
        if isinstance(block, bool) or not isinstance(block, int) or block < 1:
            raise ValueError("block must be a positive integer")
        k = int(arms)
        self.policy = policy
        self.k = k
        self.block = block
        self.binary = policy.reward == "binary"
        self._rng = np.random.default_rng(seed)
        # The statistics, in the (1, K) arrays of the policies' batch path, and
        # mirrored in lists (reading a float from a list is cheaper than from NumPy).
        self._n, self._s, self._ss = np.zeros((1, k)), np.zeros((1, k)), np.zeros((1, k))
        self._n1, self._s1, self._ss1 = self._n[0], self._s[0], self._ss[0]
        self._nl, self._sl, self._ssl = [0.0] * k, [0.0] * k, [0.0] * k
        self._total = 0.0
        self._u: list[float] = []
        self._ui = 0
        self._buf = np.empty(0)
        self._j = 0
        self._a0 = self._b0 = self._c = self._eps = self._top = 0.0
        self._ml: list[float] = []
        self._ties: list[int] = []
        self._unseen = k

        if type(policy) is ThompsonSampling and self.binary:
            self.fast_path = "thompson"
            self._a0, self._b0 = policy.alpha, policy.beta
            self._j = block  # the first pull draws a block
            self._pull, self._update = self._pull_thompson, self._update_thompson
        elif type(policy) is UCB1:
            self.fast_path = "ucb1"
            self._c = policy.c
            self._ml = [0.0] * k
            self._buf = np.empty(k)
            if k <= _UCB_PYTHON_ARMS:
                self._pull = self._pull_ucb_python
            else:
                self._pull = self._pull_ucb_numpy
            self._update = self._update_ucb
        elif type(policy) is EpsilonGreedy and policy.decay == "none":
            self.fast_path = "epsilon_greedy"
            self._eps = policy.epsilon
            self._ml = [policy.initial_value] * k
            self._ties = list(range(k))
            self._top = policy.initial_value
            self._pull, self._update = self._pull_epsilon, self._update_epsilon
        else:
            self.fast_path = "generic"
            self._pull, self._update = self._pull_generic, self._update_none

    # -- public ------------------------------------------------------------------
    @property
    def stats(self) -> ArmStats:
        """The statistics so far, shape ``(1, K)`` (live arrays: read, do not modify)."""
        return ArmStats(self._n, self._s, self._ss)

    def pull(self) -> int:
        """Choose an arm: its index in ``range(K)``."""
        arm: int = self._pull()
        return arm

    def update(self, arm: int, reward: float) -> None:
        """Add one observed ``reward`` for ``arm`` (an index in ``range(K)``)."""
        if type(arm) is not int:
            try:
                arm = operator.index(arm)
            except TypeError:
                raise ValueError(f"arm must be an integer index, not {arm!r}") from None
        if not 0 <= arm < self.k:
            raise ValueError(f"arm {arm} is out of range: the bandit has {self.k} arms")
        r = float(reward)
        if self.binary:
            if not 0.0 <= r <= 1.0:
                raise ValueError(f"reward must lie in [0, 1] for binary rewards, not {reward!r}")
        elif not math.isfinite(r):
            raise ValueError(f"reward must be finite, not {reward!r}")
        n = self._nl[arm] + 1.0
        s = self._sl[arm] + r
        ss = self._ssl[arm] + r * r
        self._nl[arm] = self._n1[arm] = n
        self._sl[arm] = self._s1[arm] = s
        self._ssl[arm] = self._ss1[arm] = ss
        self._total += 1.0
        self._update(arm, n, s)

    # -- shared ------------------------------------------------------------------
    def _uniform(self) -> float:
        i = self._ui
        if i >= len(self._u):
            self._u = self._rng.random(_UNIFORM_BLOCK).tolist()
            i = 0
        self._ui = i + 1
        return self._u[i]

    def _update_none(self, arm: int, n: float, s: float) -> None:
        return None

    def _pull_generic(self) -> int:
        mask = np.ones((1, self.k), dtype=bool)
        return int(self.policy._draw(self.stats, mask, self._rng)[0])

    # -- Thompson sampling (Beta–Bernoulli) --------------------------------------
    def _pull_thompson(self) -> int:
        j = self._j
        if j >= self.block:  # a new block: Beta(alpha + s, beta + n - s) for every arm and row
            a = self._a0 + self._s
            b = self._b0 + np.maximum(self._n - self._s, 0.0)
            self._buf = self._rng.beta(a, b, size=(self.block, self.k))
            j = 0
        self._j = j + 1
        return int(self._buf[j].argmax())

    def _update_thompson(self, arm: int, n: float, s: float) -> None:
        j = self._j
        rows = self.block - j
        if rows > 0:  # redraw this arm for the pulls still to come, from its new posterior
            self._buf[j:, arm] = self._rng.beta(self._a0 + s, self._b0 + max(n - s, 0.0), rows)

    # -- UCB1 ---------------------------------------------------------------------
    def _pull_unseen(self) -> int:
        """An arm never observed (infinite index), uniformly."""
        unseen = [i for i, n in enumerate(self._nl) if n == 0.0]
        return unseen[min(int(self._uniform() * len(unseen)), len(unseen) - 1)]

    def _pull_ucb_python(self) -> int:
        if self._unseen:
            return self._pull_unseen()
        log_total, c, sqrt = math.log(self._total), self._c, math.sqrt
        idx = [m + c * sqrt(log_total / n) for m, n in zip(self._ml, self._nl, strict=True)]
        top = max(idx)
        ties = idx.count(top)
        if ties == 1:
            return idx.index(top)
        best = [i for i, v in enumerate(idx) if v == top]
        return best[min(int(self._uniform() * ties), ties - 1)]

    def _pull_ucb_numpy(self) -> int:
        if self._unseen:
            return self._pull_unseen()
        buf = self._buf
        np.divide(math.log(self._total), self._n1, out=buf)
        np.sqrt(buf, out=buf)
        np.multiply(buf, self._c, out=buf)
        np.add(self._s1 / self._n1, buf, out=buf)
        best = np.flatnonzero(buf == buf.max())
        return int(best[min(int(self._uniform() * best.size), best.size - 1)])

    def _update_ucb(self, arm: int, n: float, s: float) -> None:
        if n == 1.0:
            self._unseen -= 1
        self._ml[arm] = s / n

    # -- epsilon-greedy -------------------------------------------------------------
    def _pull_epsilon(self) -> int:
        i = self._ui
        if i >= len(self._u):
            self._u = self._rng.random(_UNIFORM_BLOCK).tolist()
            i = 0
        self._ui = i + 1
        u = self._u[i]
        eps = self._eps
        if u < eps:  # explore: given u < eps, u / eps is uniform on [0, 1)
            return min(int(u / eps * self.k), self.k - 1)
        ties = self._ties
        m = len(ties)
        if m == 1:
            return ties[0]
        v = (u - eps) / (1.0 - eps)  # given u >= eps, uniform on [0, 1): breaks the tie
        return ties[min(int(v * m), m - 1)]

    def _update_epsilon(self, arm: int, n: float, s: float) -> None:
        mean = s / n
        self._ml[arm] = mean
        ties = self._ties
        if mean > self._top:
            self._top = mean
            self._ties = [arm]
        elif mean == self._top:
            if arm not in ties:
                ties.append(arm)
        elif arm in ties:
            ties.remove(arm)
            if not ties:
                self._top = max(self._ml)
                self._ties = [i for i, v in enumerate(self._ml) if v == self._top]
