"""Doors for the tools octobandit's users already run: each goes through the engine
(embedded) or the SDK (a remote service), see :mod:`octobandit.integrations.backend`."""

from octobandit.integrations.backend import Bandits, EmbeddedBandits, RemoteBandits, connect

__all__ = ["Bandits", "EmbeddedBandits", "RemoteBandits", "connect"]
