"""Labels for the policies of one simulation run: readable, and unique across the run.

A label is the policy type followed by the parameters given in its spec, so two
settings of one policy never share a label in the console, the CSV or the legend:

>>> policy_labels([{"type": "epsilon_greedy", "epsilon": 0.1},
...                {"type": "epsilon_greedy", "epsilon": 0.3}, {"type": "thompson"}])
['epsilon_greedy(epsilon=0.1)', 'epsilon_greedy(epsilon=0.3)', 'thompson']

A spec may name itself with ``"label"``; a label that still repeats gets ``#2``,
``#3``, ... in order:

>>> policy_labels([{"type": "ucb1"}, {"type": "ucb1"}, {"type": "ucb1", "label": "mine"}])
['ucb1', 'ucb1#2', 'mine']
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any


def _value(v: Any) -> str:
    if isinstance(v, str):
        return v
    return json.dumps(v, separators=(",", ":"), sort_keys=True)


def policy_label(spec: Mapping[str, Any]) -> str:
    """``type(key=value, ...)`` over the spec's parameters in the order given (or its
    ``"label"``)."""
    if isinstance(spec.get("label"), str) and spec["label"]:
        return str(spec["label"])
    params = [f"{k}={_value(v)}" for k, v in spec.items() if k not in ("type", "label")]
    kind = str(spec.get("type", "?"))
    return f"{kind}({', '.join(params)})" if params else kind


def policy_labels(specs: Sequence[Mapping[str, Any]]) -> list[str]:
    """One label per spec (see :func:`policy_label`), made unique with ``#n`` suffixes."""
    labels = [policy_label(s) for s in specs]
    taken = set(labels)
    seen: dict[str, int] = {}
    out = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        if seen[label] == 1:
            out.append(label)
            continue
        n = seen[label]
        while f"{label}#{n}" in taken:
            n += 1
        seen[label] = n
        taken.add(f"{label}#{n}")
        out.append(f"{label}#{n}")
    return out
