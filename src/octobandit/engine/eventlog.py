"""Reading the event log back: pages of events as JSON-ready dicts, and time bounds.

The log is read page by page along its ``(experiment_id, seq)`` index (see
:meth:`~octobandit.storage.base.EventLog.events_page`): a page is at most
:data:`MAX_PAGE` events, and its ``next`` cursor (the last ``seq`` of a full page,
else ``None``) starts the next one, so a reader holds one page at a time whatever
the log's size.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from octobandit.errors import InvalidInput
from octobandit.model import Event, iso_time

#: every kind of event the log holds (see docs/rewards.md)
EVENT_KINDS = ("decision", "reward", "default", "part", "late", "reset", "set_stats")
DEFAULT_PAGE = 1000
MAX_PAGE = 10_000
#: the largest cursor (``seq`` is a 64-bit integer in every store)
MAX_SEQ = 2**63 - 1

#: the fields of an event, in the order CSV columns show them
EVENT_FIELDS = (
    "seq",
    "ts",
    "at",
    "experiment_id",
    "kind",
    "decision_id",
    "arm_id",
    "propensity",
    "unit_id",
    "context",
    "reward",
    "count",
    "data",
)


def event_view(e: Event) -> dict[str, Any]:
    """One event as JSON: ``ts`` in epoch seconds and ``at`` the same in ISO 8601 UTC."""
    return {
        "seq": e.seq,
        "ts": e.ts,
        "at": iso_time(e.ts),
        "experiment_id": e.experiment_id,
        "kind": e.kind,
        "decision_id": e.decision_id,
        "arm_id": e.arm_id,
        "propensity": e.propensity,
        "unit_id": e.unit_id,
        "context": e.context,
        "reward": e.reward,
        "count": e.count,
        "data": e.data,
    }


_ISO = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?)?"
    r"([Zz]|[+-]\d{2}:?\d{2})?"
)


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (any year, day-of-month rolls)."""
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def parse_time(value: str | float | None, field: str) -> float | None:
    """Epoch seconds from epoch seconds (a number or its text) or an ISO 8601 / RFC 3339
    date or date-time (UTC unless it has an offset); :class:`InvalidInput` otherwise."""
    if value is None:
        return None
    if isinstance(value, int | float):
        number = float(value)
    else:
        text = value.strip()
        try:
            number = float(text)
        except ValueError:
            match = _ISO.fullmatch(text)
            if match is None:
                raise InvalidInput(
                    "expected epoch seconds or an ISO 8601 date-time, e.g. 2026-01-31T12:00:00Z",
                    field=field,
                ) from None
            y, mo, d, h, mi, s = (int(g) if g else 0 for g in match.groups()[:6])
            if not (1 <= mo <= 12 and 1 <= d <= 31 and h <= 23 and mi <= 59 and s <= 60):
                raise InvalidInput("date-time out of range", field=field) from None
            number = _days_from_civil(y, mo, d) * 86400.0 + h * 3600 + mi * 60 + s
            number += float(match.group(7) or 0)
            offset = match.group(8)
            if offset and offset not in "Zz":
                sign = -1 if offset[0] == "-" else 1
                digits = offset[1:].replace(":", "")
                number -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    if not math.isfinite(number):
        raise InvalidInput("must be finite", field=field)
    return number


def check_page(
    after: int, limit: int, kinds: Sequence[str] | None
) -> tuple[int, int, list[str] | None]:
    """The page's arguments, checked (:class:`InvalidInput` names the bad one)."""
    if isinstance(after, bool) or not isinstance(after, int) or not 0 <= after <= MAX_SEQ:
        raise InvalidInput(f"a cursor: an integer in [0, {MAX_SEQ}]", field="after")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"an integer in [1, {MAX_PAGE}]", field="limit")
    if kinds is not None:
        unknown = sorted(set(kinds) - set(EVENT_KINDS))
        if unknown:
            raise InvalidInput(f"unknown kind {unknown[0]!r}: one of {EVENT_KINDS}", field="kind")
        kinds = list(dict.fromkeys(kinds))
    return after, limit, kinds
