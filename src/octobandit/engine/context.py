"""Decision context: declared feature names, validated and turned into vectors.

An experiment may declare its context features. Decisions then carry a context
either as a vector in that order or as an object with exactly those names; the
engine logs it as the vector.

>>> context_vector({"age": 31, "mobile": 1}, ["age", "mobile"])
[31.0, 1.0]
>>> context_vector([31, 1], ["age", "mobile"])
[31.0, 1.0]
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from octobandit.errors import InvalidInput
from octobandit.policies.linear import MAX_FEATURE

FEATURE = re.compile(r"[A-Za-z_][A-Za-z0-9_.:-]{0,63}")
MAX_FEATURES = 256


def parse_features(spec: Any) -> list[str]:
    """Validate ``{"features": [names]}`` from an experiment definition."""
    if not isinstance(spec, Mapping) or set(spec) - {"features"}:
        raise InvalidInput('must be {"features": [names]}', field="context")
    names = spec.get("features")
    if not isinstance(names, list) or not 0 < len(names) <= MAX_FEATURES:
        raise InvalidInput(f"a list of 1 to {MAX_FEATURES} names", field="context.features")
    seen: set[str] = set()
    for i, name in enumerate(names):
        if not isinstance(name, str) or not FEATURE.fullmatch(name):
            raise InvalidInput(
                "a feature name is 1-64 letters, digits and _ . : - (not starting with a digit)",
                field=f"context.features[{i}]",
            )
        if name in seen:
            raise InvalidInput(f"duplicate feature {name!r}", field=f"context.features[{i}]")
        seen.add(name)
    return list(names)


def _number(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput("must be a finite number", field=field)
    if not -MAX_FEATURE <= value <= MAX_FEATURE:  # also NaN, and ints beyond any float
        raise InvalidInput(
            f"must be a finite number in [-{MAX_FEATURE:g}, {MAX_FEATURE:g}] (scale the feature)",
            field=field,
        )
    return float(value)


def context_vector(context: Any, features: Sequence[str]) -> list[float]:
    """The context as a vector in feature order; :class:`InvalidInput` naming a bad feature."""
    if context is None:
        raise InvalidInput(
            f"this experiment needs a context with features {list(features)}", field="context"
        )
    if isinstance(context, Mapping):
        for name in context:
            if name not in features:
                raise InvalidInput(
                    f"unknown feature; declared: {list(features)}", field=f"context.{name}"
                )
        missing = [name for name in features if name not in context]
        if missing:
            raise InvalidInput("missing feature", field=f"context.{missing[0]}")
        return [_number(context[name], f"context.{name}") for name in features]
    if isinstance(context, list):
        if len(context) != len(features):
            raise InvalidInput(
                f"expected {len(features)} numbers ({', '.join(features)}), got {len(context)}",
                field="context",
            )
        return [_number(v, f"context[{i}]") for i, v in enumerate(context)]
    raise InvalidInput("must be an object of features or a list of numbers", field="context")
