"""Candidate policies and what their offline value means.

A candidate is a policy spec (``{"type": ..., **params}``, as ``policy`` in experiment
creation) or a fixed action distribution (``{"action_dist": [...]}``: the same K
probabilities every round, or one row per round). Two questions are asked of it:

* :func:`same_info_action_dist`: its action distribution at each logged round, given
  *the same information the logger had*: the statistics (or state) it would hold having
  learned from every outcome logged before that round's decision. IPS, SNIPS, DM, DR,
  SNDR and Switch-DR estimate the mean over the logged rounds of
  ``Σ_a π_i(a) μ_i(a)``: that candidate, fed the logger's data, deciding in its place.
* :func:`replay`: what the candidate would have earned *online*, learning only from the
  rounds it accepted (Li et al. 2011 for a uniform logger; for any other logger a round
  whose logged arm matches the candidate's draw is accepted with probability
  ``p_min / pscore``, Dudík, Erhan, Langford and Li 2012, so accepted rounds are
  distributed as the candidate's own). Its target is the candidate's expected mean
  reward over as many online rounds as were accepted; it gives reward and regret curves.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from octobandit.errors import InvalidInput
from octobandit.evaluation import EvaluationError
from octobandit.offline.log import FloatArray, LoggedRounds
from octobandit.policies import Policy, make_policy
from octobandit.policies.base import ArmStats

#: decisions whose statistics are built at once (bounds memory: a block × K)
SAME_INFO_BLOCK = 4096
#: the longest candidate spec taken as text
MAX_SPEC_CHARS = 10_000
#: points kept on a replay curve (evenly spaced over the accepted rounds, the last one kept)
CURVE_POINTS = 200


@dataclass(frozen=True)
class Candidate:
    """A named candidate: a policy, or a fixed ``action_dist`` ((K,) or (n, K))."""

    name: str
    spec: dict[str, Any]
    policy: Policy | None = None
    action_dist: FloatArray | None = None


def parse_candidates(texts: Sequence[str | Mapping[str, Any]], reward_type: str) -> list[Candidate]:
    """Candidates from a type name, a JSON spec (text or mapping) each; unique names.

    A spec may carry a ``name``; otherwise it is the type (or ``action_dist``), made unique
    with ``#2``, ``#3``. A bad spec raises :class:`~octobandit.errors.InvalidInput`
    (``field="policy"``).
    """
    out: list[Candidate] = []
    taken: set[str] = set()
    for raw in texts:
        if isinstance(raw, str):
            text = raw.strip()
            if len(text) > MAX_SPEC_CHARS:
                raise InvalidInput(f"a spec of at most {MAX_SPEC_CHARS} characters", field="policy")
            if text.startswith("{"):
                try:
                    spec = json.loads(text)
                except (json.JSONDecodeError, RecursionError) as exc:
                    raise InvalidInput(f"{text[:80]!r}: not JSON ({exc})", field="policy") from None
            elif text.isidentifier() and len(text) <= 64:
                spec = {"type": text}
            else:
                raise InvalidInput(
                    f"{text[:80]!r}: neither a policy type nor a JSON object", field="policy"
                )
        else:
            spec = dict(raw)
        if not isinstance(spec, dict):
            raise InvalidInput(f"{raw!r}: not a JSON object", field="policy")
        spec = dict(spec)
        name = spec.pop("name", None)
        if name is not None and (not isinstance(name, str) or not name):
            raise InvalidInput("a candidate's name is a non-empty string", field="policy")
        if "action_dist" in spec:
            if set(spec) != {"action_dist"}:
                raise InvalidInput("an action_dist candidate has no other fields", field="policy")
            try:
                dist = np.asarray(spec["action_dist"], dtype=np.float64)
            except (TypeError, ValueError):
                raise InvalidInput("action_dist: an array of numbers", field="policy") from None
            if dist.ndim not in (1, 2) or dist.size == 0:
                raise InvalidInput("action_dist: shape (K,) or (n, K)", field="policy")
            candidate = Candidate(name or "action_dist", spec, action_dist=dist)
        else:
            try:
                policy = make_policy(spec, reward_type)
            except (TypeError, ValueError, RecursionError) as exc:
                if isinstance(exc, InvalidInput):
                    raise
                raise InvalidInput(f"{spec.get('type')!r}: {exc}", field="policy") from None
            candidate = Candidate(name or str(spec["type"]), policy.params(), policy=policy)
        base, n = candidate.name, 1
        while candidate.name in taken:
            n += 1
            candidate = Candidate(
                f"{base}#{n}", candidate.spec, candidate.policy, candidate.action_dist
            )
        taken.add(candidate.name)
        out.append(candidate)
    return out


def _fixed(candidate: Candidate, rounds: LoggedRounds) -> FloatArray:
    dist = candidate.action_dist
    assert dist is not None
    n, k = rounds.n, rounds.k
    if dist.shape[-1] != k or (dist.ndim == 2 and dist.shape[0] != n):
        raise EvaluationError(
            f"candidate {candidate.name!r}: action_dist has shape {dist.shape}, the log has "
            f"{n} rounds and {k} arms: (K,) or (n, K) expected",
            array="action_dist",
        )
    if (dist < 0).any() or not np.allclose(dist.sum(axis=-1), 1.0, atol=1e-6):
        raise EvaluationError(
            f"candidate {candidate.name!r}: action_dist rows are probabilities summing to 1",
            array="action_dist",
        )
    return np.broadcast_to(dist, (n, k)).copy()


def _check_context(policy: Policy, rounds: LoggedRounds, name: str) -> None:
    if policy.contextual and rounds.context is None:
        raise EvaluationError(
            f"candidate {name!r} ({policy.type}) is contextual and the log has no numeric "
            "context vectors",
            array="context",
        )


def same_info_action_dist(candidate: Candidate, rounds: LoggedRounds) -> FloatArray:
    """(n, K): the candidate's probabilities at each round, having learned from every
    outcome logged before the round's decision (in log order, whoever's arm it was)."""
    if candidate.policy is None:
        return _fixed(candidate, rounds)
    policy, n, k = candidate.policy, rounds.n, rounds.k
    _check_context(policy, rounds, candidate.name)
    order = np.argsort(rounds.outcome_seq, kind="stable")
    before = np.searchsorted(rounds.outcome_seq[order], rounds.seq, side="left")
    if not policy.stateful:
        # the statistics before each decision, a block of decisions at a time (memory:
        # a block's rows, whatever n): running totals up to the block's first decision,
        # plus cumulative sums over the outcomes that arrive within the block
        arm, r = rounds.action[order], rounds.reward[order]
        out = np.empty((n, k))
        total = np.zeros((3, k))
        m0 = 0
        for start in range(0, n, SAME_INFO_BLOCK):
            end = min(n, start + SAME_INFO_BLOCK)
            m1 = int(before[end - 1])  # before is nondecreasing: decisions are in log order
            rows = np.arange(1, m1 - m0 + 1)
            cum = np.zeros((3, m1 - m0 + 1, k))
            np.add.at(cum[0], (rows, arm[m0:m1]), 1.0)
            np.add.at(cum[1], (rows, arm[m0:m1]), r[m0:m1])
            np.add.at(cum[2], (rows, arm[m0:m1]), r[m0:m1] ** 2)
            cum = np.cumsum(cum, axis=1) + total[:, None, :]
            at = before[start:end] - m0
            stats = ArmStats.of(cum[0][at], cum[1][at], cum[2][at])
            out[start:end] = policy.probabilities(stats)
            total, m0 = cum[:, -1, :], m1
        return out
    # a stateful policy: walk the log, folding outcomes in before each decision
    dim = 0 if rounds.context is None else rounds.context.shape[1]
    state = policy.init_state(1, k, dim)
    stats = ArmStats.zeros(k, (1,))
    enabled = np.ones(k, dtype=bool)
    out = np.empty((n, k))
    folded = 0
    for i in range(n):
        while folded < before[i]:
            j = int(order[folded])
            stats, state = _fold(policy, stats, state, rounds, j)
            folded += 1
        out[i] = _probs(policy, stats, enabled, state, rounds, i)
    return out


def _fold(
    policy: Policy, stats: ArmStats, state: dict[str, Any], rounds: LoggedRounds, j: int
) -> tuple[ArmStats, dict[str, Any]]:
    a, r = int(rounds.action[j]), float(rounds.reward[j])
    one = np.zeros((1, stats.k))
    one[0, a] = 1.0
    stats = stats + ArmStats.of(one, one * r, one * r * r)
    if policy.stateful:
        ctx = None if rounds.context is None or not policy.contextual else rounds.context[j : j + 1]
        policy.update_state(
            state,
            np.array([a], dtype=np.intp),
            np.array([r]),
            np.ones(1),
            propensities=rounds.pscore[j : j + 1],
            contexts=ctx,
            times=rounds.ts[j : j + 1],
        )
    return stats, state


def _probs(
    policy: Policy,
    stats: ArmStats,
    enabled: Any,
    state: dict[str, Any],
    rounds: LoggedRounds,
    i: int,
) -> FloatArray:
    if not policy.stateful:
        return np.asarray(policy.probabilities(stats, enabled)[0], dtype=np.float64)
    ctx = None if rounds.context is None or not policy.contextual else rounds.context[i : i + 1]
    row = policy.state_probabilities(stats, enabled, state, contexts=ctx, time=float(rounds.ts[i]))
    return np.asarray(row[0], dtype=np.float64)


def replay(
    candidate: Candidate,
    rounds: LoggedRounds,
    *,
    p_min: float | None = None,
    random_state: int = 12345,
    arm_means: FloatArray | None = None,
) -> dict[str, Any]:
    """Run the candidate through the log as if online (see the module's docstring).

    At round ``i`` the candidate draws an arm from its probabilities (from what it learned
    on the rounds accepted so far); the round is accepted when the draw is the logged arm
    and a uniform draw is below ``p_min / pscore[i]``, and then the candidate learns its
    outcome. ``p_min`` defaults to the smallest logged pscore (under a uniform logger,
    1/K: every match is accepted); ``p_min = 1`` accepts every match (the plain replay,
    biased under a non-uniform logger). Seeded by ``random_state``.

    Returns ``value`` (the mean reward of the accepted rounds), ``ci95`` (normal interval
    ``value ± 1.96 sd / √T`` over the T accepted rewards), ``accepted``, ``rounds``,
    ``p_min`` and ``curve``: at up to :data:`CURVE_POINTS` accepted-round counts ``t``, the
    running mean reward and the cumulative regret ``Σ (max μ̂ − μ̂_{a_s})`` against
    ``arm_means`` (default: each arm's mean logged reward).
    """
    n, k = rounds.n, rounds.k
    if p_min is None:
        p_min = float(rounds.pscore.min())
    if not 0.0 < p_min <= 1.0:
        raise EvaluationError(f"p_min = {p_min}: in (0, 1]", array="pscore")
    if arm_means is None:
        counts = np.bincount(rounds.action, minlength=k).astype(np.float64)
        sums = np.bincount(rounds.action, weights=rounds.reward, minlength=k)
        arm_means = np.divide(sums, counts, out=np.zeros(k), where=counts > 0)
    rng = np.random.default_rng(random_state)
    accept_u = rng.random(n)
    draw_u = rng.random(n)
    accept_p = np.minimum(1.0, p_min / rounds.pscore)
    chosen: list[int] = []
    rewards: list[float] = []
    if candidate.policy is None:
        dist = _fixed(candidate, rounds)
        cum = np.cumsum(dist, axis=1)
        draws = np.minimum((cum < (draw_u * cum[:, -1])[:, None]).sum(axis=1), k - 1)
        keep = (draws == rounds.action) & (accept_u < accept_p)
        chosen = rounds.action[keep].tolist()
        rewards = rounds.reward[keep].tolist()
    else:
        policy = candidate.policy
        _check_context(policy, rounds, candidate.name)
        dim = 0 if rounds.context is None else rounds.context.shape[1]
        state = policy.init_state(1, k, dim)
        stats = ArmStats.zeros(k, (1,))
        enabled = np.ones(k, dtype=bool)
        # an additive policy that samples (posterior sampling) draws directly, which is
        # cheaper than its exact probabilities; another additive policy's probabilities
        # change only when it learns, so they are cached between accepted rounds
        sampler = not policy.stateful and type(policy)._draw is not Policy._draw
        draw_rng = rng.spawn(1)[0]
        row = _probs(policy, stats, enabled, state, rounds, 0) if not sampler else None
        for i in range(n):
            if sampler:
                a = int(policy.choose(stats, draw_rng, propensities=False).arms[0])
            else:
                if policy.stateful:
                    row = _probs(policy, stats, enabled, state, rounds, i)
                assert row is not None
                cum = np.cumsum(row)
                a = min(int(np.searchsorted(cum, draw_u[i] * cum[-1], side="right")), k - 1)
            if a != rounds.action[i] or accept_u[i] >= accept_p[i]:
                continue
            chosen.append(a)
            rewards.append(float(rounds.reward[i]))
            stats, state = _fold(policy, stats, state, rounds, i)
            if not policy.stateful and not sampler:
                row = _probs(policy, stats, enabled, state, rounds, i)
    t = len(rewards)
    out: dict[str, Any] = {"accepted": t, "rounds": n, "p_min": p_min}
    if t == 0:
        return {**out, "value": None, "ci95": None, "curve": {"t": [], "reward": [], "regret": []}}
    r = np.asarray(rewards)
    value = float(r.mean())
    half = 1.959963984540054 * float(r.std(ddof=1) if t > 1 else 0.0) / np.sqrt(t)
    gaps = arm_means.max() - arm_means
    regret = np.cumsum(gaps[np.asarray(chosen, dtype=np.intp)])
    running = np.cumsum(r) / np.arange(1, t + 1)
    at = np.unique(np.linspace(1, t, min(t, CURVE_POINTS)).round().astype(np.intp))
    curve = {
        "t": at.tolist(),
        "reward": running[at - 1].tolist(),
        "regret": regret[at - 1].tolist(),
    }
    return {
        **out,
        "value": value,
        "ci95": [float(value - half), float(value + half)],
        "curve": curve,
    }
