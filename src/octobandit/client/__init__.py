"""The Python client of the octobandit HTTP API: :class:`Client` and :class:`AsyncClient`.

>>> from octobandit.client import Client
>>> with Client("http://127.0.0.1:8000") as client:  # doctest: +SKIP
...     client.create_experiment("buttons", policy="thompson", arms=["buy", "get"])
...     decision = client.decide("buttons", unit_id="user-42")
...     client.reward("buttons", decision.decision_id, 1.0)

Importing it needs only httpx and msgspec (no server dependency is imported):
see docs/client.md for the light install, the reference and the reward buffer.
"""

from __future__ import annotations

from octobandit.client._retry import Retry
from octobandit.client.aio import AsyncClient
from octobandit.client.errors import (
    BadRequestError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    OctobanditHTTPError,
    RewardBufferFull,
    ServerError,
    ServiceUnreachable,
    UnavailableError,
)
from octobandit.client.sync import Client
from octobandit.client.types import (
    Arm,
    ArmPosterior,
    ArmSeries,
    ArmStats,
    BufferStats,
    Conclusion,
    Decision,
    Experiment,
    Health,
    History,
    Reward,
    RewardAnswer,
    RewardGain,
    Stats,
)

__all__ = [
    "Arm",
    "ArmPosterior",
    "ArmSeries",
    "ArmStats",
    "AsyncClient",
    "BadRequestError",
    "BufferStats",
    "Client",
    "Conclusion",
    "ConflictError",
    "Decision",
    "Experiment",
    "Health",
    "History",
    "InvalidInputError",
    "NotFoundError",
    "OctobanditHTTPError",
    "Retry",
    "Reward",
    "RewardAnswer",
    "RewardBufferFull",
    "RewardGain",
    "ServerError",
    "ServiceUnreachable",
    "Stats",
    "UnavailableError",
]
