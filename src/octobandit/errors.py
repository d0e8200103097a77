"""Errors shared by the engine and every door (HTTP API, CLI, SDK).

Each error carries a stable machine-readable ``code`` and a message for people;
its class says what went wrong. The doors translate, they never decide: the
HTTP statuses are mapped from the classes in :mod:`octobandit.api.errors`.
"""

from __future__ import annotations


class OctobanditError(Exception):
    """Base class: ``code`` is stable, ``message`` is for people."""

    code: str = "bad_request"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __reduce__(self) -> tuple[object, ...]:
        # pickled whole (code, field, ...): the engine process sends errors to the doors
        return (_restore, (type(self), self.message, dict(self.__dict__)))


def _restore(cls: type[OctobanditError], message: str, state: dict[str, object]) -> OctobanditError:
    exc = cls.__new__(cls)
    Exception.__init__(exc, message)
    exc.__dict__.update(state)
    return exc


class InvalidInput(OctobanditError):
    """A value is out of range or malformed; ``field`` names it."""

    code = "invalid"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None) -> None:
        super().__init__(f"{field}: {message}" if field else message, code=code)
        self.field = field


class NotFound(OctobanditError):
    code = "not_found"


class Conflict(OctobanditError):
    code = "conflict"


class BadRequest(OctobanditError):
    code = "bad_request"


class StorageUnavailable(OctobanditError):
    """The storage cannot take writes now; nothing of the request was written.

    Raised for storage-wide failures only, never for one request's or one
    experiment's fault: the engine fails a whole group commit with it.
    """

    code = "storage_unavailable"


class EngineUnavailable(StorageUnavailable):
    """The engine process does not answer (restarting, or gone): nothing was acknowledged."""

    code = "engine_unavailable"


class StorageFull(StorageUnavailable):
    """The disk is full (or a write hit an I/O error); retried normally once space returns."""

    code = "storage_full"


class StorageLost(StorageUnavailable):
    """The database file was removed or replaced while serving: writes stop until a restart."""

    code = "storage_lost"


class StorageUnusable(OctobanditError):
    """The database cannot be opened or fails its integrity check (at startup)."""

    code = "storage_unusable"
