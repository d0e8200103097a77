"""FastAPI and Starlette: the arm of an experiment for a view, and its reward.

:class:`Bandit` is one experiment served to an ASGI app. As a FastAPI dependency it
gives the view an :class:`Assignment` (the arm, its payload, the decision id); in
Starlette (or anywhere with a request) ``await bandit.assign(request)`` does the same.
``await bandit.reward(request, value)`` rewards the decision the request carries.

Stickiness: the unit (the user) is the value of ``unit_header`` (say ``X-User-Id``)
when the request has it, else the ``octobandit_unit`` cookie, which is set on the
first visit. A unit keeps its arm (the engine remembers each unit's first draw); each
serving is a decision of its own. The decision id travels back to the client in a
cookie (``octobandit_<experiment>``) and in the ``X-Octobandit-Decision`` response
header, so a later request (a click, a purchase) can name it: the reward goes to the
last decision served to that client, or to the one an API client sends back in the
``X-Octobandit-Decision`` request header.

Cookies and headers are written by :class:`BanditMiddleware` (a pure ASGI
middleware, so any response works, streaming ones too) when the app has it, else onto
the response FastAPI hands to dependencies (which FastAPI merges into the view's
answer unless the view returns a ``Response`` itself), or onto the ``response`` given
to :meth:`Bandit.assign`.

Nothing blocks the event loop: the embedded engine's calls run in worker threads
(:class:`~octobandit.integrations.aio.ThreadedBandits`) and a remote service is reached
with the SDK's ``AsyncClient`` (:func:`~octobandit.integrations.aio.connect_async`).

A runnable example (``uvicorn app:app``)::

    from typing import Annotated

    from fastapi import Depends, FastAPI, Request

    from octobandit.integrations.aio import connect_async
    from octobandit.integrations.asgi import Assignment, Bandit, BanditMiddleware

    bandit = Bandit(
        connect_async("octobandit.db"),  # or "http://octobandit:8000"
        {
            "id": "cta",
            "arms": [{"id": "buy", "payload": "Buy now"}, {"id": "try", "payload": "Try it"}],
            "reward": {"type": "binary", "attribution_window": 3600, "default": 0},
        },
        unit_header="X-User-Id",
    )
    app = FastAPI()
    app.add_middleware(BanditMiddleware)

    @app.get("/")
    async def home(arm: Annotated[Assignment, Depends(bandit)]) -> dict[str, str]:
        return {"button": arm.payload}

    @app.post("/signup")
    async def signup(request: Request) -> dict[str, bool]:
        answer = await bandit.reward(request, 1.0)
        return {"counted": bool(answer and answer.accepted)}
"""

from __future__ import annotations

import hashlib
import inspect
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from octobandit import errors, wire
from octobandit.integrations.aio import AsyncBandits, ThreadedBandits
from octobandit.integrations.backend import Bandits

#: where :class:`BanditMiddleware` collects the headers the views' assignments add
SCOPE_KEY = "octobandit.headers"

UNIT_COOKIE = "octobandit_unit"
#: a longer unit id (header or cookie) is replaced by its SHA-256, so that it stays sticky
#: within the engine's limit on unit ids (256 characters)
MAX_UNIT_CHARS = 128
DECISION_HEADER = "X-Octobandit-Decision"


@dataclass(frozen=True)
class Assignment:
    """The arm a request was given: serve ``payload`` (or act on ``arm_id``)."""

    experiment_id: str
    arm_id: str
    payload: Any
    decision_id: str
    propensity: float
    unit_id: str


class BanditMiddleware:
    """Writes the cookies and headers of the assignments made while handling a request
    onto its response, whatever the response is: ``app.add_middleware(BanditMiddleware)``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra: list[tuple[bytes, bytes]] = []
        scope[SCOPE_KEY] = extra

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start" and extra:
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class Bandit:
    """One experiment served to an ASGI app (see the module's documentation).

    ``bandits``: an :class:`~octobandit.integrations.aio.AsyncBandits` (from
    :func:`~octobandit.integrations.aio.connect_async`), or a synchronous
    :class:`~octobandit.integrations.backend.Bandits`, whose calls then run in worker
    threads. ``experiment``: the id of an existing experiment, or its spec, created on
    first use unless it exists (an existing experiment is kept as it is).
    """

    def __init__(
        self,
        bandits: AsyncBandits | Bandits,
        experiment: str | Mapping[str, Any],
        *,
        unit_header: str | None = None,
        unit_cookie: str = UNIT_COOKIE,
        decision_cookie: str | None = None,
        decision_header: str = DECISION_HEADER,
        cookie_max_age: int = 365 * 24 * 3600,
        cookie_path: str = "/",
        cookie_domain: str | None = None,
        cookie_secure: bool = False,
        cookie_samesite: Literal["lax", "strict", "none"] = "lax",
    ) -> None:
        self.bandits: AsyncBandits = (
            cast("AsyncBandits", bandits)
            if inspect.iscoroutinefunction(getattr(bandits, "decide", None))
            else ThreadedBandits(cast("Bandits", bandits))
        )
        if isinstance(experiment, str):
            self.experiment_id, self._spec = experiment, None
        else:
            self.experiment_id, self._spec = str(experiment["id"]), dict(experiment)
        self.unit_header = unit_header
        self.unit_cookie = unit_cookie
        self.decision_cookie = decision_cookie or f"octobandit_{self.experiment_id}"
        self.decision_header = decision_header
        self.cookie_max_age = cookie_max_age
        self.cookie_path = cookie_path
        self.cookie_domain = cookie_domain
        self.cookie_secure = cookie_secure
        self.cookie_samesite: Literal["lax", "strict", "none"] = cookie_samesite

    async def ensure(self) -> None:
        """Create the experiment from its spec unless it exists (done on first use;
        call it at startup to fail early)."""
        if self._spec is not None:
            await self.bandits.ensure_experiment(self._spec)
            self._spec = None

    def unit_of(self, request: Request) -> str | None:
        """The request's unit: its ``unit_header``, else its unit cookie (``None``: new)."""
        unit = None
        if self.unit_header is not None:
            unit = request.headers.get(self.unit_header) or None
        unit = unit or request.cookies.get(self.unit_cookie) or None
        if unit is not None and len(unit) > MAX_UNIT_CHARS:  # still sticky, within the limit
            unit = "sha256:" + hashlib.sha256(unit.encode("utf-8", "surrogatepass")).hexdigest()
        return unit

    async def assign(
        self, request: Request, response: Response | None = None, *, context: Any = None
    ) -> Assignment:
        """Decide the request's arm (sticky for its unit) and send the decision id (and a
        new unit's cookie) back with the response: through :class:`BanditMiddleware`
        when the app has it, else onto ``response``."""
        await self.ensure()
        unit = self.unit_of(request)
        new_unit = unit is None
        if unit is None:
            unit = uuid.uuid4().hex
        d = await self.bandits.decide(self.experiment_id, unit_id=unit, context=context)
        out = Assignment(d.experiment_id, d.arm_id, d.payload, d.decision_id, d.propensity, unit)
        carrier = Response()
        cookies = [(self.unit_cookie, unit)] if new_unit else []
        cookies.append((self.decision_cookie, d.decision_id))
        for name, value in cookies:
            carrier.set_cookie(
                name,
                value,
                max_age=self.cookie_max_age,
                path=self.cookie_path,
                domain=self.cookie_domain,
                secure=self.cookie_secure,
                httponly=True,
                samesite=self.cookie_samesite,
            )
        headers = [
            *((k, v) for k, v in carrier.raw_headers if k == b"set-cookie"),
            (self.decision_header.lower().encode("latin-1"), d.decision_id.encode("latin-1")),
        ]
        collected = request.scope.get(SCOPE_KEY)
        if isinstance(collected, list):
            collected.extend(headers)
        elif response is not None:
            response.headers.raw.extend(headers)
        else:
            raise RuntimeError(
                "Bandit.assign: add BanditMiddleware to the app, or pass the response"
            )
        return out

    async def __call__(self, request: Request, response: Response) -> Assignment:
        """The FastAPI dependency: ``arm: Annotated[Assignment, Depends(bandit)]``."""
        return await self.assign(request, response)

    def decision_of(self, request: Request) -> str | None:
        """The decision a request names: its decision header, else its decision cookie."""
        return (
            request.headers.get(self.decision_header)
            or request.cookies.get(self.decision_cookie)
            or None
        )

    async def reward(
        self, request: Request, value: float = 1.0, *, decision_id: str | None = None
    ) -> wire.RewardAnswer | None:
        """Reward the decision ``request`` names (or ``decision_id``). The answer says
        whether it was counted (``accepted``), already rewarded (``duplicates``) or
        came after its attribution window (``late``); ``None``: the request names no
        decision octobandit knows, so there is nothing to reward."""
        decision = decision_id or self.decision_of(request)
        if decision is None:
            return None
        await self.ensure()
        try:
            return await self.bandits.reward(self.experiment_id, decision, value)
        except errors.NotFound as exc:
            if exc.code == "decision_not_found":  # a stale or forged cookie
                return None
            raise

    def rewarder(
        self, value: float = 1.0
    ) -> Callable[[Request], Awaitable[wire.RewardAnswer | None]]:
        """A FastAPI dependency that rewards the request's decision with ``value``:
        ``answer: Annotated[RewardAnswer | None, Depends(bandit.rewarder(1.0))]``."""

        async def reward(request: Request) -> wire.RewardAnswer | None:
            return await self.reward(request, value)

        return reward
