"""Flask-MAB 3.0's interface, with octobandit underneath.

An app written for Flask-MAB runs by changing its imports only::

    from octobandit.integrations.flask_mab import BanditMiddleware, choose_arm, reward_endpt
    from octobandit.integrations.flask_mab.bandits import EpsilonGreedyBandit

(``import flask_mab`` becomes ``from octobandit.integrations import flask_mab``.)

Every bandit is an octobandit experiment (its name is the experiment id), every
assignment a logged decision with its propensity. The ``MAB`` cookie keeps, per
bandit, ``[arm_id, decision_id]`` while the assignment is open (Flask-MAB's
``[arm_id, true]``), then ``[arm_id, false]``: a reward endpoint rewards that
decision, once. Experiments get an attribution window (``MAB_ATTRIBUTION_WINDOW`` seconds,
3600 by default) with default 0: an assignment never rewarded within it counts as a
failure, as a pull without reward did in Flask-MAB. See docs/integrations.md.

Configuration (Flask-MAB's, plus octobandit's):

=========================== ================ ===================================================
``MAB_STORAGE_ENGINE``      ``BanditStorage`` a class of :mod:`.storage`
``MAB_STORAGE_OPTS``        ``()``            its arguments (a tuple, or a dict of keywords)
``MAB_COOKIE_NAME``         ``"MAB"``
``MAB_COOKIE_PATH``         ``"/"``           (Flask-MAB ignored it)
``MAB_COOKIE_TTL``          ``None``          max-age in seconds; None: a session cookie
                                              (Flask-MAB ignored it)
``MAB_COOKIE_SECURE``       ``True``          as Flask-MAB
``MAB_DEBUG_HEADERS``       ``True``          the ``X-MAB-Debug`` header, read per request
``MAB_ATTRIBUTION_WINDOW``  ``3600``          seconds; 0 or None: no window (a decision never
                                              rewarded is then never counted)
``MAB_REWARD_TYPE``         ``"binary"``      ``"continuous"`` for rewards outside [0, 1]
``MAB_EXPERIMENT_PREFIX``   ``""``            prefixed to the experiment ids (apps sharing
                                              one store)
=========================== ================ ===================================================
"""

from __future__ import annotations

import json
import logging
import re
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import wraps
from typing import Any, TypeVar, cast

from flask import Flask, Response, current_app, g, request

from octobandit.integrations.flask_mab import bandits, storage
from octobandit.integrations.flask_mab.bandits import Bandit, rewarding
from octobandit.integrations.flask_mab.mab import Mab

__all__ = [
    "BanditMiddleware",
    "MABConfigException",
    "add_bandit",
    "bandits",
    "choose_arm",
    "reward_endpt",
    "storage",
    "suggest_arm_for",
]

__version__ = "3.0.0"

log = logging.getLogger("octobandit.integrations.flask_mab")

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_ATTRIBUTION_WINDOW = 3600.0
_EXPERIMENT_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


class MABConfigException(Exception):
    """Raised when internal state in MAB setup is invalid (e.g. an unknown bandit)."""


@dataclass
class _RequestState:
    cookie: dict[str, list[Any]]
    new: list[str] = field(default_factory=list)
    rewards: list[tuple[str, float]] = field(default_factory=list)


def _ext() -> Mab:
    try:
        return cast(Mab, current_app.extensions["mab"])
    except KeyError:
        raise MABConfigException("BanditMiddleware is not set up on this app") from None


def _parse_cookie(raw: str | None) -> dict[str, list[Any]]:
    """The cookie's entries ``name: [arm_id, decision_id | True | False]``: an open
    assignment's decision, Flask-MAB's open assignment (no decision), a closed one."""
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    out: dict[str, list[Any]] = {}
    for name, entry in data.items():
        if (
            isinstance(entry, list)
            and len(entry) == 2
            and isinstance(entry[0], str)
            and isinstance(entry[1], str | bool)
        ):
            out[str(name)] = [entry[0], entry[1]]
    return out


def _state() -> _RequestState:
    state: _RequestState | None = g.get("_octobandit_mab")
    if state is None:
        state = _RequestState(_parse_cookie(request.cookies.get(_ext().cookie_name)))
        g._octobandit_mab = state
    return state


def choose_arm(bandit: str) -> Callable[[F], F]:
    """Route decorator: pass the arm value of ``bandit`` to the view as the keyword
    argument ``bandit`` (stackable; after the route's own arguments)."""

    def decorator(func: F) -> F:
        @wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            _, value = suggest_arm_for(bandit)
            kwargs[bandit] = value
            return func(*args, **kwargs)

        return cast(F, wrapper)

    return decorator


def reward_endpt(bandit: str, reward_val: float = 1) -> Callable[[F], F]:
    """Route decorator: reward the decision of ``bandit`` in the user's cookie with
    ``reward_val`` (once per assignment; nothing when the user has none)."""

    def decorator(func: F) -> F:
        @wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            state = _state()
            if bandit in state.cookie:
                if bandit not in _ext().bandits:
                    raise MABConfigException(f"Bandit {bandit} not found")
                state.rewards.append((bandit, float(reward_val)))
            return func(*args, **kwargs)

        return cast(F, wrapper)

    return decorator


def suggest_arm_for(key: str) -> tuple[str, Any]:
    """The arm of experiment ``key`` for this user: from the cookie, else a new
    decision. Returns ``(arm_id, value)``; raises :class:`MABConfigException` for an
    unknown bandit."""
    bandit = _ext().bandits.get(key)
    if bandit is None:
        raise MABConfigException(f"Bandit {key} not found")
    state = _state()
    entry = state.cookie.get(key)
    sticky = entry is not None and (entry[1] is not True or bandit._binding is None)
    if entry is not None and sticky and entry[0] in bandit._values:
        return entry[0], bandit._values[entry[0]]
    # a new user, an arm no longer in code, or Flask-MAB's open assignment (no decision)
    arm = bandit.suggest_arm()
    arm_id = str(arm["id"])
    state.cookie[key] = [arm_id, arm.get("decision_id") or True]
    if key not in state.new:
        state.new.append(key)
    return arm_id, arm["value"]


def add_bandit(app: Flask, name: str, bandit: Bandit | None = None) -> None:
    """Attach ``bandit`` to ``app`` as the experiment ``name``. The arms in code are
    the truth: a stored experiment gets the code's arms, values and policy (its
    statistics are kept). Without ``bandit``, a Flask-MAB JSON file's bandit is used."""
    ext: Mab = app.extensions["mab"]
    store = ext.bandit_storage
    if store is None:
        raise MABConfigException("BanditMiddleware has no storage")
    legacy = store.legacy(name)
    if bandit is None:
        if legacy is None:
            raise MABConfigException(f"Bandit {name} not found in storage")
        bandit = Bandit.fromdict(legacy)
    config = app.config
    window = config.get("MAB_ATTRIBUTION_WINDOW", DEFAULT_ATTRIBUTION_WINDOW)
    reward: dict[str, Any] = {"type": config.get("MAB_REWARD_TYPE", "binary")}
    if window:
        reward.update(attribution_window=float(window), default=0.0)
    bandit.bind(store.backend, _experiment_id(config, name), reward, legacy)
    ext.bandits[name] = bandit


def _experiment_id(config: Any, name: str) -> str:
    exp = f"{config.get('MAB_EXPERIMENT_PREFIX', '')}{name}"
    if not _EXPERIMENT_ID.fullmatch(exp):
        raise MABConfigException(
            f"bandit name {exp!r} is not an experiment id: lower-case letters, digits, "
            "'_' and '-', at most 64, starting with a letter or digit"
        )
    return exp


class BanditMiddleware:
    """The Flask extension: tracks the bandits' assignments and rewards per request."""

    def __init__(self, app: Flask | None = None) -> None:
        if app is not None:
            self.init_app(app)

    # Flask-MAB's README uses the decorators as methods of the middleware
    choose_arm = staticmethod(choose_arm)
    reward_endpt = staticmethod(reward_endpt)

    def _register_storage(self, app: Flask) -> None:
        name = app.config.get("MAB_STORAGE_ENGINE", "BanditStorage")
        engine = getattr(storage, str(name), None)
        if not isinstance(engine, type) or not issubclass(engine, storage.OctobanditStorage):
            raise MABConfigException(f"unknown MAB_STORAGE_ENGINE {name!r}")
        opts = app.config.get("MAB_STORAGE_OPTS", ())
        store = engine(**opts) if isinstance(opts, dict) else engine(*opts)
        app.extensions["mab"].bandit_storage = store

    def init_app(self, app: Flask) -> None:
        """Attach the extension to ``app`` (app factories: once per app)."""
        app.config.setdefault("MAB_COOKIE_NAME", "MAB")
        app.config.setdefault("MAB_COOKIE_PATH", "/")
        app.config.setdefault("MAB_COOKIE_TTL", None)
        app.config.setdefault("MAB_COOKIE_SECURE", True)
        app.config.setdefault("MAB_DEBUG_HEADERS", True)
        app.config.setdefault("MAB_ATTRIBUTION_WINDOW", DEFAULT_ATTRIBUTION_WINDOW)
        app.extensions["mab"] = Mab(app)
        self._register_storage(app)
        app.after_request(self._after_request)
        app.add_bandit = types.MethodType(add_bandit, app)  # type: ignore[attr-defined]

    def teardown(self, *args: Any, **kwargs: Any) -> None:
        """Kept for compatibility."""

    @staticmethod
    def _after_request(response: Response) -> Response:
        ext = _ext()
        config = current_app.config
        state: _RequestState | None = g.get("_octobandit_mab")
        changed = False
        if state is not None:
            for name in state.new:
                ext.bandits[name].pull_arm(state.cookie[name][0])
            for name, amount in state.rewards:
                entry = state.cookie[name]
                decision = entry[1]
                if decision is False:
                    continue  # one reward per assignment
                entry[1] = False
                changed = True
                if decision is True and ext.bandits[name]._binding is not None:
                    continue  # Flask-MAB's assignment: no decision to reward
                token = rewarding.set(decision if isinstance(decision, str) else None)
                try:
                    ext.bandits[name].reward_arm(entry[0], amount)
                except MABConfigException:
                    raise
                except Exception as exc:  # a stale or forged cookie must not fail the page
                    log.warning("reward of %s decision %s refused: %s", name, decision, exc)
                finally:
                    rewarding.reset(token)
            if state.new or changed:
                response.set_cookie(
                    ext.cookie_name,
                    json.dumps(state.cookie, separators=(",", ":")),
                    max_age=config.get("MAB_COOKIE_TTL"),
                    path=config.get("MAB_COOKIE_PATH", "/"),
                    secure=bool(config.get("MAB_COOKIE_SECURE", True)),
                    httponly=True,
                    samesite="Lax",
                )
                if ext.bandit_storage is not None:
                    ext.bandit_storage.save(ext.bandits)
        if config.get("MAB_DEBUG_HEADERS", ext.debug_headers):
            state = _state()
            kind = "STORE" if state.new else "SAVED"
            response.headers["X-MAB-Debug"] = f"{kind}; " + ";".join(
                f"{k}:{v[0]}" for k, v in state.cookie.items()
            )
        return response
