"""A Flask extension for new apps: decisions sticky by cookie, and rewards.

>>> from flask import Flask
>>> app = Flask("shop")
>>> app.config["OCTOBANDIT_URL"] = "sqlite:///:memory:"
>>> ob = Octobandit(app, experiments=[{"id": "cta", "arms": [{"id": "buy"}, {"id": "try"}]}])
>>> @app.get("/")
... def home():
...     return ob.decide("cta").arm_id
>>> @app.post("/bought")
... def bought():
...     return {"accepted": ob.reward("cta", 1.0).accepted}
>>> client = app.test_client()
>>> arm = client.get("/").text
>>> client.get("/").text == arm, client.post("/bought").json
(True, {'accepted': 1})
>>> ob.close(app)

Configuration:

============================== ============== ==============================================
``OCTOBANDIT_URL``             ``octobandit.db`` an SQLite path or URL, ``postgresql://…`` or an
                                               octobandit service ``http(s)://…``
``OCTOBANDIT_API_KEY``         ``None``        the service's API key
``OCTOBANDIT_TICK_SECONDS``    ``1.0``         embedded: how often attribution windows settle
``OCTOBANDIT_COOKIE_NAME``     ``"octobandit"``
``OCTOBANDIT_COOKIE_MAX_AGE``  30 days         seconds; ``None``: a session cookie
``OCTOBANDIT_COOKIE_PATH``     ``"/"``
``OCTOBANDIT_COOKIE_SECURE``   ``False``       as Flask's ``SESSION_COOKIE_SECURE``
============================== ============== ==============================================

The cookie holds, per experiment, the user's arm and decision: one decision per user
and experiment (until the cookie expires), one reward per decision.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import wraps
from typing import Any, TypeVar, cast

from flask import Flask, Response, current_app, g, request

from octobandit import wire
from octobandit.integrations.backend import Bandits, connect

__all__ = ["Octobandit"]

F = TypeVar("F", bound=Callable[..., Any])

#: how long the arms' payloads are cached for sticky repeats (seconds)
ARMS_TTL = 10.0


@dataclass
class _AppState:
    bandits: Bandits
    owned: bool
    arms: dict[str, tuple[float, dict[str, wire.Arm]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class _Request:
    #: experiment -> [arm_id, decision_id, propensity, open]
    cookie: dict[str, list[Any]]
    changed: bool = False


class Octobandit:
    """The extension: ``Octobandit(app)`` or ``Octobandit()`` then ``init_app(app)``.

    ``experiments`` are created at ``init_app`` unless they exist (an existing one is
    kept as it is); ``bandits`` uses a given :class:`~octobandit.integrations.Bandits`
    instead of ``OCTOBANDIT_URL``.
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        experiments: Iterable[Mapping[str, Any]] = (),
        bandits: Bandits | None = None,
    ) -> None:
        self.experiments = list(experiments)
        self._bandits = bandits
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        config = app.config
        config.setdefault("OCTOBANDIT_URL", "octobandit.db")
        config.setdefault("OCTOBANDIT_API_KEY", None)
        config.setdefault("OCTOBANDIT_TICK_SECONDS", 1.0)
        config.setdefault("OCTOBANDIT_COOKIE_NAME", "octobandit")
        config.setdefault("OCTOBANDIT_COOKIE_MAX_AGE", 30 * 24 * 3600)
        config.setdefault("OCTOBANDIT_COOKIE_PATH", "/")
        config.setdefault("OCTOBANDIT_COOKIE_SECURE", False)
        bandits = self._bandits
        if bandits is None:
            url = str(config["OCTOBANDIT_URL"])
            if url.startswith(("http://", "https://")):
                bandits = connect(url, api_key=config["OCTOBANDIT_API_KEY"])
            else:
                bandits = connect(url, tick_seconds=float(config["OCTOBANDIT_TICK_SECONDS"]))
        app.extensions["octobandit"] = _AppState(bandits, owned=self._bandits is None)
        for spec in self.experiments:
            bandits.ensure_experiment(spec)
        app.after_request(self._after_request)

    @staticmethod
    def _state(app: Flask | None = None) -> _AppState:
        return cast(_AppState, (app or current_app).extensions["octobandit"])

    @property
    def bandits(self) -> Bandits:
        """The current app's :class:`~octobandit.integrations.Bandits` (stats,
        conclusions, arms)."""
        return self._state().bandits

    def close(self, app: Flask | None = None) -> None:
        """Close the app's connection (if the extension opened it)."""
        state = self._state(app)
        if state.owned:
            state.bandits.close()

    # -- per request --------------------------------------------------------------------

    def _request(self) -> _Request:
        req: _Request | None = g.get("_octobandit")
        if req is None:
            cookie: dict[str, list[Any]] = {}
            raw = request.cookies.get(current_app.config["OCTOBANDIT_COOKIE_NAME"])
            try:
                data = json.loads(raw) if raw else {}
            except ValueError:
                data = {}
            for exp, entry in data.items() if isinstance(data, dict) else ():
                if (
                    isinstance(entry, list)
                    and len(entry) == 4
                    and isinstance(entry[0], str)
                    and isinstance(entry[1], str)
                    and isinstance(entry[2], int | float)
                    and isinstance(entry[3], bool)
                ):
                    cookie[str(exp)] = entry
            req = g._octobandit = _Request(cookie)
        return req

    def _arms(self, experiment_id: str, refresh: bool = False) -> dict[str, wire.Arm]:
        state = self._state()
        cached = state.arms.get(experiment_id)
        if cached is None or refresh or time.monotonic() - cached[0] > ARMS_TTL:
            arms = {a.id: a for a in state.bandits.get_experiment(experiment_id).arms}
            with state.lock:
                state.arms[experiment_id] = (time.monotonic(), arms)
            return arms
        return cached[1]

    def decide(
        self,
        experiment_id: str,
        *,
        unit_id: str | None = None,
        context: Any = None,
    ) -> wire.Decision:
        """The arm of ``experiment_id`` for this user: the cookie's decision while its
        arm is enabled, else a new decision (remembered in the cookie). With
        ``unit_id`` the service's own stickiness is used instead (a logged-in user):
        every call is a decision, of the unit's arm."""
        req = self._request()
        entry = req.cookie.get(experiment_id)
        if unit_id is None and entry is not None:
            arm = self._arms(experiment_id).get(entry[0])
            if arm is not None and arm.enabled:
                return wire.Decision(entry[1], experiment_id, entry[0], arm.payload, entry[2])
        d = self._state().bandits.decide(experiment_id, unit_id=unit_id, context=context)
        req.cookie[experiment_id] = [d.arm_id, d.decision_id, d.propensity, True]
        req.changed = True
        return d

    def reward(
        self, experiment_id: str, value: float = 1.0, *, decision_id: str | None = None
    ) -> wire.RewardAnswer | None:
        """Reward this user's decision of ``experiment_id`` (once: ``None`` when it was
        rewarded already or the user has none), or the decision ``decision_id``."""
        bandits = self._state().bandits
        if decision_id is not None:
            return bandits.reward(experiment_id, decision_id, value)
        req = self._request()
        entry = req.cookie.get(experiment_id)
        if entry is None or not entry[3]:
            return None
        entry[3] = False
        req.changed = True
        return bandits.reward(experiment_id, str(entry[1]), value)

    def choose(self, experiment_id: str, *, arg: str | None = None) -> Callable[[F], F]:
        """Route decorator: pass this user's :class:`~octobandit.wire.Decision` of
        ``experiment_id`` to the view as the keyword argument ``arg`` (default: the
        experiment id with ``-`` as ``_``)."""
        name = arg or experiment_id.replace("-", "_")

        def decorator(func: F) -> F:
            @wraps(func)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                kwargs[name] = self.decide(experiment_id)
                return func(*args, **kwargs)

            return cast(F, wrapper)

        return decorator

    @staticmethod
    def _after_request(response: Response) -> Response:
        req: _Request | None = g.get("_octobandit")
        if req is not None and req.changed:
            config = current_app.config
            response.set_cookie(
                config["OCTOBANDIT_COOKIE_NAME"],
                json.dumps(req.cookie, separators=(",", ":")),
                max_age=config["OCTOBANDIT_COOKIE_MAX_AGE"],
                path=config["OCTOBANDIT_COOKIE_PATH"],
                secure=bool(config["OCTOBANDIT_COOKIE_SECURE"]),
                httponly=True,
                samesite="Lax",
            )
        return response
