"""Run a policy against an environment, many replications at once, and summarise the regret.

:func:`simulate` keeps one :class:`~octobandit.policies.base.ArmStats` of shape
``(R, K)`` for ``R`` independent replications and, at every step, makes one
call to the policy's own :meth:`~octobandit.policies.base.Policy.choose` — the
code the service runs, not a copy — then draws the chosen arms' rewards and
adds them to the statistics, all vectorised over replications.

>>> from octobandit.policies import ThompsonSampling
>>> from octobandit.simulation.environments import Bernoulli
>>> res = simulate(ThompsonSampling(), Bernoulli([0.5, 0.4]), horizon=200, replications=50, seed=1)
>>> int(res.steps[-1]), res.regret.shape
(200, (200, 50))
>>> bool(0 < res.regret_mean[-1] < 200 * 0.1)
True

Delayed feedback (see :func:`simulate`): conversions reported ``Exponential(50)`` steps
late, counted within an attribution window of 100 steps, failures by default.

>>> from octobandit.simulation.delays import Exponential
>>> env = Bernoulli([0.5, 0.4], delay=Exponential(50))
>>> res = simulate(ThompsonSampling(), env, 1000, 20, seed=1, feedback="window", window=100)
>>> res.feedback
{'mode': 'window', 'window': 100, 'default': 0.0}
>>> bool((res.stats.n + res.pending == res.pulls).all())  # each decision counted at most once
True
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from octobandit.policies import make_policy
from octobandit.policies.base import (
    ArmStats,
    FloatArray,
    IntArray,
    Policy,
    sample_categorical,
)
from octobandit.simulation.delays import Delay
from octobandit.simulation.environments import Environment

#: Two-sided normal quantile of the 95% bands.
Z95 = 1.959963984540054

#: The feedback modes of :func:`simulate`.
FEEDBACK = ("immediate", "window", "window_eager", "failure_until_reward", "positives_only")

#: The feedback modes that take ``window`` and ``default``.
WINDOWED = ("window", "window_eager")

Progress = Callable[[int, int], None]


def print_progress(label: str, every: float = 5.0) -> Progress:
    """A ``progress`` callback that prints ``label: done/total steps`` to stderr every few seconds.

    >>> report = print_progress("demo", every=0.0)
    >>> report(10, 10)  # prints to stderr
    """
    started = time.perf_counter()
    last = [0.0]

    def report(done: int, total: int) -> None:
        now = time.perf_counter()
        if now - last[0] >= every or done == total:
            last[0] = now
            print(
                f"  {label}: {done}/{total} steps, {now - started:.0f} s",
                file=sys.stderr,
                flush=True,
            )

    return report


@dataclass(frozen=True, eq=False)
class SimulationResult:
    """Per-replication records of one simulation, and their summaries.

    ``steps[j]`` is the number of steps done at record ``j`` (a multiple of
    ``record_every``, and the horizon last). ``regret[j, r]`` is replication
    ``r``'s cumulative pseudo-regret after ``steps[j]`` steps;
    ``best_arm[j, r]`` its share of optimal choices among the steps since the
    previous record. ``stats`` holds each replication's final statistics (shape
    ``(R, K)``); ``pulls`` is how often each replication chose each arm (its ``n``
    with immediate feedback).

    With delayed feedback (``feedback`` is then the mode and its settings, None
    for immediate feedback), ``stats`` holds what was *counted* by the horizon,
    ``chosen`` the choices, ``pending`` the decisions whose attribution window was
    still open at the horizon (not counted yet; window modes, else zeros) and
    ``late`` the conversions that arrived by the horizon after their window had
    closed (dropped; window modes, else zeros), all ``(R, K)``.

    The 95% bands are confidence intervals of the mean over replications,
    ``mean ± 1.96 · sd / sqrt(R)``; ``regret_quantiles`` gives the spread of
    single runs instead.
    """

    policy: dict[str, Any]
    environment: dict[str, Any]
    horizon: int
    replications: int
    seed: int | None
    record_every: int
    steps: IntArray
    regret: FloatArray
    best_arm: FloatArray
    stats: ArmStats
    elapsed_s: float
    label: str = field(default="")
    feedback: dict[str, Any] | None = None
    chosen: FloatArray | None = None
    pending: FloatArray | None = None
    late: FloatArray | None = None

    # -- summaries -------------------------------------------------------------
    @property
    def pulls(self) -> FloatArray:
        return self.stats.n if self.chosen is None else self.chosen

    @property
    def estimates(self) -> FloatArray:
        """Each replication's mean estimate per arm at the horizon, ``s / n`` (``(R, K)``,
        NaN where nothing was counted)."""
        return np.asarray(self.stats.means(np.nan), dtype=np.float64)

    @staticmethod
    def _se(x: FloatArray) -> FloatArray:
        r = x.shape[-1]
        if r < 2:
            return np.full(x.shape[:-1], np.nan)
        return np.asarray(x.std(axis=-1, ddof=1) / math.sqrt(r), dtype=np.float64)

    @property
    def regret_mean(self) -> FloatArray:
        return np.asarray(self.regret.mean(axis=-1), dtype=np.float64)

    @property
    def regret_se(self) -> FloatArray:
        """Standard error of the mean cumulative regret at each record."""
        return self._se(self.regret)

    @property
    def regret_band(self) -> tuple[FloatArray, FloatArray]:
        """95% confidence band of the mean cumulative regret."""
        m, se = self.regret_mean, self.regret_se
        return m - Z95 * se, m + Z95 * se

    def regret_quantiles(
        self, low: float = 0.025, high: float = 0.975
    ) -> tuple[FloatArray, FloatArray]:
        """Quantiles of single replications' cumulative regret (the spread of runs)."""
        q = np.quantile(self.regret, [low, high], axis=-1)
        return np.asarray(q[0], dtype=np.float64), np.asarray(q[1], dtype=np.float64)

    @property
    def best_arm_share(self) -> FloatArray:
        """Mean share of optimal choices over the steps since the previous record."""
        return np.asarray(self.best_arm.mean(axis=-1), dtype=np.float64)

    @property
    def best_arm_band(self) -> tuple[FloatArray, FloatArray]:
        m, se = self.best_arm_share, self._se(self.best_arm)
        return np.clip(m - Z95 * se, 0.0, 1.0), np.clip(m + Z95 * se, 0.0, 1.0)

    @property
    def final_regret(self) -> dict[str, float]:
        """Mean, standard error and 95% band of the cumulative regret at the horizon."""
        lo, hi = self.regret_band
        return {
            "mean": float(self.regret_mean[-1]),
            "se": float(self.regret_se[-1]),
            "lo": float(lo[-1]),
            "hi": float(hi[-1]),
        }

    def slope(self, start: int, end: int | None = None) -> tuple[float, float]:
        """Mean regret per step between two recorded steps, and its standard error
        (computed per replication, so correlations over time are accounted for)."""
        end = int(self.steps[-1]) if end is None else end
        i = int(np.searchsorted(self.steps, start))
        j = int(np.searchsorted(self.steps, end))
        if i >= len(self.steps) or j >= len(self.steps):
            raise ValueError("start and end must be recorded steps")
        if self.steps[i] != start or self.steps[j] != end or end <= start:
            raise ValueError("start and end must be recorded steps, start < end")
        per_run = (self.regret[j] - self.regret[i]) / (end - start)
        return float(per_run.mean()), float(self._se(per_run))

    # -- output ----------------------------------------------------------------
    def series(self) -> dict[str, list[float]]:
        """The summaries as columns (what :meth:`to_csv` writes)."""
        lo, hi = self.regret_band
        q_lo, q_hi = self.regret_quantiles()
        b_lo, b_hi = self.best_arm_band
        cols: dict[str, Any] = {
            "step": self.steps,
            "regret_mean": self.regret_mean,
            "regret_se": self.regret_se,
            "regret_lo": lo,
            "regret_hi": hi,
            "regret_q025": q_lo,
            "regret_q975": q_hi,
            "best_arm_share": self.best_arm_share,
            "best_arm_share_lo": b_lo,
            "best_arm_share_hi": b_hi,
        }
        return {k: np.asarray(v).tolist() for k, v in cols.items()}

    def to_csv(self, path: str | Path | None = None) -> str:
        """The summaries as CSV (one row per record); also written to ``path`` if given."""
        cols = self.series()
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(cols)
        writer.writerows(zip(*cols.values(), strict=True))
        text = buf.getvalue()
        if path is not None:
            Path(path).write_text(text)
        return text

    def to_dict(self) -> dict[str, Any]:
        pulls = self.pulls.mean(axis=0)
        return {
            "label": self.label,
            "policy": self.policy,
            "environment": self.environment,
            "horizon": self.horizon,
            "replications": self.replications,
            "seed": self.seed,
            "record_every": self.record_every,
            "elapsed_s": round(self.elapsed_s, 3),
            "final_regret": self.final_regret,
            "mean_pulls": pulls.tolist(),
            "series": self.series(),
        } | self._feedback_dict()

    def _feedback_dict(self) -> dict[str, Any]:
        if self.feedback is None:
            return {}
        zeros = np.zeros_like(self.stats.n)
        pending = zeros if self.pending is None else self.pending
        late = zeros if self.late is None else self.late
        return {
            "feedback": self.feedback,
            "mean_counted": self.stats.n.mean(axis=0).tolist(),
            "mean_pending": pending.mean(axis=0).tolist(),
            "mean_late": late.mean(axis=0).tolist(),
        }

    def to_json(self, path: str | Path | None = None) -> str:
        """Parameters, final regret and the summary series as JSON (NaN written as null)."""
        text = json.dumps(_finite(self.to_dict()), indent=1)
        if path is not None:
            Path(path).write_text(text + "\n")
        return text

    def plot(self, path: str | Path, *, title: str | None = None, **kwargs: Any) -> Path:
        """Write a PNG: cumulative regret and best-arm share with 95% bands (needs matplotlib)."""
        from octobandit.simulation.plotting import plot_results

        return plot_results([self], path, title=title, **kwargs)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def simulate(
    policy: Policy | Mapping[str, Any],
    env: Environment,
    horizon: int,
    replications: int = 100,
    seed: int | None = 0,
    *,
    record_every: int | None = None,
    progress: Progress | None = None,
    label: str | None = None,
    workers: int = 1,
    feedback: str = "immediate",
    window: int | None = None,
    default: float = 0.0,
) -> SimulationResult:
    """Run ``replications`` independent copies of ``policy`` on ``env`` for ``horizon`` steps.

    ``policy`` is a policy object or its JSON spec (built by
    :func:`~octobandit.policies.make_policy` for the environment's reward type).
    Every step makes one ``policy.choose(stats, rng, propensities=False)`` call on
    the ``(R, K)`` statistics, draws the ``R`` rewards and updates the statistics.
    The policy and the environment draw from independent streams of
    ``SeedSequence(seed)``, so a seed fixes the whole run.

    A stateful policy (``policy.stateful``) keeps its own state for the ``R``
    replications: ``policy.init_state(R, K, dim)`` first; at every step the arms are
    drawn with :func:`~octobandit.policies.base.sample_categorical` from
    ``policy.state_probabilities(stats, enabled, state, contexts=..., time=t)`` and
    the rewards are folded in with ``policy.update_state`` (propensities of the
    chosen arms, counts 1, ``times`` the step index ``t``). A stateful policy may
    also offer ``state_draw(stats, enabled, state, rng, *, contexts, time)``, a
    faster draw from the same distribution (e.g. posterior sampling instead of
    P(best) by quadrature); it is then used, and the propensities passed to
    ``update_state`` are NaN.

    The regret is the pseudo-regret ``Σ_t max_a μ_a(t) - μ_{A_t}(t)`` (against
    the best arm for the context, in contextual environments). Records are taken
    every ``record_every`` steps (default: about 1,000 records) and at the
    horizon; ``progress(done, horizon)`` is called at each record.

    ``workers > 1`` splits the replications over that many processes (each with
    its own child of ``SeedSequence(seed)``) and joins their records: on a
    machine with that many cores the run takes about ``1 / workers`` of the time.
    The result depends on ``seed`` and ``workers``; ``progress`` then follows
    the first worker.

    **Delayed feedback.** ``feedback`` says when the statistics the policy sees
    count a decision; the regret is the pseudo-regret of the choices in every mode.
    ``"immediate"`` (the default) counts every reward at the end of its step, as
    above, and ignores the environment's delay. The other modes are for binary
    environments ("conversions": a reward of 1 is a positive outcome, 0 none) and
    stateless policies (a stateful or contextual policy raises ValueError). A
    conversion of the decision made at step ``t`` arrives at the end of step
    ``t + D``, ``D`` drawn from the environment's ``delay``
    (:mod:`~octobandit.simulation.delays`; no delay: ``D = 0``), and the policy sees
    what is counted at the end of a step from the next step on:

    * ``"window"`` (with ``window=W`` steps, ``W >= 1``, and ``default`` in [0, 1],
      0 by default) mirrors the service's attribution windows: every decision is
      counted once, when its window closes at the end of step ``t + W - 1`` (so the
      policy sees it from step ``t + W``): ``n += 1`` and ``s += 1`` if its conversion
      arrived inside the window (``D < W``), else ``s += default``. While its window
      is open a decision is pending: not counted at all, even if its conversion has
      already arrived. A conversion with ``D >= W`` is late and dropped (``late``).
      A closed decision's counted mean is ``μ · P(D < W)`` (default 0): unbiased up
      to that factor, but learning lags by ``W`` steps. ``W = 1`` with no delay is
      immediate feedback.
    * ``"window_eager"`` (same settings), for comparison only, not what the service
      does: a conversion with ``D < W`` is counted as soon as it arrives
      (``n += 1, s += 1``) and a decision without one when its window closes, with
      the default. The pending decisions of the arms being played then add
      successes but no failures, which inflates those arms' estimates.
    * ``"failure_until_reward"``: every decision is counted at once as a failure
      (``n += 1, s += 0``); its conversion, whenever it arrives, adds ``s += 1``.
    * ``"positives_only"``: only conversions are reported, counted when they arrive
      (``n += 1, s += 1``); decisions without one are never counted, so every
      counted mean is 1.

    Conversions due after the horizon are dropped. The delayed modes keep the
    choices (``chosen``), the decisions still pending at the horizon (``pending``)
    and the late conversions (``late``) in the result; memory grows with ``W · R``
    (the open windows) and, except in window mode, the conversions in flight, not
    with the horizon.
    """
    if isinstance(policy, Mapping):
        policy = make_policy(policy, env.reward)
    if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
        raise ValueError("horizon must be a positive integer")
    if isinstance(replications, bool) or not isinstance(replications, int) or replications < 1:
        raise ValueError("replications must be a positive integer")
    if env.reward == "continuous" and policy.reward == "binary":
        raise ValueError(
            f"{type(env).__name__} has continuous rewards: "
            "build the policy with reward='continuous'"
        )
    if policy.contextual and env.context_dim == 0:
        raise ValueError(
            f"{policy.type} is a contextual policy: simulate it on a contextual environment"
        )
    mode = _feedback(feedback, window, default, policy, env)
    every = max(1, math.ceil(horizon / 1000)) if record_every is None else int(record_every)
    if every < 1:
        raise ValueError("record_every must be a positive integer")
    marks = list(range(every, horizon + 1, every))
    if not marks or marks[-1] != horizon:
        marks.append(horizon)
    steps = np.asarray(marks, dtype=np.intp)

    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError("workers must be a positive integer")
    workers = min(workers, replications)
    name = policy.type if label is None else label
    root = np.random.SeedSequence(seed)
    if workers == 1:
        return _run(
            policy, env, horizon, replications, root, steps, every, progress, seed, name, mode
        )
    sizes = [len(part) for part in np.array_split(np.arange(replications), workers)]
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [
            pool.submit(
                _run, policy, env, horizon, size, child, steps, every, None, seed, name, mode
            )
            for size, child in zip(sizes, root.spawn(workers), strict=True)
        ]
        parts = [f.result() for f in futures]
    if progress is not None:
        progress(horizon, horizon)
    first = parts[0]

    def joined(name: str) -> FloatArray | None:
        arrays = [getattr(p, name) for p in parts]
        return None if arrays[0] is None else np.concatenate(arrays)

    return SimulationResult(
        policy=first.policy,
        environment=first.environment,
        horizon=horizon,
        replications=replications,
        seed=seed,
        record_every=every,
        steps=steps,
        regret=np.concatenate([p.regret for p in parts], axis=1),
        best_arm=np.concatenate([p.best_arm for p in parts], axis=1),
        stats=ArmStats(
            *(np.concatenate([getattr(p.stats, f) for p in parts]) for f in ("n", "s", "ss"))
        ),
        elapsed_s=time.perf_counter() - started,
        label=name,
        feedback=first.feedback,
        chosen=joined("chosen"),
        pending=joined("pending"),
        late=joined("late"),
    )


def _feedback(
    feedback: str, window: int | None, default: float, policy: Policy, env: Environment
) -> dict[str, Any] | None:
    """The checked feedback settings (None: immediate feedback)."""
    if feedback not in FEEDBACK:
        raise ValueError(f"feedback must be one of {', '.join(FEEDBACK)}")
    if feedback not in WINDOWED and (window is not None or default != 0.0):
        raise ValueError("window and default are only for feedback='window' or 'window_eager'")
    if feedback == "immediate":
        return None
    if env.reward != "binary":
        raise ValueError(
            f"{type(env).__name__} has continuous rewards: delayed feedback "
            "(conversions) needs a binary environment"
        )
    if policy.stateful:
        raise ValueError(
            f"{policy.type} is stateful: delayed feedback supports stateless policies only"
        )
    if feedback not in WINDOWED:
        return {"mode": feedback}
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"feedback={feedback!r} needs window, a positive integer (steps)")
    if isinstance(default, bool) or not 0.0 <= float(default) <= 1.0:
        raise ValueError("default must lie in [0, 1] (binary rewards, as in the service)")
    return {"mode": feedback, "window": window, "default": float(default)}


class _Calendar:
    """Conversions due per step and flat (replication, arm) index.

    The next ``2 · block`` steps are kept as dense rows of counts (a ring indexed by
    step modulo ``2 · block``), later ones as lists of (step, index) that move into
    the ring every ``block`` steps: memory grows with the conversions in flight,
    not with the horizon.
    """

    def __init__(self, size: int, block: int = 256) -> None:
        self.block = block
        self.near = np.zeros((2 * block, size))
        self.base = 0  # the ring holds steps base .. base + 2·block - 1
        self.far_steps: list[IntArray] = []
        self.far_flat: list[IntArray] = []

    def add(self, steps: IntArray, flat: IntArray) -> None:
        """One conversion per entry, at step ``steps[i]`` (>= the current step)."""
        near = steps < self.base + 2 * self.block
        if near.all():
            np.add.at(self.near, (steps % (2 * self.block), flat), 1.0)
            return
        np.add.at(self.near, (steps[near] % (2 * self.block), flat[near]), 1.0)
        self.far_steps.append(steps[~near])
        self.far_flat.append(flat[~near])

    def take(self, t: int) -> FloatArray:
        """The counts due at step ``t`` (steps are taken in order, each once)."""
        row = self.near[t % (2 * self.block)]
        out: FloatArray = row.copy()
        row[:] = 0.0
        if t + 1 == self.base + self.block:  # the first half is done: move on a block
            self.base += self.block
            if self.far_steps:
                steps = np.concatenate(self.far_steps)
                flat = np.concatenate(self.far_flat)
                due = steps < self.base + 2 * self.block
                np.add.at(self.near, (steps[due] % (2 * self.block), flat[due]), 1.0)
                self.far_steps, self.far_flat = [steps[~due]], [flat[~due]]
        return out


class _Delayed:
    """The statistics' updates of the delayed feedback modes (see :func:`simulate`)."""

    def __init__(
        self,
        mode: dict[str, Any],
        delay: Delay | None,
        r: int,
        k: int,
        horizon: int,
        rng: np.random.Generator,
    ) -> None:
        self.mode = mode["mode"]
        self.delay, self.horizon, self.rng = delay, horizon, rng
        self.calendar = _Calendar(r * k)
        self.chosen = np.zeros(r * k)
        self.late = np.zeros(r * k)
        self.w = int(mode.get("window", 0))
        self.default = float(mode.get("default", 0.0))
        if self.mode == "window":
            # per open decision: its flat index and the reward it counts when its
            # window closes (known at decision time from the drawn delay)
            self.ring_flat = np.zeros((self.w, r), dtype=np.intp)
            self.ring_reward = np.zeros((self.w, r))
        elif self.mode == "window_eager":
            # per open decision: its flat index and its conversion's arrival step
            # (-1 if none within the window: counted with the default when it closes)
            self.ring_flat = np.zeros((self.w, r), dtype=np.intp)
            self.ring_at = np.zeros((self.w, r), dtype=np.int64)

    def step(
        self, t: int, flat: IntArray, rewards: FloatArray, n: FloatArray, s: FloatArray,
        ss: FloatArray,
    ) -> None:  # fmt: skip
        """Step ``t``'s decisions (one per replication) and the updates due at its end."""
        self.chosen[flat] += 1.0
        pos = np.flatnonzero(rewards > 0)
        d = (
            np.zeros(pos.size, dtype=np.intp)
            if self.delay is None
            else self.delay.sample(self.rng, pos.size)
        )
        arrive = t + d
        if self.mode == "window":
            inside = d < self.w
            slot = t % self.w
            self.ring_flat[slot] = flat
            reward = np.full(flat.shape, self.default)
            reward[pos[inside]] = 1.0
            self.ring_reward[slot] = reward
            late = ~inside & (arrive < self.horizon)
            self.late[flat[pos[late]]] += 1.0
            if t >= self.w - 1:  # decision t - W + 1's window closes
                slot = (t - self.w + 1) % self.w
                closing, reward = self.ring_flat[slot], self.ring_reward[slot]
                n[closing] += 1.0  # one decision per replication: distinct indices
                s[closing] += reward
                ss[closing] += reward * reward
            return
        if self.mode == "window_eager":
            inside = d < self.w
            slot = t % self.w
            self.ring_flat[slot] = flat
            at = np.full(flat.shape, -1, dtype=np.int64)
            at[pos[inside]] = arrive[inside]
            self.ring_at[slot] = at
            late = ~inside & (arrive < self.horizon)
            self.late[flat[pos[late]]] += 1.0
            keep = inside & (arrive < self.horizon)
        else:
            keep = arrive < self.horizon
        if keep.any():
            self.calendar.add(arrive[keep], flat[pos[keep]])
        if self.mode == "failure_until_reward":
            n[flat] += 1.0
        counts = self.calendar.take(t)
        s += counts
        ss += counts
        if self.mode != "failure_until_reward":
            n += counts
        if self.mode == "window_eager" and t >= self.w - 1:  # decision t - W + 1's closes
            slot = (t - self.w + 1) % self.w
            closing = self.ring_flat[slot][self.ring_at[slot] < 0]
            n[closing] += 1.0
            s[closing] += self.default
            ss[closing] += self.default * self.default

    def pending(self, r: int, k: int) -> FloatArray:
        """Decisions whose window is still open at the horizon, never counted: ``(R, K)``."""
        out: FloatArray = np.zeros(r * k)
        h = self.horizon
        if self.mode == "window":
            for u in range(max(0, h - self.w + 1), h):  # the windows still open
                out[self.ring_flat[u % self.w]] += 1.0
        elif self.mode == "window_eager":
            for u in range(max(0, h - self.w + 1), h):  # the windows still open
                slot = u % self.w
                at = self.ring_at[slot]
                np.add.at(out, self.ring_flat[slot][(at < 0) | (at >= h)], 1.0)
        return out.reshape(r, k)


def _run(
    policy: Policy,
    env: Environment,
    horizon: int,
    replications: int,
    seeds: np.random.SeedSequence,
    steps: IntArray,
    every: int,
    progress: Progress | None,
    seed: int | None,
    label: str,
    mode: dict[str, Any] | None = None,
) -> SimulationResult:
    """One process's share of :func:`simulate` (``replications`` of them)."""
    r, k = replications, env.k
    policy_rng, env_rng = (np.random.default_rng(s) for s in seeds.spawn(2))
    delayed = (
        None
        if mode is None
        else _Delayed(mode, env.delay, r, k, horizon, np.random.default_rng(seeds.spawn(1)[0]))
    )
    stats = ArmStats.zeros(k, (r,))
    n_flat, s_flat, ss_flat = stats.n.reshape(-1), stats.s.reshape(-1), stats.ss.reshape(-1)
    offsets = np.arange(r, dtype=np.intp) * k
    cum = np.zeros(r)
    hits = np.zeros(r)
    regret = np.empty((len(steps), r))
    best_arm = np.empty((len(steps), r))
    last_mu: FloatArray | None = None
    gaps = optimal = np.zeros(k)
    record, since = 0, 0
    stateful = policy.stateful
    if stateful:
        state = policy.init_state(r, k, env.context_dim)
        state_draw = getattr(policy, "state_draw", None)
        enabled = np.ones(k, dtype=bool)
        rows = np.arange(r)
        ones = np.ones(r)
        unknown = np.full(r, np.nan)

    started = time.perf_counter()
    for t in range(horizon):
        ctx = env.contexts(t, r, env_rng)
        mu = env.expected_rewards(t, ctx)
        if stateful:
            pctx = ctx if policy.contextual else None
            if state_draw is not None:
                arms = state_draw(stats, enabled, state, policy_rng, contexts=pctx, time=float(t))
                props = unknown
            else:
                probs = policy.state_probabilities(
                    stats, enabled, state, contexts=pctx, time=float(t)
                )
                arms = sample_categorical(probs, policy_rng)
                props = probs[rows, arms]
        else:
            arms = policy.choose(stats, policy_rng, propensities=False).arms
        flat = offsets + arms
        if mu.ndim == 1:
            if mu is not last_mu:  # stationary environments return the same array
                last_mu, gaps = mu, mu.max() - mu
                optimal = (gaps == 0).astype(np.float64)
            chosen = mu[arms]
            cum += gaps[arms]
            hits += optimal[arms]
        else:
            chosen = mu.reshape(-1)[flat]
            step_regret = mu.max(axis=-1) - chosen
            cum += step_regret
            hits += step_regret == 0
        rewards = env.rewards(arms, chosen, env_rng)
        if delayed is not None:
            delayed.step(t, flat, rewards, n_flat, s_flat, ss_flat)
        else:
            n_flat[flat] += 1.0
            s_flat[flat] += rewards
            ss_flat[flat] += rewards * rewards
        if stateful:
            policy.update_state(
                state,
                arms,
                rewards,
                ones,
                propensities=props,
                contexts=pctx,
                times=np.full(r, float(t)),
            )
        since += 1
        if t + 1 == steps[record]:
            regret[record] = cum
            best_arm[record] = hits / since
            hits[:] = 0.0
            record, since = record + 1, 0
            if progress is not None:
                progress(t + 1, horizon)
    elapsed = time.perf_counter() - started

    return SimulationResult(
        policy=policy.params(),
        environment=env.describe(),
        horizon=horizon,
        replications=r,
        seed=seed,
        record_every=every,
        steps=steps,
        regret=regret,
        best_arm=best_arm,
        stats=stats,
        elapsed_s=elapsed,
        label=label,
        feedback=mode,
        chosen=None if delayed is None else delayed.chosen.reshape(r, k),
        pending=None if delayed is None else delayed.pending(r, k),
        late=None if delayed is None else delayed.late.reshape(r, k),
    )
