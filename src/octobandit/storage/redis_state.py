"""Per-arm statistics and sticky assignments in Redis (or a Redis Cluster).

:class:`RedisState` knows keys and scripts only;
:class:`~octobandit.storage.postgres_redis.PostgresRedisStorage` decides when to
call it. Each experiment has two hashes sharing one hash tag, so that a
cluster keeps them on one shard and spreads experiments over shards:

* ``{prefix}:{<experiment>}:arms``: ``d|<arm>`` decisions, ``n|<arm>`` reward
  count, ``s|<arm>`` reward sum, ``q|<arm>`` squares about the shift,
  ``c|<arm>`` the shift, ``i|<arm>`` the 13 importance-weighted sums
  (comma-separated), and ``@``, present while the state is complete (a
  flushed or emptied shard loses it, which asks for a rebuild from the log);
* ``{prefix}:{<experiment>}:units``: ``<unit>`` → ``<propensity>|<arm>``.

Floats are written with 17 significant digits, so they read back exactly.
Increments are applied by a Lua script (atomic on its shard), re-centring the
squares onto the stored shift as the SQL stores do (see ``ArmStatsDelta``).

URLs: ``redis://``, ``rediss://`` (TLS), and ``redis+cluster://`` or
``rediss+cluster://`` for a Redis Cluster (any node's address); ``?prefix=NAME``
names the key prefix (default ``octobandit``), so that deployments can share
one Redis.

redis-py is imported here only (the ``redis`` extra).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
from redis.cluster import RedisCluster

from octobandit.errors import StorageUnavailable, StorageUnusable
from octobandit.model import ArmRecord, ArmStatsDelta, ArmStatsRow

log = logging.getLogger("octobandit.storage")

SCHEMES = ("redis://", "rediss://", "redis+cluster://", "rediss+cluster://", "unix://")

#: the number of importance-weighted sums (see ``storage.fold.IPS_SUMS``)
_IPS = 13

_APPLY = """
-- KEYS: arms hash, units hash[, marker]. ARGV: the marker's new value (with the
-- marker key), number of arms; per arm: id, decisions, n, s, squares about c, sum of
-- deviations about c, c, number of ips values, the values; then unit, value pairs.
-- Returns 0 (nothing applied, marker untouched) when the state is incomplete.
if redis.call('HEXISTS', KEYS[1], '@') == 0 then return 0 end
local function fmt(x) return string.format('%.17g', x) end
local function num(field) return tonumber(redis.call('HGET', KEYS[1], field) or '0') end
local i = 3
for _ = 1, tonumber(ARGV[2]) do
  local arm = ARGV[i]
  local d = tonumber(ARGV[i + 1])
  local n, s, q, cs, c = tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3]),
    tonumber(ARGV[i + 4]), tonumber(ARGV[i + 5]), tonumber(ARGV[i + 6])
  local nips = tonumber(ARGV[i + 7])
  if d ~= 0 then redis.call('HINCRBY', KEYS[1], 'd|' .. arm, d) end
  local n0 = num('n|' .. arm)
  local q2, c2 = q, c
  if n0 ~= 0 then
    c2 = num('c|' .. arm)
    q2 = num('q|' .. arm) + q + 2 * (c - c2) * cs + n * (c - c2) * (c - c2)
  end
  redis.call('HSET', KEYS[1], 'n|' .. arm, fmt(n0 + n), 's|' .. arm, fmt(num('s|' .. arm) + s),
    'q|' .. arm, fmt(q2), 'c|' .. arm, fmt(c2))
  if nips > 0 then
    local old = {}
    local stored = redis.call('HGET', KEYS[1], 'i|' .. arm)
    if stored then
      for v in string.gmatch(stored, '[^,]+') do old[#old + 1] = tonumber(v) end
    end
    local out = {}
    for k = 1, nips do out[k] = fmt(tonumber(ARGV[i + 7 + k]) + (old[k] or 0)) end
    for k = nips + 1, #old do out[k] = fmt(old[k]) end
    redis.call('HSET', KEYS[1], 'i|' .. arm, table.concat(out, ','))
  end
  i = i + 8 + nips
end
while i < #ARGV do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  i = i + 2
end
if KEYS[3] then redis.call('SET', KEYS[3], ARGV[1]) end
return 1
"""

_REPLACE = """
-- KEYS: arms hash, units hash. ARGV: number of arm fields (pairs), the pairs, then
-- unit, value pairs. Replaces both hashes; marks the state complete.
redis.call('DEL', KEYS[1], KEYS[2])
local pairs_n = tonumber(ARGV[1])
local i = 2
redis.call('HSET', KEYS[1], '@', '1')
for _ = 1, pairs_n do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  i = i + 2
end
while i < #ARGV do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  i = i + 2
end
return 1
"""

_SET_ARM = """
-- KEYS: arms hash. ARGV: arm, decisions, n, s, q, c. Overwrites one arm; drops its ips.
redis.call('HSET', KEYS[1], 'd|' .. ARGV[1], ARGV[2], 'n|' .. ARGV[1], ARGV[3],
  's|' .. ARGV[1], ARGV[4], 'q|' .. ARGV[1], ARGV[5], 'c|' .. ARGV[1], ARGV[6])
redis.call('HDEL', KEYS[1], 'i|' .. ARGV[1])
return redis.call('HEXISTS', KEYS[1], '@')
"""

_FIND = """
-- KEYS: arms hash, units hash. ARGV: units. {0} when the state is incomplete, else
-- {1, value or false per unit}.
if redis.call('HEXISTS', KEYS[1], '@') == 0 then return {0} end
local out = redis.call('HMGET', KEYS[2], unpack(ARGV))
table.insert(out, 1, 1)
return out
"""

REDIS_ERRORS: tuple[type[BaseException], ...] = (redis.RedisError,)


def _f(x: float) -> str:
    return repr(float(x))


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def unavailable(exc: BaseException) -> StorageUnavailable:
    """The :class:`StorageUnavailable` (code ``state_unavailable``) of a failed call."""
    return StorageUnavailable(
        f"state store unavailable (Redis: {_one_line(exc)}): nothing was written",
        code="state_unavailable",
    )


def _where(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}:{parts.port or 6379}"


class RedisState:
    """The state store (see the module docstring). ``timeout`` bounds every call (s)."""

    def __init__(self, url: str, *, timeout: float = 5.0) -> None:
        if not url.startswith(SCHEMES):
            raise StorageUnusable(
                f"unknown state store {url.split('://', 1)[0]}://: use redis://, rediss://,"
                " redis+cluster:// or rediss+cluster://"
            )
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        self.prefix = query.pop("prefix", "octobandit")
        if not self.prefix or "{" in self.prefix or "}" in self.prefix:
            raise StorageUnusable("the state store's prefix must be non-empty, without { }")
        self.cluster = cluster = parts.scheme.endswith("+cluster")
        scheme = parts.scheme.removesuffix("+cluster")
        plain = urlunsplit((scheme, parts.netloc, parts.path, urlencode(query), ""))
        self.where = _where(url)
        options: dict[str, Any] = {
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
            "decode_responses": True,
        }
        try:
            self.client: Any = (
                RedisCluster.from_url(plain, **options)
                if cluster
                else redis.Redis.from_url(plain, health_check_interval=30, **options)
            )
            self.client.ping()
        except REDIS_ERRORS as exc:
            raise StorageUnusable(f"cannot use {self.where}: {_one_line(exc)}") from exc
        self._apply = self.client.register_script(_APPLY)
        self._replace = self.client.register_script(_REPLACE)
        self._set_arm = self.client.register_script(_SET_ARM)
        self._find = self.client.register_script(_FIND)
        self.marker_key = f"{self.prefix}:{{{self.prefix}}}:applied"

    # -- keys ----------------------------------------------------------------
    def _tag(self, experiment_id: str) -> str:
        if "{" in experiment_id or "}" in experiment_id:
            return hashlib.sha256(experiment_id.encode()).hexdigest()[:32]
        return experiment_id

    def keys(self, experiment_id: str) -> tuple[str, str]:
        """The experiment's arms and units hashes (one hash tag: one shard)."""
        base = f"{self.prefix}:{{{self._tag(experiment_id)}}}"
        return f"{base}:arms", f"{base}:units"

    # -- the store-wide marker -----------------------------------------------
    def marker(self) -> int | None:
        """The store version the state was last brought up to (``None``: never, or lost)."""
        value = self._call(self.client.get, self.marker_key)
        return None if value is None else int(value)

    def set_marker(self, version: int) -> None:
        self._call(self.client.set, self.marker_key, str(version))

    # -- reads ---------------------------------------------------------------
    def arms(self, experiment_ids: Sequence[str]) -> dict[str, dict[str, ArmStatsRow] | None]:
        """Each experiment's stored arms (``None``: the state is incomplete, rebuild it)."""
        out: dict[str, dict[str, ArmStatsRow] | None] = {}
        for experiment_id in experiment_ids:
            raw = self._call(self.client.hgetall, self.keys(experiment_id)[0])
            out[experiment_id] = _parse_arms(raw) if "@" in raw else None
        return out

    def overlay(self, arms: Iterable[ArmRecord], stored: Mapping[str, ArmStatsRow]) -> None:
        """Set each arm record's statistics to the stored ones (zero when absent)."""
        for arm in arms:
            row = stored.get(arm.arm_id)
            if row is None:
                arm.decisions, arm.rewards, arm.reward_sum, arm.reward_sq_sum = 0, 0.0, 0.0, 0.0
                arm.ips, arm.shift = None, 0.0
            else:
                arm.decisions, arm.rewards = row.decisions, row.rewards
                arm.reward_sum, arm.reward_sq_sum = row.reward_sum, row.reward_sq_sum
                arm.ips, arm.shift = row.ips, row.shift

    def find_assignments(
        self, experiment_id: str, unit_ids: Sequence[str]
    ) -> dict[str, tuple[str, float]] | None:
        """The units' stored ``(arm, propensity)`` (``None``: the state is incomplete)."""
        units = list(dict.fromkeys(unit_ids))
        if not units:
            return {}
        found = self._call(self._find, keys=list(self.keys(experiment_id)), args=units)
        if not found or found[0] == 0:
            return None
        values = found[1:]
        out: dict[str, tuple[str, float]] = {}
        for unit, value in zip(units, values, strict=True):
            if value is not None:
                p, arm = value.split("|", 1)
                out[unit] = (arm, float(p))
        return out

    # -- writes --------------------------------------------------------------
    def apply(
        self,
        experiment_id: str,
        deltas: Sequence[ArmStatsDelta],
        assignments: Mapping[str, tuple[str, float]],
        marker: int | None = None,
    ) -> bool:
        """Add the deltas and set the assignments atomically; False if the state is
        incomplete (nothing applied: rebuild it from the log).

        With ``marker``, the marker is set too, in the same call when the marker can
        share the script (a single Redis; a cluster keeps it on another shard).
        """
        keys = list(self.keys(experiment_id))
        if marker is not None and not self.cluster:
            keys.append(self.marker_key)
        args: list[Any] = ["" if marker is None else str(marker), len(deltas)]
        for d in deltas:
            ips = list(d.ips or ())
            args += [d.arm_id, int(d.decisions), _f(d.rewards), _f(d.reward_sum)]
            args += [_f(d.reward_sq_sum), _f(d.centred_sum), _f(d.shift), len(ips)]
            args += [_f(x) for x in ips]
        args += _unit_fields(assignments)
        applied = bool(self._call(self._apply, keys=keys, args=args))
        if applied and marker is not None and self.cluster:
            self.set_marker(marker)
        return applied

    def replace(
        self,
        experiment_id: str,
        rows: Iterable[ArmStatsRow],
        assignments: Mapping[str, tuple[str, float]],
    ) -> None:
        """Make the experiment's state exactly these rows and assignments (complete)."""
        fields: list[str] = []
        for r in rows:
            a = r.arm_id
            fields += [f"d|{a}", str(int(r.decisions)), f"n|{a}", _f(r.rewards)]
            fields += [f"s|{a}", _f(r.reward_sum), f"q|{a}", _f(r.reward_sq_sum)]
            fields += [f"c|{a}", _f(r.shift)]
            if r.ips is not None:
                fields += [f"i|{a}", ",".join(_f(x) for x in r.ips)]
        args: list[Any] = [len(fields) // 2, *fields, *_unit_fields(assignments)]
        self._call(self._replace, keys=list(self.keys(experiment_id)), args=args)

    def set_arm(self, experiment_id: str, row: ArmStatsRow) -> bool:
        """Overwrite one arm (its ips sums dropped); False if the state is incomplete."""
        args = [row.arm_id, str(int(row.decisions)), _f(row.rewards), _f(row.reward_sum)]
        args += [_f(row.reward_sq_sum), _f(row.shift)]
        return bool(self._call(self._set_arm, keys=[self.keys(experiment_id)[0]], args=args))

    def delete(self, experiment_ids: Iterable[str]) -> None:
        for experiment_id in experiment_ids:
            self._call(self.client.delete, *self.keys(experiment_id))

    # -- plumbing ------------------------------------------------------------
    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except REDIS_ERRORS as exc:
            raise unavailable(exc) from exc

    def ping(self) -> None:
        self._call(self.client.ping)

    def close(self) -> None:
        self.client.close()


def _unit_fields(assignments: Mapping[str, tuple[str, float]]) -> list[str]:
    """Unit, ``<propensity>|<arm>`` pairs for the units hash."""
    out: list[str] = []
    for unit, (arm, p) in assignments.items():
        out += [unit, f"{_f(p)}|{arm}"]
    return out


def _parse_arms(raw: Mapping[str, str]) -> dict[str, ArmStatsRow]:
    out: dict[str, ArmStatsRow] = {}
    for field, value in raw.items():
        kind, sep, arm = field.partition("|")
        if not sep:
            continue
        row = out.get(arm)
        if row is None:
            row = out[arm] = ArmStatsRow(arm, 0, 0.0, 0.0, 0.0, None, 0.0)
        if kind == "d":
            row.decisions = int(value)
        elif kind == "n":
            row.rewards = float(value)
        elif kind == "s":
            row.reward_sum = float(value)
        elif kind == "q":
            row.reward_sq_sum = float(value)
        elif kind == "c":
            row.shift = float(value)
        elif kind == "i":
            row.ips = [float(x) for x in value.split(",")]
    return out
