"""Checks of one numeric parameter, shared by the policies and the statistics.

A failed check raises :class:`~octobandit.errors.InvalidInput` naming the field.
"""

from __future__ import annotations

import math
from typing import Any

from octobandit.errors import InvalidInput


def check_number(
    value: Any,
    field: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
) -> float:
    """Validate a finite real number in a range, naming ``field`` on failure."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput("must be a number", field=field)
    try:
        x = float(value)  # an int beyond the float range overflows
    except OverflowError:
        x = math.inf
    if not math.isfinite(x):
        raise InvalidInput("must be finite", field=field)
    if low is not None and (x <= low if low_open else x < low):
        raise InvalidInput(f"must be {'>' if low_open else '>='} {low}", field=field)
    if high is not None and x > high:
        raise InvalidInput(f"must be <= {high}", field=field)
    return x
