"""Size limits on stored and served JSON values (arm payloads, decision contexts).

Sizes are measured as compact JSON, the form in which the values are logged
and served:

>>> json_size({"a": [1, 2]})
11
>>> check_size("x" * 10, 8, "payload")
Traceback (most recent call last):
...
octobandit.errors.InvalidInput: payload: is 12 bytes as JSON; the limit is 8 bytes
"""

from __future__ import annotations

from typing import Any

import msgspec

from octobandit.errors import InvalidInput


def json_size(value: Any) -> int:
    """Bytes of ``value`` as compact JSON (``null`` is 4)."""
    try:
        return len(msgspec.json.encode(value))
    except (TypeError, ValueError, OverflowError) as exc:  # not JSON at all
        raise InvalidInput(f"not a JSON value ({exc})") from None


def check_size(value: Any, limit: int, field: str) -> int:
    """The JSON size of ``value``; :class:`InvalidInput` naming ``field`` beyond ``limit`` bytes."""
    size = json_size(value)
    if size > limit:
        raise InvalidInput(f"is {size} bytes as JSON; the limit is {limit} bytes", field=field)
    return size
