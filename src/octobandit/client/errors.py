"""The exceptions the client raises, each an :class:`octobandit.errors.OctobanditError`.

An error the server answered becomes an :class:`OctobanditHTTPError` carrying the
server's ``status``, ``code``, ``message`` and (for an invalid value) ``field``; its
class follows the status and also derives from the engine's error class for it, so
``except octobandit.errors.NotFound`` catches a remote 404 as it catches the
engine's own. A request that got no answer at all (after the retries) raises
:class:`ServiceUnreachable`.
"""

from __future__ import annotations

import msgspec

from octobandit import errors
from octobandit.wire import ErrorBody

_decode_error = msgspec.json.Decoder(ErrorBody).decode


class OctobanditHTTPError(errors.OctobanditError):
    """The server answered with an error status: ``{"error": {"code", "message", "field"}}``."""

    def __init__(
        self, status: int, code: str, message: str, *, field: str | None = None, attempts: int = 1
    ) -> None:
        super().__init__(message, code=code)
        self.status = status
        self.field = field
        #: how many times the request was sent (more than 1 after retries)
        self.attempts = attempts

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.message}"


class BadRequestError(OctobanditHTTPError, errors.BadRequest):
    """400: the request is malformed (not JSON, nested too deep, missing confirmation ...)."""


class NotFoundError(OctobanditHTTPError, errors.NotFound):
    """404: no such experiment, arm or decision (``code`` says which)."""


class ConflictError(OctobanditHTTPError, errors.Conflict):
    """409: the request conflicts with the experiment's state (``already_exists`` ...)."""


class InvalidInputError(OctobanditHTTPError, errors.InvalidInput):
    """422: a value is out of range or malformed; ``field`` names it when known."""


class ServerError(OctobanditHTTPError):
    """5xx: the service failed (500 is a bug; nothing was written)."""


class UnavailableError(ServerError, errors.StorageUnavailable):
    """503: storage or engine unavailable, or too many connections; retrying may succeed."""


_BY_STATUS: dict[int, type[OctobanditHTTPError]] = {
    400: BadRequestError,
    404: NotFoundError,
    409: ConflictError,
    422: InvalidInputError,
    503: UnavailableError,
}


def error_class(status: int) -> type[OctobanditHTTPError]:
    """The exception class for an error status."""
    found = _BY_STATUS.get(status)
    if found is not None:
        return found
    return ServerError if status >= 500 else OctobanditHTTPError


def from_response(status: int, content: bytes, *, attempts: int = 1) -> OctobanditHTTPError:
    """The exception for an error answer (a body that is not the error JSON is quoted)."""
    try:
        detail = _decode_error(content).error
        code, message, field = detail.code, detail.message, detail.field
    except msgspec.MsgspecError:  # e.g. a proxy's HTML page
        text = content.decode("utf-8", "replace").strip()
        code, message, field = "http_error", text[:300] or f"HTTP {status}", None
    return error_class(status)(status, code, message, field=field, attempts=attempts)


class ServiceUnreachable(errors.OctobanditError):
    """No answer from the service (connection refused or lost, timeout) after the retries.

    The cause (an ``httpx.TransportError``) is chained as ``__cause__``. Whether a
    request that was sent had an effect is unknown unless the call is idempotent.
    """

    code = "unreachable"

    def __init__(self, message: str, *, attempts: int = 1) -> None:
        super().__init__(message)
        self.attempts = attempts


class RewardBufferFull(errors.OctobanditError):
    """The reward buffer stayed full for the whole timeout (the service is slow or down)."""

    code = "buffer_full"
