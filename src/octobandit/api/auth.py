"""Authentication: the outermost pure-ASGI layer (``octobandit serve --auth``).

Every request but ``GET /healthz`` (and ``/metrics`` when it is public, and the
dashboard's static files under ``/ui/``, which hold no data) needs
``Authorization: Bearer <token>``: an API key (``ob_…``, see
:mod:`octobandit.api.keys`) or, when configured, a JWT. What a route needs:

- ``read``: ``GET`` (and ``HEAD``) anywhere, ``/docs`` and ``/openapi.json`` included;
- ``decide``: ``POST`` on an experiment's ``decisions``, ``rewards`` and
  ``decisions/logged``;
- ``admin``: everything else (creating, changing, deleting, resetting, statistics
  overrides). An ``admin`` key may do everything.

A key limited to some experiments is refused (403) on a route naming another
experiment, on ``/v1`` routes naming none (creating an experiment, deleting
them all) and on ``/metrics`` (which counts every experiment), except the list
``GET /v1/experiments``, which it sees filtered to its experiments.

A refused request is answered before anything reads its body: 401 (no token, or
one that is unknown, revoked, expired or badly signed) or 403 (scope or
experiment), JSON ``{"error": {"code", "message"}}`` with ``WWW-Authenticate:
Bearer``. Failed authentications (401) are counted per client address in a token
bucket: past the burst, the address gets 429 with ``Retry-After`` until the
bucket refills. Each failure is logged with the address, method, path and
reason, never the token.

The keys are read from the store through the engine (one call for all of them)
into a dict by hash: no storage read per request. The table is refreshed in the
background once it is ``ttl`` seconds old and reloaded before answering once it
is ``2 × ttl`` old, so a new or revoked key takes effect within ``2 × ttl``
seconds on every worker and replica.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from octobandit.api.keys import KEY_PREFIX, SCOPES, KeyTable, Principal
from octobandit.model import ApiKeyRecord
from octobandit.wire import error_body

log = logging.getLogger("octobandit.auth")

_READ_METHODS = frozenset({"GET", "HEAD"})
_DECIDE_ACTIONS = frozenset({"decisions", "rewards", "decisions/logged"})
_EXPERIMENTS = "/v1/experiments/"
#: how long the last key table is used when reloading it fails (then 503)
MAX_STALE = 30.0


def requirement(method: str, path: str, *, public_metrics: bool) -> tuple[str | None, str | None]:
    """``(scope, experiment_id)`` a request needs: scope ``None`` for a public route;
    the experiment the path names, if any."""
    if path == "/healthz" or (path == "/metrics" and public_metrics):
        return None, None
    if method in _READ_METHODS and (path == "/ui" or path.startswith("/ui/")):
        return None, None  # the dashboard's static files: no data in them
    experiment_id: str | None = None
    action = ""
    if path.startswith(_EXPERIMENTS):
        experiment_id, _, action = path[len(_EXPERIMENTS) :].partition("/")
        experiment_id = experiment_id or None
    if method in _READ_METHODS:
        return "read", experiment_id
    if method == "POST" and experiment_id is not None and action in _DECIDE_ACTIONS:
        return "decide", experiment_id
    return "admin", experiment_id


def _bearer(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    for key, value in headers:
        if key == b"authorization":
            scheme, _, token = value.decode("latin-1").strip().partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            return None
    return None


def _answer(
    status: int, code: str, message: str, extra: list[tuple[bytes, bytes]]
) -> list[Message]:
    body = error_body(code, message)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *extra,
    ]
    return [
        {"type": "http.response.start", "status": status, "headers": headers},
        {"type": "http.response.body", "body": body},
    ]


class KeyCache:
    """The key table of one worker, reloaded from the store every ``ttl`` seconds."""

    def __init__(
        self,
        load: Callable[[], Awaitable[list[ApiKeyRecord]]],
        ttl: float,
        *,
        warn_if_empty: bool = False,
    ) -> None:
        self._load = load
        self.ttl = ttl
        #: log once when the store holds no usable key (and nothing else can authenticate)
        self.warn_if_empty = warn_if_empty
        self.table: KeyTable | None = None
        self.loaded = -math.inf
        self._task: asyncio.Task[None] | None = None

    def fresh(self) -> KeyTable | None:
        """The table if it is younger than ``ttl`` (no await on the hot path), else ``None``."""
        if time.monotonic() - self.loaded < self.ttl:
            return self.table
        return None

    async def get(self) -> KeyTable | None:
        """The table (``None``: never loaded and the store does not answer)."""
        age = time.monotonic() - self.loaded
        if age < self.ttl:
            return self.table
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._reload())
        if age >= 2 * self.ttl:  # too old to answer from: wait for the reload
            await asyncio.shield(self._task)
            if time.monotonic() - self.loaded > MAX_STALE:
                return None
        return self.table

    async def _reload(self) -> None:
        try:
            records = await self._load()
        except Exception:
            log.exception("auth: cannot reload the API keys (the last ones stay in use)")
            return
        self.table = KeyTable(records)
        self.loaded = time.monotonic()
        if self.warn_if_empty and not self.table:
            self.warn_if_empty = False
            log.warning(
                "auth: the store holds no usable API key: every request but /healthz gets 401"
                " (create one with 'octobandit keys create --store ... --scope admin')"
            )


class JwtVerifier:
    """Checks JWT bearer tokens: HS256 with a shared secret, or RS256/ES256 with the
    public keys of a JWKS file (picked by the token's ``kid``).

    ``exp`` is required; ``nbf``, ``aud`` (when ``audience`` is set) and ``iss``
    (when ``issuer`` is set) are checked. Scopes come from ``scope_claim`` (a
    space-separated string or a list; scopes other than ``read``, ``decide``,
    ``admin`` are ignored), the experiment limit from ``experiments_claim`` (a
    list; absent: every experiment). A verified token is remembered until it
    expires (at most 4,096 of them), so a client reusing its token is checked once.
    """

    MAX_CACHED = 4096

    def __init__(
        self,
        *,
        secret: str | None = None,
        jwks_file: str | None = None,
        audience: str | None = None,
        issuer: str | None = None,
        scope_claim: str = "scope",
        experiments_claim: str = "experiments",
        leeway: float = 0.0,
    ) -> None:
        import jwt  # the 'jwt' extra

        self._jwt = jwt
        self.secret = secret
        self.keys: dict[str | None, Any] = {}
        if jwks_file:
            keyset = jwt.PyJWKSet.from_dict(json.loads(Path(jwks_file).read_text()))
            for key in keyset.keys:
                self.keys[key.key_id] = key
            if len(keyset.keys) == 1:  # a token without a kid may use the only key
                self.keys.setdefault(None, keyset.keys[0])
        self.audience = audience
        self.issuer = issuer
        self.scope_claim = scope_claim
        self.experiments_claim = experiments_claim
        self.leeway = leeway
        self._cache: dict[str, tuple[Principal, float]] = {}

    def verify(self, token: str, now: float) -> tuple[Principal | None, str]:
        """The token's principal, or ``None`` and why it is refused."""
        cached = self._cache.get(token)
        if cached is not None:
            if now < cached[1] + self.leeway:
                return cached[0], ""
            del self._cache[token]
            return None, "token expired"
        jwt = self._jwt
        try:
            header = jwt.get_unverified_header(token)
            alg = header.get("alg")
            key: Any
            if alg == "HS256" and self.secret:
                key, algorithms = self.secret, ["HS256"]
            else:
                jwk = self.keys.get(header.get("kid"))
                if jwk is None or alg not in ("RS256", "ES256"):
                    return None, "no key for this token (kid or alg unknown)"
                key, algorithms = jwk.key, [jwk.algorithm_name]
            claims = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp"], "verify_aud": self.audience is not None},
            )
        except jwt.ExpiredSignatureError:
            return None, "token expired"
        except jwt.PyJWTError as exc:
            return None, f"invalid token: {exc}"
        except Exception:  # a token no check expected: refused, never a 500
            log.exception("auth: unexpected failure checking a JWT")
            return None, "invalid token"
        principal = Principal(
            f"jwt:{claims.get('sub', '?')}",
            frozenset(self._scopes(claims)),
            self._experiments(claims),
        )
        if len(self._cache) >= self.MAX_CACHED:
            self._cache.clear()
        self._cache[token] = (principal, float(claims["exp"]))
        return principal, ""

    def _scopes(self, claims: dict[str, Any]) -> list[str]:
        value = claims.get(self.scope_claim)
        if value is None and self.scope_claim == "scope":
            value = claims.get("scopes")
        if isinstance(value, str):
            value = value.split()
        if not isinstance(value, list):
            return []
        return [s for s in value if isinstance(s, str) and s in SCOPES]

    def _experiments(self, claims: dict[str, Any]) -> frozenset[str] | None:
        value = claims.get(self.experiments_claim)
        if value is None:
            return None
        if isinstance(value, str):
            value = value.split()
        if not isinstance(value, list):
            return frozenset()  # a malformed limit limits to nothing
        return frozenset(v for v in value if isinstance(v, str))


class FailureLimiter:
    """A token bucket of failed authentications per client address: ``burst`` failures,
    refilled at ``burst`` per minute. An empty bucket answers 429."""

    MAX_ADDRESSES = 10_000

    def __init__(self, burst: int) -> None:
        self.burst = float(burst)
        self.rate = burst / 60.0
        self._buckets: dict[str, tuple[float, float]] = {}

    def _tokens(self, address: str, now: float) -> float:
        tokens, at = self._buckets.get(address, (self.burst, now))
        return min(self.burst, tokens + (now - at) * self.rate)

    def retry_after(self, address: str, now: float) -> int | None:
        """Seconds to wait, if the address has used up its failures; else ``None``."""
        if address not in self._buckets:
            return None
        tokens = self._tokens(address, now)
        if tokens >= 1.0:
            return None
        return max(1, math.ceil((1.0 - tokens) / self.rate)) if self.rate > 0 else 60

    def fail(self, address: str, now: float) -> None:
        if len(self._buckets) >= self.MAX_ADDRESSES and address not in self._buckets:
            # forget the addresses whose buckets are full again
            self._buckets = {
                a: b for a, b in self._buckets.items() if self._tokens(a, now) < self.burst
            }
            if len(self._buckets) >= self.MAX_ADDRESSES:
                self._buckets.clear()
        self._buckets[address] = (self._tokens(address, now) - 1.0, now)


class Auth:
    """The ASGI layer (see the module docstring); ``app`` is the whole service."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        keys: KeyCache,
        jwt: JwtVerifier | None = None,
        failures: FailureLimiter,
        public_metrics: bool = False,
    ) -> None:
        self.app = app
        self.keys = keys
        self.jwt = jwt
        self.failures = failures
        self.public_metrics = public_metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await self.app(scope, receive, send)
            return  # no websocket routes: nothing else is served
        method: str = scope["method"]
        path: str = scope["path"]
        need, experiment_id = requirement(method, path, public_metrics=self.public_metrics)
        if need is None:
            await self.app(scope, receive, send)
            return
        token = _bearer(scope["headers"])
        now = time.time()
        principal: Principal | None = None
        reason = "no bearer token (Authorization: Bearer <key>)"
        if token is not None:
            if token.startswith(KEY_PREFIX):
                table = self.keys.fresh()
                if table is None:
                    table = await self.keys.get()
                if table is None:
                    await self._unavailable(send)
                    return
                principal = table.find(token, now)
                reason = "unknown, revoked or expired API key"
            elif self.jwt is not None and token.count(".") == 2:
                principal, reason = self.jwt.verify(token, now)
            else:
                reason = "not an API key" + (" or a JWT" if self.jwt is not None else "")
        if principal is None:
            await self._unauthorized(scope, send, reason, token is not None)
            return
        if not principal.allows(need):
            await self._forbidden(
                send, "insufficient_scope", f"this route needs the {need!r} scope", need
            )
            return
        if principal.experiments is not None:
            if experiment_id is not None:
                if experiment_id not in principal.experiments:
                    await self._forbidden(
                        send, "forbidden", f"this key may not use experiment {experiment_id!r}"
                    )
                    return
            elif path == "/v1/experiments" and method in _READ_METHODS:
                await self.app(scope, receive, _filtered(send, principal.experiments))
                return
            elif path.startswith("/v1/") or path == "/metrics":  # metrics: every experiment's
                await self._forbidden(
                    send, "forbidden", "a key limited to some experiments cannot use this route"
                )
                return
        await self.app(scope, receive, send)

    async def _unauthorized(self, scope: Scope, send: Send, reason: str, sent: bool) -> None:
        client = scope.get("client")
        address = str(client[0]) if client else "?"
        now = time.monotonic()
        wait = self.failures.retry_after(address, now)
        if wait is not None:
            for message in _answer(
                429,
                "too_many_failures",
                f"too many failed authentications from {address}: retry in {wait} s",
                [(b"retry-after", str(wait).encode())],
            ):
                await send(message)
            return
        self.failures.fail(address, now)
        log.warning(
            "auth: refused %s %s from %s: %s", scope["method"], scope["path"], address, reason
        )
        challenge = b'Bearer realm="octobandit"'
        if sent:
            challenge += b', error="invalid_token"'
        for message in _answer(401, "unauthorized", reason, [(b"www-authenticate", challenge)]):
            await send(message)

    async def _forbidden(self, send: Send, code: str, message: str, scope: str = "") -> None:
        challenge = b'Bearer realm="octobandit", error="insufficient_scope"'
        if scope:
            challenge += f', scope="{scope}"'.encode()
        for out in _answer(403, code, message, [(b"www-authenticate", challenge)]):
            await send(out)

    async def _unavailable(self, send: Send) -> None:
        for out in _answer(
            503, "auth_unavailable", "the API keys cannot be read from the store", []
        ):
            await send(out)


def document_security(document: dict[str, Any], *, public_metrics: bool) -> None:
    """Describe the bearer authentication in an OpenAPI document (served under --auth):
    the scheme, each operation's scope, and its 401, 403 and 429 answers."""
    document.setdefault("components", {}).setdefault("securitySchemes", {})["bearer"] = {
        "type": "http",
        "scheme": "bearer",
        "description": "an API key (octobandit keys create) or a JWT; scopes: read, "
        "decide, admin (see docs/security.md)",
    }
    error = {"$ref": "#/components/schemas/ErrorBody"}
    answers = {
        "401": "no bearer token, or an unknown, revoked, expired or badly signed one",
        "403": "the key lacks the scope, or may not use this experiment",
        "429": "too many failed authentications from this address (Retry-After)",
    }
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            if not isinstance(operation, dict):
                continue
            need, _ = requirement(method.upper(), path, public_metrics=public_metrics)
            if need is None:
                operation["security"] = []
                continue
            operation["security"] = [{"bearer": [need]}]
            responses = operation.setdefault("responses", {})
            for status, text in answers.items():
                responses.setdefault(
                    status,
                    {"description": text, "content": {"application/json": {"schema": error}}},
                )


def _filtered(send: Send, allowed: frozenset[str]) -> Send:
    """A ``send`` that keeps, of an experiment list answer, the allowed experiments."""
    start: Message | None = None
    chunks: list[bytes] = []

    async def filtered_send(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start":
            start = message
            return
        if message["type"] != "http.response.body" or start is None:
            await send(message)
            return
        chunks.append(message.get("body", b""))
        if message.get("more_body", False):
            return
        body = b"".join(chunks)
        if start["status"] == 200:
            document = json.loads(body)
            document["experiments"] = [
                e for e in document.get("experiments", []) if e.get("id") in allowed
            ]
            body = json.dumps(document, separators=(",", ":")).encode()
        headers = [(k, v) for k, v in start["headers"] if k != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return filtered_send
