"""Where the bandits live: an octobandit store instead of Flask-MAB's JSON file.

``MAB_STORAGE_ENGINE`` names a class of this module and ``MAB_STORAGE_OPTS`` its
arguments (a tuple, or a dict of keyword arguments), as in Flask-MAB:

=========================== =====================================================================
``BanditStorage`` (default) an in-memory SQLite store: like Flask-MAB's default, nothing outlives
                            the process
``JSONBanditStorage(path)`` an SQLite file beside ``path`` (``bandits.json`` →
                            ``bandits.octobandit.db``); a Flask-MAB JSON file found at ``path``
                            seeds new experiments with its counts, once, and is never written
``OctobanditStorage(url)``  any octobandit store or service: an SQLite path, ``postgresql://…`` or
                            ``http(s)://…`` (see :func:`octobandit.integrations.connect`)
=========================== =====================================================================

Each also takes ``tick_seconds`` (how often the embedded engine settles attribution
windows; 1 s). ``save`` writes nothing: every decision and reward is already in the
store when it happens (Flask-MAB rewrote the whole JSON file on every request).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from octobandit.integrations.backend import Bandits, connect

__all__ = ["BanditStorage", "JSONBanditStorage", "OctobanditStorage"]

log = logging.getLogger("octobandit.integrations.flask_mab")


class OctobanditStorage:
    """The bandits' experiments in the octobandit store or service ``url``."""

    def __init__(self, url: str | None = None, **options: Any) -> None:
        self.url = url or "octobandit.db"
        self.options = options
        self._backend: Bandits | None = None
        self._lock = threading.Lock()

    @property
    def backend(self) -> Bandits:
        """The connection, opened at first use (so that a storage made and never used
        opens no file)."""
        if self._backend is None:
            with self._lock:
                if self._backend is None:
                    self._backend = connect(self.url, **self.options)
        return self._backend

    def legacy(self, name: str) -> Mapping[str, Any] | None:
        """Flask-MAB's stored state of bandit ``name``, if any (to seed its experiment)."""
        return None

    def save(self, bandits: Mapping[str, Any]) -> None:
        """Nothing to write: decisions and rewards are stored as they happen."""

    def load(self) -> dict[str, Any]:
        """Nothing to load: the bandits in code are bound to their experiments."""
        return {}

    def flush(self) -> None:
        """Kept for compatibility; experiments are never wiped by the extension."""

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None


class BanditStorage(OctobanditStorage):
    """An in-memory store (Flask-MAB's default storage kept nothing either)."""

    def __init__(self, **options: Any) -> None:
        super().__init__("sqlite:///:memory:", **options)


class JSONBanditStorage(OctobanditStorage):
    """An SQLite store beside Flask-MAB's JSON file ``filepath``."""

    def __init__(self, filepath: str, **options: Any) -> None:
        self.file_handle = filepath
        path = Path(filepath)
        super().__init__(str(path.with_name(path.stem + ".octobandit.db")), **options)

    def legacy(self, name: str) -> Mapping[str, Any] | None:
        try:
            data = json.loads(Path(self.file_handle).read_text())
        except (OSError, ValueError):
            return None
        spec = data.get(name) if isinstance(data, dict) else None
        if not isinstance(spec, dict) or not all(
            isinstance(spec.get(k), list) for k in ("arms", "pulls", "reward")
        ):
            return None
        log.info("seeding experiment %r from Flask-MAB's %s", name, self.file_handle)
        return spec
