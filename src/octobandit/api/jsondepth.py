"""JSON nesting depth, measured without decoding (a deep body must not recurse)."""

from __future__ import annotations

import re

import numpy as np

_STRING = re.compile(rb'"(?:[^"\\]++|\\.?)*+(?:"|\Z)', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def too_deep(raw: bytes, max_depth: int) -> bool:
    """Whether JSON text nests arrays/objects deeper than ``max_depth``.

    Linear in the body, without decoding it: brackets inside strings do not
    count. Text with fewer brackets than the limit is answered at once.

    >>> too_deep(b'{"a": [[1], {"b": "[[[["}]}', 3)
    False
    >>> too_deep(b'[[[[]]]]', 3)
    True
    """
    if raw.count(b"[") + raw.count(b"{") <= max_depth:
        return False
    brackets = _STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    if len(brackets) <= max_depth:
        return False
    codes = np.frombuffer(brackets, dtype=np.uint8)
    steps = np.where((codes == ord("[")) | (codes == ord("{")), 1, -1)
    return bool(np.cumsum(steps).max() > max_depth)


def too_deep_message(max_depth: int) -> str:
    return f"request body is not valid JSON here: nested deeper than {max_depth} levels"
