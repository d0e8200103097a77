"""Settlement: the tick gives every decision whose attribution window closed its outcome.

Exactly once: each experiment keeps a watermark on its event log (see
:class:`~octobandit.storage.base.SettlementTx`), read and moved inside the
data-plane transaction that logs the outcomes, so several workers or replicas
ticking at once settle each decision once, and windows that closed while the
service was down are settled by the first tick after it comes back. See
:mod:`octobandit.engine.attribution` for what an outcome is.
"""

from __future__ import annotations

import logging

from octobandit.engine.base import EngineBase
from octobandit.engine.live import add_reward, write_changes
from octobandit.errors import NotFound, StorageUnavailable
from octobandit.model import RewardEvent

log = logging.getLogger("octobandit.engine")


class SettlementMixin(EngineBase):
    """The tick's settlement of closed attribution windows."""

    #: decisions settled per transaction, and transactions per experiment and tick
    settle_chunk = 2000
    settle_chunks = 5

    def settle(self, now: float | None = None) -> int:
        """Give every decision whose window closed before ``now`` its outcome, once.

        Returns the number of outcomes logged (defaults and summed rewards). Each
        experiment is settled in transactions of :attr:`settle_chunk` decisions, at
        most :attr:`settle_chunks` of them per call (the next tick goes on), so a
        long backlog never holds the write lock for long. An experiment that fails
        is logged and skipped; the others are still settled.
        """
        now = self._clock() if now is None else now
        done = 0
        for experiment_id in self.storage.due_for_settlement(now):
            for _ in range(self.settle_chunks):
                try:
                    count, more = self._settle_chunk(experiment_id, now)
                except StorageUnavailable:
                    raise
                except Exception:  # one experiment's failure must not starve the others
                    log.exception("attribution: experiment %r failed", experiment_id)
                    break
                done += count
                if not more:
                    break
        return done

    def _settle_chunk(self, experiment_id: str, now: float) -> tuple[int, bool]:
        """Settle up to one chunk; returns ``(outcomes logged, whether more may be due)``."""
        try:
            with self.storage.batch() as tx:
                if tx.others_wrote():
                    self._reread.update(self._live)
                try:
                    live = self._load(tx, experiment_id)
                except NotFound:  # deleted since it was listed
                    return 0, False
                rule = live.attribution
                if rule is None:
                    return 0, False
                after = tx.settled_through(experiment_id)
                rows = tx.open_decisions(experiment_id, after, now - rule.window, self.settle_chunk)
                if not rows:
                    return 0, False
                events: list[RewardEvent] = []
                for row in rows:
                    j = live.index.get(row.ref.arm_id)
                    if row.rewarded or j is None:
                        continue
                    if row.parts:  # first: its one part; sum: their total
                        r, kind, data = row.part_sum, "reward", {"parts": row.parts}
                    else:
                        r, kind, data = rule.default, "default", None
                    add_reward(live, j, r, 1.0, row.ref, now)
                    events.append(
                        RewardEvent(
                            now, experiment_id, row.ref.arm_id, r, 1.0, row.decision_id, kind, data
                        )
                    )
                if events:
                    tx.append_rewards(events)
                    live.stale = True
                tx.settle_through(experiment_id, rows[-1].seq)
                write_changes(tx, live)
        except BaseException:
            self._live.pop(experiment_id, None)  # the cache may hold what was rolled back
            raise
        return len(events), len(rows) == self.settle_chunk
