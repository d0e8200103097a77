"""The HTTP status of every error is chosen by the HTTP door (``octobandit.api.errors``)."""

from __future__ import annotations

import pickle

import pytest

from octobandit import errors
from octobandit.api.errors import answer_status, http_status
from octobandit.engine.ops import error_answer

CASES = [
    (errors.OctobanditError("x"), 400),
    (errors.BadRequest("x", code="empty"), 400),
    (errors.InvalidInput("x", field="n"), 422),
    (errors.NotFound("x", code="arm_not_found"), 404),
    (errors.Conflict("x", code="no_enabled_arm"), 409),
    (errors.StorageUnavailable("x"), 503),
    (errors.EngineUnavailable("x"), 503),
    (errors.StorageFull("x"), 503),
    (errors.StorageLost("x"), 503),
    (errors.StorageUnusable("x"), 503),
    (RuntimeError("a bug"), 500),
]


@pytest.mark.parametrize(("exc", "status"), CASES, ids=[type(e).__name__ for e, _ in CASES])
def test_every_error_has_its_status_in_process_and_across_the_engine_socket(
    exc: BaseException, status: int
) -> None:
    assert http_status(exc) == status
    error, _ = error_answer(exc)  # the data plane's answer from the engine process
    assert answer_status(error) == status
    copy = pickle.loads(pickle.dumps(exc))  # a control-plane call's error from the engine process
    assert type(copy) is type(exc) and http_status(copy) == status


def test_a_success_is_200_and_errors_carry_no_status() -> None:
    assert answer_status(None) == 200
    for name in dir(errors):
        assert not hasattr(getattr(errors, name), "status"), name
