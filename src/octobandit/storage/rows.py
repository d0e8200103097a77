"""Row encoding shared by the storage backends.

Both backends store JSON columns as text encoded the same way and decode
rows into the same records, so that a record read back from either one is
equal to the record written.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec

from octobandit.model import ApiKeyRecord, ArmRecord, DecisionRef, OpenDecision, decode_json

#: the arm columns in the order :func:`arm_record` reads them
ARM_COLUMNS = (
    "arm_id, payload, enabled, deleted, position, created_at,"
    " decisions, rewards, reward_sum, reward_sq_sum, prior, ips, shift"
)

encode = msgspec.json.Encoder().encode


def dumps(value: Any) -> bytes | None:
    """A JSON column's bytes (``None`` stays SQL NULL)."""
    return None if value is None else encode(value)


def json_text(value: Any) -> str | None:
    """A JSON column's text (``None`` stays SQL NULL)."""
    return None if value is None else encode(value).decode()


@functools.lru_cache(maxsize=1024)
def decision_data(eligible: int | None, policy: bool, version: str | None = None) -> bytes | None:
    """A decision event's ``data``: ``{"k": K}`` (enabled arms), ``"policy": false``
    when served without exploration, ``"version"``: the policy snapshot a local
    decision was made on (few distinct values: encoded once each)."""
    if eligible is None:
        return None
    data: dict[str, Any] = {"k": eligible}
    if not policy:
        data["policy"] = False
    if version is not None:
        data["version"] = version
    return encode(data)


@functools.lru_cache(maxsize=1024)
def decision_text(eligible: int | None, policy: bool, version: str | None = None) -> str | None:
    """:func:`decision_data` as text."""
    data = decision_data(eligible, policy, version)
    return None if data is None else data.decode()


@functools.lru_cache(maxsize=1024)
def decision_meta(data: bytes | str | None) -> tuple[int | None, bool]:
    """``(K, policy)`` of a decision event's ``data`` (``(None, True)`` for a decision
    logged before these were recorded)."""
    value = decode_json(data)
    if not isinstance(value, dict) or not isinstance(value.get("k"), int):
        return None, True
    return value["k"], value.get("policy", True) is not False


def arm_record(row: tuple[Any, ...]) -> ArmRecord:
    """An :class:`ArmRecord` from a row of :data:`ARM_COLUMNS`."""
    return ArmRecord(
        arm_id=row[0],
        payload=decode_json(row[1]),
        enabled=bool(row[2]),
        deleted=bool(row[3]),
        position=row[4],
        created_at=row[5],
        decisions=row[6],
        rewards=row[7],
        reward_sum=row[8],
        reward_sq_sum=row[9],
        prior=decode_json(row[10]),
        ips=decode_json(row[11]),
        shift=row[12],
    )


def open_rows(rows: Iterable[Sequence[Any]], before_ts: float) -> list[OpenDecision]:
    """:class:`OpenDecision` records from ``(seq, ts, decision_id, arm_id, propensity,
    context, data, rewarded, parts, part_sum)`` rows in log order, up to the first
    decision made at or after ``before_ts`` (its window is still open)."""
    out: list[OpenDecision] = []
    for seq, ts, decision_id, arm_id, propensity, context, data, rewarded, parts, total in rows:
        if ts >= before_ts:
            break
        eligible, policy = decision_meta(data)
        ref = DecisionRef(arm_id, bool(rewarded), propensity, context, eligible, policy, ts, seq)
        out.append(OpenDecision(seq, decision_id, ref, bool(rewarded), int(parts), float(total)))
    return out


#: the columns of the ``api_keys`` table, in the order :func:`api_key_record` reads them
API_KEY_COLUMNS = "id, prefix, hash, name, scopes, experiments, created_at, expires_at, revoked_at"


def api_key_row(key: ApiKeyRecord) -> tuple[Any, ...]:
    """An API key's column values (scopes and experiments as JSON text)."""
    return (
        key.id,
        key.prefix,
        key.hash,
        key.name,
        json_text(list(key.scopes)),
        None if key.experiments is None else json_text(list(key.experiments)),
        key.created_at,
        key.expires_at,
        key.revoked_at,
    )


def api_key_record(row: Sequence[Any]) -> ApiKeyRecord:
    """An :class:`ApiKeyRecord` from a row of :data:`API_KEY_COLUMNS`."""
    experiments = decode_json(row[5])
    return ApiKeyRecord(
        id=row[0],
        prefix=row[1],
        hash=row[2],
        name=row[3],
        scopes=tuple(decode_json(row[4])),
        experiments=None if experiments is None else tuple(experiments),
        created_at=float(row[6]),
        expires_at=None if row[7] is None else float(row[7]),
        revoked_at=None if row[8] is None else float(row[8]),
    )
