"""The extension's state, ``app.extensions["mab"]`` (as in Flask-MAB)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask

    from octobandit.integrations.flask_mab.bandits import Bandit
    from octobandit.integrations.flask_mab.storage import OctobanditStorage


class Mab:
    """The bandits of an app, its storage and its cookie and header settings."""

    def __init__(self, app: Flask) -> None:
        self.bandits: dict[str, Bandit] = {}
        self.reward_endpts: list[Any] = []
        self.pull_endpts: list[Any] = []
        self.debug_headers: bool = bool(app.config.get("MAB_DEBUG_HEADERS", True))
        self.cookie_name: str = str(app.config.get("MAB_COOKIE_NAME", "MAB"))
        self.bandit_storage: OctobanditStorage | None = None
