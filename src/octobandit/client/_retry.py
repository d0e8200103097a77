"""When a failed request is sent again, and after how long.

Every call says whether it is *idempotent* (sending it twice has the effect of
sending it once: reads, PUT, DELETE, PATCH that sets values, rewards by decision
id, which the server counts once) or not (a decision, a reward by arm, a
creation, a reset). An idempotent call is retried after any transport failure
and after 502, 503 and 504. Any other call is retried only when the request
cannot have had an effect: the connection was never made, or the server
answered that it did nothing (503 ``too_many_connections``, ``storage_full``,
``storage_unavailable``, ``state_unavailable``; 408; 429).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import httpx

#: transport failures that happen before the request is sent: nothing reached the server
_UNSENT: tuple[type[httpx.TransportError], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
)
#: statuses that say the request was refused before anything was done
_NOT_DONE_STATUSES = frozenset({408, 429})
#: 503 codes that say nothing was written (``engine_unavailable`` does not: an engine
#: that died may have written before it could answer; ``storage_lost`` needs a restart)
_NOT_DONE_CODES = frozenset(
    {"too_many_connections", "storage_full", "storage_unavailable", "state_unavailable"}
)
#: statuses an idempotent call is retried after
_RETRY_STATUSES = frozenset({502, 503, 504})


@dataclass(frozen=True, slots=True)
class Retry:
    """Retries with exponential backoff and jitter.

    ``attempts`` counts the first try (1: never retry). The n-th retry waits
    ``min(max_backoff, backoff * multiplier ** (n - 1))``, less up to ``jitter`` of
    it at random (so clients restarting together spread out), or the server's
    ``Retry-After`` when it gives one (capped at ``max_backoff``). With the
    defaults a call is tried 6 times over about 8 seconds.
    """

    attempts: int = 6
    backoff: float = 0.25
    multiplier: float = 2.0
    max_backoff: float = 4.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if self.backoff < 0 or self.max_backoff < 0 or not 0 <= self.jitter <= 1:
            raise ValueError("backoff, max_backoff must be >= 0 and jitter in [0, 1]")

    @classmethod
    def never(cls) -> Retry:
        """One try, no retry."""
        return cls(attempts=1)

    def delay(self, attempt: int, retry_after: str | None = None) -> float:
        """Seconds to wait after failed try number ``attempt`` (1-based)."""
        if retry_after is not None:
            try:
                return min(self.max_backoff, max(0.0, float(retry_after)))
            except ValueError:  # an HTTP date: use our own backoff
                pass
        base = min(self.max_backoff, self.backoff * self.multiplier ** (attempt - 1))
        return base * (1.0 - self.jitter * random.random())

    def after_transport_error(
        self, exc: httpx.TransportError, attempt: int, idempotent: bool
    ) -> float | None:
        """The delay before trying again, or ``None`` to give up."""
        if attempt >= self.attempts or not (idempotent or isinstance(exc, _UNSENT)):
            return None
        return self.delay(attempt)

    def after_status(
        self,
        status: int,
        code: str,
        attempt: int,
        idempotent: bool,
        retry_after: str | None = None,
    ) -> float | None:
        """The delay before trying again after an error answer, or ``None`` to give up."""
        if attempt >= self.attempts:
            return None
        not_done = status in _NOT_DONE_STATUSES or (status == 503 and code in _NOT_DONE_CODES)
        if not_done or (idempotent and status in _RETRY_STATUSES):
            return self.delay(attempt, retry_after)
        return None


def sent(exc: httpx.TransportError) -> bool:
    """Whether the request may have reached the server before ``exc``."""
    return not isinstance(exc, _UNSENT)
