"""The Open Bandit Dataset (OBD) as plain arrays, and its off-policy evaluation.

OBD (Saito, Aihara, Matsutani and Narita, 2021; ZOZO, Inc., CC BY 4.0) logs fashion-item
recommendations on ZOZOTOWN under two logging policies, ``random`` (uniform) and ``bts``
(Bernoulli Thompson sampling), in three campaigns, ``all``, ``men`` and ``women``. Each
part is a directory ``{policy}/{campaign}/`` holding ``{campaign}.csv`` (one row per
impression: an unnamed index, ``timestamp``, ``item_id``, ``position`` 1..3, ``click``,
``propensity_score``, ``user_feature_0..3`` and ``user-item_affinity_*``) and
``item_context.csv`` (one row per item: ``item_id`` and ``item_feature_0..3``). This is the
layout of the full dataset and of the 10,000-round sample in obp's wheel
(``obp/dataset/obd/``). Gzipped files (``.csv.gz``) are read too.

:func:`load_obd` reads a part into arrays built as obp 0.4.1's ``OpenBanditDataset`` builds
them, so that estimates agree with obp's (the reward model sees the same features):

- rows sorted by ``timestamp``, as obp sorts them (NumPy's quicksort of the timestamp
  strings, so rows at the same time come in obp's order, not necessarily the file's);
- ``position``: the dense rank of the file's positions, from 0;
- ``context``: each ``user_feature_*`` column one-hot encoded over its values in sorted
  order, without the first value's column (a column of numbers is kept as a number, in
  front); the user-item affinities are not part of it;
- ``action_context``: a row per item (by ``item_id``): the codes of every item column but
  ``item_feature_0`` (the rank of the value among the column's sorted values, so
  ``item_id`` itself comes first), then ``item_feature_0`` as a number.

Only NumPy and the standard library are used, by :func:`evaluate_obd` too (its reward
model is :class:`~octobandit.evaluation.NewtonLogisticRegression`).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from octobandit.evaluation._arrays import SUM_TOLERANCE, EvaluationError, Floats, Ints

__all__ = [
    "ObdError",
    "OpenBanditData",
    "evaluate_obd",
    "load_obd",
    "read_action_dist",
]

_LOG_COLUMNS = ("timestamp", "item_id", "position", "click", "propensity_score")


class ObdError(EvaluationError):
    """An OBD directory or an action-distribution file cannot be read as given; the message
    names the file (and the row or column) at fault."""


@dataclass(frozen=True)
class OpenBanditData:
    """One part of the Open Bandit Dataset as arrays (obp's ``bandit_feedback``)."""

    n_rounds: int
    n_actions: int
    len_list: int
    action: Ints
    position: Ints
    reward: Floats
    pscore: Floats
    #: (n, d) user features, one-hot without the first value of each
    context: Floats
    #: (K, d_a) item features, one row per action
    action_context: Floats
    #: (n,) ``datetime64[us]``, UTC, sorted
    timestamp: npt.NDArray[np.datetime64]

    def arrays(self) -> dict[str, Any]:
        """The logged arrays under the estimators' names (``reward``, ``action``,
        ``position``, ``pscore``, ``context``)."""
        return {
            "reward": self.reward,
            "action": self.action,
            "position": self.position,
            "pscore": self.pscore,
            "context": self.context,
        }


def _find(directory: Path, stem: str) -> Path | None:
    for name in (f"{stem}.csv", f"{stem}.csv.gz"):
        if (directory / name).is_file():
            return directory / name
    return None


def _read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    try:
        raw = path.read_bytes()
        if path.name.endswith(".gz"):
            raw = gzip.decompress(raw)
        text = raw.decode("utf-8-sig")
    except (OSError, EOFError, gzip.BadGzipFile, UnicodeDecodeError) as exc:
        raise ObdError(f"{path}: cannot be read as a (gzipped) UTF-8 CSV file: {exc}") from exc
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        raise ObdError(f"{path}: the file is empty (no header)")
    header, body = rows[0], [r for r in rows[1:] if r]
    for i, row in enumerate(body):
        if len(row) != len(header):
            raise ObdError(
                f"{path}: row {i + 1} has {len(row)} fields but the header has {len(header)}"
            )
    if not body:
        raise ObdError(f"{path}: the file has a header but no rows")
    return header, body


def _column(path: Path, header: list[str], name: str) -> int:
    if name not in header:
        raise ObdError(
            f"{path}: column {name!r} is missing (an OBD file has "
            f"{', '.join(_LOG_COLUMNS)} and user_feature_*)"
        )
    return header.index(name)


def _numbers(path: Path, column: str, values: Sequence[str]) -> Floats:
    try:
        out = np.array([float(v) for v in values], dtype=np.float64)
    except ValueError:
        bad = next(i for i, v in enumerate(values) if not _is_number(v))
        raise ObdError(
            f"{path}: column {column!r}, row {bad + 1}: {values[bad]!r} is not a number"
        ) from None
    if not np.isfinite(out).all():
        bad = int(np.flatnonzero(~np.isfinite(out))[0])
        raise ObdError(f"{path}: column {column!r}, row {bad + 1}: {values[bad]!r} is not finite")
    return out


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def _integers(path: Path, column: str, values: Sequence[str]) -> Ints:
    x = _numbers(path, column, values)
    frac = x != np.round(x)
    if frac.any():
        bad = int(np.flatnonzero(frac)[0])
        raise ObdError(
            f"{path}: column {column!r}, row {bad + 1}: {values[bad]!r} is not an integer"
        )
    return x.astype(np.int64)


def _codes(values: Sequence[str]) -> Floats:
    """The rank of each value among the column's distinct values, sorted as numbers when
    they all are numbers, else as strings (scikit-learn's LabelEncoder's order)."""
    if all(_is_number(v) for v in values):
        keys: npt.NDArray[Any] = np.array([float(v) for v in values])
    else:
        keys = np.array(values, dtype=object)
    _, codes = np.unique(keys, return_inverse=True)
    return codes.astype(np.float64)


def _one_hot(values: Sequence[str]) -> Floats:
    """One column per distinct value but the first in sorted order (pandas'
    ``get_dummies(drop_first=True)``)."""
    levels, codes = np.unique(np.array(values, dtype=object), return_inverse=True)
    return np.asarray(np.eye(len(levels))[codes][:, 1:], dtype=np.float64)


def _timestamps(path: Path, values: Sequence[str]) -> npt.NDArray[np.datetime64]:
    out = np.empty(len(values), dtype="datetime64[us]")
    for i, v in enumerate(values):
        try:
            t = datetime.fromisoformat(v)
        except ValueError:
            raise ObdError(
                f"{path}: column 'timestamp', row {i + 1}: {v!r} is not an ISO 8601 time"
            ) from None
        if t.tzinfo is not None:
            t = t.astimezone(UTC).replace(tzinfo=None)
        out[i] = np.datetime64(t, "us")
    return out


def _item_context(path: Path) -> Floats:
    header, rows = _read_csv(path)
    cols = [i for i, name in enumerate(header) if name != ""]  # the unnamed index
    names = [header[i] for i in cols]
    if "item_id" not in names or "item_feature_0" not in names:
        raise ObdError(f"{path}: columns 'item_id' and 'item_feature_0' are required")
    item_id = _integers(path, "item_id", [r[header.index("item_id")] for r in rows])
    k = len(rows)
    if sorted(item_id.tolist()) != list(range(k)):
        raise ObdError(f"{path}: item_id must be 0..{k - 1}, each once (one row per item)")
    order = np.argsort(item_id, kind="stable")
    features = [
        _codes([r[i] for r in rows])
        for i, name in zip(cols, names, strict=True)
        if name != "item_feature_0"
    ]
    i0 = header.index("item_feature_0")
    features.append(_numbers(path, "item_feature_0", [r[i0] for r in rows]))
    return np.column_stack(features)[order]


def load_obd(directory: str | Path) -> OpenBanditData:
    """Read one part of the Open Bandit Dataset, e.g. ``…/obd/random/all``.

    The directory holds the log, ``{name}.csv`` or ``{name}.csv.gz`` where ``name`` is the
    directory's name (the campaign), or else the only other ``*.csv``/``*.csv.gz`` file
    there; and ``item_context.csv`` (or ``.csv.gz``), in the directory or one level up.
    Raises :class:`ObdError` naming the file, column and row at fault.

    >>> from pathlib import Path
    >>> import octobandit
    >>> root = Path(octobandit.__file__).parents[2] / "tests" / "data" / "obd"
    >>> data = load_obd(root / "random" / "all")
    >>> data.n_rounds, data.n_actions, data.len_list, data.context.shape
    (10000, 80, 3, (10000, 20))
    """
    d = Path(directory)
    if not d.is_dir():
        raise ObdError(f"{d}: not a directory (expected an OBD part such as random/all)")
    log = _find(d, d.name)
    if log is None:
        others = sorted(
            p
            for p in d.iterdir()
            if p.name.endswith((".csv", ".csv.gz")) and not p.name.startswith("item_context.")
        )
        if len(others) != 1:
            raise ObdError(
                f"{d}: expected the log {d.name}.csv (or .csv.gz) or a single other CSV file; "
                f"found {[p.name for p in others] or 'none'}"
            )
        log = others[0]
    items = _find(d, "item_context") or _find(d.parent, "item_context")
    if items is None:
        raise ObdError(f"{d}: item_context.csv (or .csv.gz) is missing, here and one level up")

    header, rows = _read_csv(log)
    cols = {name: _column(log, header, name) for name in _LOG_COLUMNS}
    user = [i for i, name in enumerate(header) if name.startswith("user_feature")]
    if not user:
        raise ObdError(f"{log}: no user_feature_* column")
    texts = [r[cols["timestamp"]] for r in rows]
    stamps = _timestamps(log, texts)
    # obp (pandas' sort_values) sorts the timestamp strings with NumPy's quicksort: the same
    # here, so that rows at the same time come in obp's order (and fall in the same folds),
    # unless the strings' order is not the times' (mixed offsets): then by time, stably
    order = np.argsort(np.array(texts, dtype=object), kind="quicksort")
    if (np.diff(stamps[order]) < np.timedelta64(0, "us")).any():
        order = np.argsort(stamps, kind="stable")
    rows = [rows[i] for i in order]
    stamps = stamps[order]

    action = _integers(log, "item_id", [r[cols["item_id"]] for r in rows])
    if (action < 0).any():
        bad = int(np.flatnonzero(action < 0)[0])
        raise ObdError(f"{log}: column 'item_id': {action[bad]} is negative")
    raw_position = _numbers(log, "position", [r[cols["position"]] for r in rows])
    levels, position = np.unique(raw_position, return_inverse=True)
    reward = _numbers(log, "click", [r[cols["click"]] for r in rows])
    pscore = _numbers(log, "propensity_score", [r[cols["propensity_score"]] for r in rows])
    bad_p = (pscore <= 0) | (pscore > 1)
    if bad_p.any():
        i = int(np.flatnonzero(bad_p)[0])
        raise ObdError(
            f"{log}: column 'propensity_score': {pscore[i]} is not in (0, 1] (a propensity)"
        )
    numeric: list[Floats] = []
    dummies: list[Floats] = []
    for i in user:
        values = [r[i] for r in rows]
        if all(_is_number(v) for v in values):
            numeric.append(_numbers(log, header[i], values)[:, np.newaxis])
        else:
            dummies.append(_one_hot(values))
    context = np.hstack(numeric + dummies)
    action_context = _item_context(items)
    if action.max() >= action_context.shape[0]:
        raise ObdError(
            f"{log}: column 'item_id': item_id {action.max()} but {items.name} has only "
            f"{action_context.shape[0]} items (0..{action_context.shape[0] - 1})"
        )
    return OpenBanditData(
        n_rounds=len(rows),
        n_actions=int(action_context.shape[0]),
        len_list=len(levels),
        action=action,
        position=position.astype(np.int64),
        reward=reward,
        pscore=pscore,
        context=context,
        action_context=action_context,
        timestamp=stamps,
    )


def read_action_dist(
    path: str | Path,
    *,
    n_rounds: int | None = None,
    n_actions: int | None = None,
    len_list: int | None = None,
) -> Floats:
    """Read an evaluation policy's action distribution from a JSON file
    ``{"action_dist": …}``: nested lists of shape (K, L), the same in every round, or
    (n, K, L). Returns an array of that shape.

    Each ``[:, l]`` (over the actions) must be non-negative, finite and sum to 1; the
    given ``n_rounds``, ``n_actions`` and ``len_list`` are checked against the shape.
    Raises :class:`ObdError` saying what is wrong.
    """
    p = Path(path)
    try:
        doc = json.loads(p.read_bytes())
    except OSError as exc:
        raise ObdError(f"{p}: cannot be read: {exc.strerror or exc}") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise ObdError(f"{p}: not valid JSON: {exc}") from exc
    if not isinstance(doc, dict) or "action_dist" not in doc:
        raise ObdError(f'{p}: expected a JSON object {{"action_dist": [...]}}')
    raw = doc["action_dist"]
    try:
        arr = np.array(raw, dtype=np.float64)
    except (ValueError, TypeError):
        raise ObdError(
            f"{p}: action_dist must be nested lists of numbers of one shape, (K, L) or "
            "(n, K, L) (ragged lists or non-numbers found)"
        ) from None
    if arr.ndim not in (2, 3) or 0 in arr.shape or _has_bool(raw):
        raise ObdError(
            f"{p}: action_dist must have shape (K, L) (the same in every round) or "
            f"(n, K, L); got shape {arr.shape}"
        )
    k, l_ = arr.shape[-2:]
    if n_rounds is not None and arr.ndim == 3 and arr.shape[0] != n_rounds:
        raise ObdError(f"{p}: action_dist has {arr.shape[0]} rounds but the log has {n_rounds}")
    if n_actions is not None and k != n_actions:
        raise ObdError(
            f"{p}: action_dist has {k} actions but the log has {n_actions} (shape {arr.shape}; "
            "expected (K, L) or (n, K, L))"
        )
    if len_list is not None and l_ != len_list:
        raise ObdError(
            f"{p}: action_dist has {l_} positions but the log has {len_list} (shape {arr.shape};"
            " expected (K, L) or (n, K, L))"
        )
    if not np.isfinite(arr).all():
        raise ObdError(f"{p}: action_dist holds a value that is not a finite number")
    if (arr < 0).any():
        idx = tuple(int(i) for i in np.argwhere(arr < 0)[0])
        raise ObdError(f"{p}: action_dist{list(idx)} = {arr[idx]} is negative")
    sums = arr.sum(axis=-2)
    off = np.abs(sums - 1.0) > SUM_TOLERANCE
    if off.any():
        idx = tuple(int(i) for i in np.argwhere(off)[0])
        where = f"[{idx[0]}, :, {idx[1]}]" if arr.ndim == 3 else f"[:, {idx[0]}]"
        raise ObdError(
            f"{p}: action_dist{where} sums to {float(sums[idx])!r}, not 1: the probabilities "
            "of the actions at each position must sum to 1"
        )
    return arr


def _has_bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return True
    if isinstance(raw, list):
        return any(_has_bool(x) for x in raw)
    return False


def evaluate_obd(
    data: OpenBanditData,
    action_dist: npt.ArrayLike,
    *,
    n_folds: int = 3,
    n_bootstrap_samples: int = 1000,
    random_state: int = 12345,
) -> dict[str, dict[str, dict[str, Any]]]:
    """Evaluate an action distribution, (K, L) or (n, K, L), on a loaded OBD part with IPW,
    SNIPW, DM and DR: ``{"estimates": {"ipw": {"value": …, "ci95": [lo, hi]}, "snipw": …,
    "dm": …, "dr": …}}``.

    The reward model of DM and DR is obp's quickstart's: an L2-regularised logistic
    regression (``C = 1``, with an intercept: scikit-learn's ``LogisticRegression()``'s
    objective, solved to convergence by :class:`NewtonLogisticRegression`, NumPy only) per
    position on the context and the item's ``action_context``, with ``n_folds``-fold
    cross-fitting seeded by ``random_state`` (scikit-learn's ``KFold`` partition); the
    bootstrap intervals are seeded by ``random_state`` too. Neither scikit-learn nor obp is
    needed.
    """
    from octobandit.evaluation.estimators import (
        DirectMethod,
        DoublyRobust,
        InverseProbabilityWeighting,
        SelfNormalizedInverseProbabilityWeighting,
        evaluate,
    )
    from octobandit.evaluation.regression import NewtonLogisticRegression, RegressionModel

    pi = np.asarray(action_dist, dtype=np.float64)
    shape = (data.n_actions, data.len_list)
    if pi.shape == shape:
        pi = np.broadcast_to(pi, (data.n_rounds, *shape))
    elif pi.shape != (data.n_rounds, *shape):
        raise ObdError(
            f"action_dist has shape {pi.shape}; expected (K, L) = {shape} or (n, K, L) = "
            f"{(data.n_rounds, *shape)}"
        )
    model = RegressionModel(
        n_actions=data.n_actions,
        len_list=data.len_list,
        base_model=NewtonLogisticRegression(C=1.0),
        action_context=data.action_context,
    )
    q = model.fit_predict(
        data.context,
        data.action,
        data.reward,
        position=data.position,
        n_folds=n_folds,
        random_state=random_state,
    )
    estimates = evaluate(
        [
            InverseProbabilityWeighting(),
            SelfNormalizedInverseProbabilityWeighting(),
            DirectMethod(),
            DoublyRobust(),
        ],
        reward=data.reward,
        action=data.action,
        position=data.position,
        pscore=data.pscore,
        action_dist=pi,
        estimated_rewards_by_reg_model=q,
        n_bootstrap_samples=n_bootstrap_samples,
        random_state=random_state,
    )
    return {"estimates": estimates}
