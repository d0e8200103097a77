"""The HTTP status of every error: the one place where errors meet HTTP.

The engine and the other doors raise :mod:`octobandit.errors` (a stable
``code`` and a message); only the HTTP door turns them into statuses. An
error class without an entry here answers with its nearest base class's.
"""

from __future__ import annotations

from octobandit.errors import (
    BadRequest,
    Conflict,
    InvalidInput,
    NotFound,
    OctobanditError,
    StorageUnavailable,
    StorageUnusable,
)

#: error class → HTTP status (subclasses inherit their base's)
STATUSES: dict[type[OctobanditError], int] = {
    OctobanditError: 400,
    BadRequest: 400,
    InvalidInput: 422,
    NotFound: 404,
    Conflict: 409,
    StorageUnavailable: 503,  # also EngineUnavailable, StorageFull, StorageLost
    StorageUnusable: 503,
}


def http_status(exc: BaseException) -> int:
    """The status an error answers with: its class's, else its nearest base's, else 500."""
    return _class_status(type(exc))


def answer_status(error: str | None) -> int:
    """The status of a data-plane answer (see :data:`octobandit.engine.ops.Answer`).

    ``error`` names the class of the :class:`~octobandit.errors.OctobanditError`
    that refused the request, ``None`` when it succeeded (200); any other name
    (an unexpected failure) answers 500.
    """
    if error is None:
        return 200
    pending: list[type[OctobanditError]] = [OctobanditError]
    while pending:
        cls = pending.pop()
        if cls.__name__ == error:
            return _class_status(cls)
        pending.extend(cls.__subclasses__())
    return 500


def _class_status(cls: type[BaseException]) -> int:
    for base in cls.__mro__:
        status = STATUSES.get(base)
        if status is not None:
            return status
    return 500
