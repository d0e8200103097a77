"""API keys: made, hashed and checked here; stored by the store (``api_keys``).

A key is ``ob_`` followed by 32 random bytes in URL-safe base64 (43 characters):
256 bits from :func:`secrets.token_urlsafe`. Only its SHA-256 is stored. A slow
password hash (bcrypt, scrypt, Argon2) protects *low-entropy* secrets against
guessing after a leak of the hashes; a 256-bit random key cannot be guessed
whatever the hash, so a fast hash loses nothing and keeps the check on the hot
path to about a microsecond. The key is shown once, at creation; what is listed
is its id and its first characters (``prefix``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass

from octobandit.errors import InvalidInput
from octobandit.model import ApiKeyRecord

#: the scopes, each naming what it allows (``admin`` allows everything)
SCOPES = ("read", "decide", "admin")
KEY_PREFIX = "ob_"
#: how many characters of a key are kept in clear to tell keys apart in listings
SHOWN_CHARS = 10


def key_hash(key: str) -> str:
    """The SHA-256 of a key, in hex (what the store keeps)."""
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request is: its scopes, and the experiments it is limited to (``None``: all)."""

    name: str
    scopes: frozenset[str]
    experiments: frozenset[str] | None = None

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes

    def may_touch(self, experiment_id: str) -> bool:
        return self.experiments is None or experiment_id in self.experiments


def check_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    """The scopes, deduplicated in :data:`SCOPES` order; unknown or none: an error."""
    given = {s.strip() for s in scopes if s.strip()}
    unknown = sorted(given - set(SCOPES))
    if unknown:
        raise InvalidInput(f"unknown scope {unknown[0]!r}: use {', '.join(SCOPES)}")
    if not given:
        raise InvalidInput(f"a key needs at least one scope of {', '.join(SCOPES)}")
    return tuple(s for s in SCOPES if s in given)


def new_key(
    name: str,
    scopes: Iterable[str],
    experiments: Iterable[str] | None = None,
    expires_at: float | None = None,
    now: float | None = None,
) -> tuple[str, ApiKeyRecord]:
    """A fresh key and its record (to store): the key itself is never stored."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    record = ApiKeyRecord(
        id="key_" + secrets.token_hex(6),
        prefix=key[:SHOWN_CHARS],
        hash=key_hash(key),
        name=name,
        scopes=check_scopes(scopes),
        experiments=None if experiments is None else tuple(sorted(set(experiments))),
        created_at=time.time() if now is None else now,
        expires_at=expires_at,
    )
    return key, record


class KeyTable:
    """The usable keys by hash, built from the store's records (a plain dict lookup).

    The dict is looked up with the SHA-256 of the presented key, which tells an
    attacker nothing about stored keys (timing reveals at most bits of a hash of
    their own guess); the stored hash is then compared with
    :func:`hmac.compare_digest`. A key found once is remembered by its text (at
    most one entry per stored key), so its next requests skip the SHA-256: Python
    compares the text of two strings only when their 64-bit hashes (SipHash, keyed
    with a random secret per process) are equal, which a guess cannot arrange.
    """

    def __init__(self, records: Iterable[ApiKeyRecord]) -> None:
        self.records: dict[str, ApiKeyRecord] = {r.hash: r for r in records if r.revoked_at is None}
        self._principals: dict[str, Principal] = {
            h: Principal(
                r.id,
                frozenset(r.scopes),
                None if r.experiments is None else frozenset(r.experiments),
            )
            for h, r in self.records.items()
        }
        self._known: dict[str, tuple[Principal, float | None]] = {}

    def __len__(self) -> int:
        return len(self.records)

    def find(self, key: str, now: float) -> Principal | None:
        """The key's principal, or ``None`` (unknown, revoked or expired)."""
        known = self._known.get(key)
        if known is None:
            digest = key_hash(key)
            record = self.records.get(digest)
            if record is None or not hmac.compare_digest(record.hash, digest):
                return None
            known = (self._principals[digest], record.expires_at)
            self._known[key] = known
        principal, expires_at = known
        if expires_at is not None and now >= expires_at:
            return None
        return principal
