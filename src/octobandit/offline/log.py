"""The adapter: an experiment's event log → the arrays the estimators take.

A *round* is a decision joined to its counted outcome: the first ``reward`` or
``default`` event with the decision's id (see docs/rewards.md: every decision ends with
at most one counted outcome). Decisions with no outcome yet are dropped and counted;
outcomes whose decision is not in the read (or that come second) are counted as orphans.

The log is read page by page (the pages of :func:`octobandit.export.store_pages` or
:func:`octobandit.export.http_pages`, or the engine's ``events``); memory holds one page
and the rounds kept (at most ``limit`` decisions: the most recent ones).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from octobandit.evaluation import EvaluationError
from octobandit.model import OUTCOME_KINDS

Page = list[dict[str, Any]]
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]


@dataclass(frozen=True)
class LoggedRounds:
    """The rounds of a log, in decision order (``n`` rounds, ``K = len(arms)`` arms).

    ``action`` is the arm's index in ``arms``; ``reward`` the counted outcome; ``pscore``
    the logged propensity of the chosen arm; ``context`` (n, d) when every kept decision
    has a numeric context of the same size (a list, or an object over the declared
    features), else ``None``; ``ts`` the decision's time (epoch seconds); ``seq`` the
    decision's place in the log and ``outcome_seq`` its outcome's (what was known before a
    decision is the outcomes with a smaller ``seq``). ``dropped``: decisions with no
    outcome yet; ``orphans``: outcomes with no decision kept; ``older``: decisions left
    out by ``limit``.
    """

    arms: list[str]
    action: IntArray
    reward: FloatArray
    pscore: FloatArray
    context: FloatArray | None
    ts: FloatArray
    seq: IntArray
    outcome_seq: IntArray
    decision_ids: list[str]
    dropped: int = 0
    orphans: int = 0
    older: int = 0

    @property
    def n(self) -> int:
        return int(self.action.shape[0])

    @property
    def k(self) -> int:
        return len(self.arms)

    def arrays(self) -> dict[str, Any]:
        """The estimators' keyword arrays: ``reward``, ``action``, ``pscore``, ``context``."""
        return {
            "reward": self.reward,
            "action": self.action,
            "pscore": self.pscore,
            "context": self.context,
        }

    def summary(self) -> dict[str, Any]:
        """What was read: counts, the logged value (mean reward) and the smallest pscore."""
        return {
            "arms": list(self.arms),
            "rounds": self.n,
            "dropped": self.dropped,
            "orphans": self.orphans,
            "older": self.older,
            "value": float(self.reward.mean()) if self.n else None,
            "min_pscore": float(self.pscore.min()) if self.n else None,
        }


def rounds_from_pages(
    arms: Sequence[str],
    pages: Iterable[Page],
    *,
    features: Sequence[str] | None = None,
    limit: int | None = None,
) -> LoggedRounds:
    """Join the decisions of ``pages`` (event dicts, in log order) to their outcomes.

    ``arms``: the experiment's arm ids (an arm met in the log that is not among them is
    appended). ``features``: the declared context features (to read object contexts as
    vectors). ``limit``: keep only the most recent ``limit`` decisions.

    Raises :class:`~octobandit.evaluation.EvaluationError` (``array="pscore"``) for a kept
    round whose propensity is missing, zero or not in ``(0, 1]``, and when no round has
    an outcome.
    """
    joiner = RoundJoiner(arms, features=features, limit=limit)
    for page in pages:
        joiner.add(page)
    return joiner.rounds()


class RoundJoiner:
    """:func:`rounds_from_pages` one page at a time (for readers that get pages
    asynchronously): :meth:`add` each page in log order, then :meth:`rounds`."""

    def __init__(
        self,
        arms: Sequence[str],
        *,
        features: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> None:
        self.names = list(arms)
        self.index = {a: i for i, a in enumerate(self.names)}
        self.features = features
        self.limit = limit
        # decision id -> [seq, arm index, propensity, context, ts, outcome seq, reward]
        self.kept: OrderedDict[str, list[Any]] = OrderedDict()
        self.orphans = self.older = 0

    def add(self, page: Page) -> None:
        kept, index = self.kept, self.index
        for e in page:
            kind, decision_id = e["kind"], e.get("decision_id")
            if decision_id is None:
                continue
            if kind == "decision":
                arm = e["arm_id"]
                if arm not in index:
                    index[arm] = len(self.names)
                    self.names.append(arm)
                kept[decision_id] = [
                    e["seq"], index[arm], e.get("propensity"), e.get("context"), e["ts"],
                    None, None,
                ]  # fmt: skip
                if self.limit is not None and len(kept) > self.limit:
                    kept.popitem(last=False)
                    self.older += 1
            elif kind in OUTCOME_KINDS:
                slot = kept.get(decision_id)
                if slot is None or slot[5] is not None:
                    self.orphans += 1
                else:
                    slot[5], slot[6] = e["seq"], e["reward"]

    def rounds(self) -> LoggedRounds:
        rows = [(d, s) for d, s in self.kept.items() if s[5] is not None]
        dropped = len(self.kept) - len(rows)
        if not rows:
            raise EvaluationError(
                f"no decision with an outcome to evaluate ({dropped} without one yet)",
                array="reward",
            )
        pscore = np.empty(len(rows))
        for i, (decision_id, s) in enumerate(rows):
            p = s[2]
            ok = isinstance(p, int | float) and not isinstance(p, bool) and math.isfinite(p)
            if not ok or not 0.0 < p <= 1.0:
                what = "missing" if p is None else ("zero" if p == 0 else f"{p!r}, not in (0, 1]")
                raise EvaluationError(
                    f"decision {decision_id!r}: its propensity is {what}; off-policy "
                    "evaluation needs the logged probability of every decision",
                    array="pscore",
                    index=i,
                )
            pscore[i] = p
        return LoggedRounds(
            arms=list(self.names),
            action=np.array([s[1] for _, s in rows], dtype=np.intp),
            reward=np.array([float(s[6]) for _, s in rows]),
            pscore=pscore,
            context=_contexts([s[3] for _, s in rows], self.features),
            ts=np.array([float(s[4]) for _, s in rows]),
            seq=np.array([s[0] for _, s in rows], dtype=np.intp),
            outcome_seq=np.array([s[5] for _, s in rows], dtype=np.intp),
            decision_ids=[d for d, _ in rows],
            dropped=dropped,
            orphans=self.orphans,
            older=self.older,
        )


def _contexts(values: list[Any], features: Sequence[str] | None) -> FloatArray | None:
    """The contexts as an (n, d) array when all are numeric vectors of one size."""
    vectors: list[list[float]] = []
    for c in values:
        if isinstance(c, dict) and features:
            c = [c.get(f) for f in features]
        if not isinstance(c, list) or not c:
            return None
        if not all(isinstance(x, int | float) and not isinstance(x, bool) for x in c):
            return None
        vectors.append([float(x) for x in c])
    if len({len(v) for v in vectors}) != 1:
        return None
    out = np.array(vectors, dtype=np.float64)
    return out if np.isfinite(out).all() else None


def store_rounds(
    store: str, experiment_id: str, *, limit: int | None = None
) -> tuple[LoggedRounds, str]:
    """The rounds of an experiment in a store (an SQLite file or a PostgreSQL URL), and
    the experiment's reward type."""
    from octobandit.engine import Engine
    from octobandit.storage import open_store

    engine = Engine(open_store(store))
    try:
        record = engine.get_experiment(experiment_id)
        rounds = engine_rounds(engine, experiment_id, limit=limit)
        return rounds, record.reward_type
    finally:
        engine.storage.close()


def engine_rounds(engine: Any, experiment_id: str, *, limit: int | None = None) -> LoggedRounds:
    """The rounds of an experiment read through an :class:`~octobandit.engine.Engine`."""
    record = engine.get_experiment(experiment_id)

    def pages() -> Iterable[Page]:
        after = 0
        while True:
            page = engine.events(experiment_id, after, 10_000, ["decision", *OUTCOME_KINDS])
            yield page["events"]
            if page["next"] is None:
                return
            after = page["next"]

    return rounds_from_pages(
        [a.arm_id for a in record.arms],
        pages(),
        features=record.options.get("context_features"),
        limit=limit,
    )


def http_rounds(
    url: str, experiment_id: str, *, limit: int | None = None
) -> tuple[LoggedRounds, str]:
    """The rounds of an experiment of a running service (``GET .../events``, one request
    a page), and the experiment's reward type."""
    import httpx

    from octobandit.export import _ok

    with httpx.Client(base_url=url.rstrip("/"), timeout=60.0) as client:
        path = f"/v1/experiments/{experiment_id}"
        answer = _ok(client.get(path))
        features = (answer.get("context") or {}).get("features")
        reward_type = str((answer.get("reward") or {}).get("type", "binary"))

        def pages() -> Iterable[Page]:
            after = 0
            params: dict[str, Any] = {"limit": 10_000, "kind": ["decision", *OUTCOME_KINDS]}
            while True:
                page = _ok(client.get(path + "/events", params={**params, "after": after}))
                yield page["events"]
                if page["next"] is None:
                    return
                after = page["next"]

        rounds = rounds_from_pages(
            [a["id"] for a in answer["arms"]], pages(), features=features, limit=limit
        )
        return rounds, reward_type
