"""A Seldon Core v1 router whose every routing is an octobandit decision.

Seldon's own Python microservice runs it unchanged (seldon-core 1.18)::

    PREDICTIVE_UNIT_PARAMETERS='[{"name": "n_branches", "value": "3", "type": "INT"},
                                 {"name": "epsilon", "value": "0.3", "type": "FLOAT"}]' \\
    seldon-core-microservice octobandit.integrations.seldon.Router --service-type ROUTER

The parameters are Seldon's epsilon-greedy router's (``n_branches``, ``epsilon``,
``verbose``, ``seed``) plus octobandit's: ``policy`` (a policy type name, or its JSON
spec), ``reward`` (the experiment's reward type, ``binary`` by default), ``url`` (an
octobandit service ``http://…``, or a store: an SQLite path, a PostgreSQL URL; default
``$OCTOBANDIT_URL``, else ``octobandit.db``), ``api_key`` and ``experiment`` (default
``seldon-router``; created when missing, with arms ``"0"`` … ``"n_branches-1"``).

:meth:`Router.route` answers the branch octobandit chose and names the decision in the
response's ``meta.tags`` (``"octobandit:<experiment>": <decision id>``, a per-request
tag: Seldon's :class:`SeldonResponse`, so concurrent requests never mix them up).
:meth:`Router.send_feedback_raw` turns Seldon's feedback (the request, the response
with its ``meta.routing`` and tags, the reward) into octobandit rewards: the decision
gets the batch's mean reward, and the other ``n - 1`` rows of a batch of ``n`` count
as ``n - 1`` more observations of the routed arm at that mean (so 0.4 over 10 rows is
4 successes in 10, as for Seldon's router), once. Feedback without the tag (or for
another experiment) is an arm-level reward of ``n`` observations on the routed branch.
Errors answer with Seldon's error body (``{"status": {"code", "info", "reason",
"status"}}``): 400 for a bad request, 503 when the store or the service is unavailable.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from octobandit import errors
from octobandit.integrations.backend import Bandits, connect

log = logging.getLogger("octobandit.integrations.seldon")

T = TypeVar("T")

#: the experiment a router uses when none is named
DEFAULT_EXPERIMENT = "seldon-router"
#: the store when neither the ``url`` parameter nor ``OCTOBANDIT_URL`` names one
DEFAULT_URL = "octobandit.db"
#: Seldon's epsilon-greedy router's default exploration rate
DEFAULT_EPSILON = 0.1
#: parameters of Seldon's epsilon-greedy router that octobandit has no use for
IGNORED_PARAMETERS = ("history", "branch_names")


class RouterError(Exception):
    """Seldon's error, for when seldon-core is not installed (a router called directly):
    the same ``status_code``, ``reason`` and :meth:`to_dict` as
    ``seldon_core.flask_utils.SeldonMicroserviceException``."""

    def __init__(
        self, message: str, status_code: int = 400, reason: str = "MICROSERVICE_BAD_DATA"
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.reason = reason

    def to_dict(self) -> dict[str, Any]:
        return {"status": {"status": 1, "info": self.message, "code": -1, "reason": self.reason}}


def seldon_error(
    message: str, status_code: int = 400, reason: str = "MICROSERVICE_BAD_DATA"
) -> Exception:
    """The exception Seldon's microservice answers with its error body and ``status_code``
    (its own ``SeldonMicroserviceException`` when seldon-core is there)."""
    try:
        from seldon_core.flask_utils import SeldonMicroserviceException
    except ImportError:
        return RouterError(message, status_code, reason)
    exc: Exception = SeldonMicroserviceException(message, status_code=status_code, reason=reason)
    return exc


class Routed:
    """A branch and its per-request tags, when seldon-core's ``SeldonResponse`` is missing."""

    def __init__(self, data: int, tags: dict[str, Any]) -> None:
        self.data = data
        self.tags = tags
        self.metrics: list[dict[str, Any]] = []


def _routed(branch: int, tags: dict[str, Any]) -> Any:
    """Seldon's ``SeldonResponse(data=branch, tags=tags)``: the microservice adds these
    tags to this response's ``meta.tags`` only (unlike a ``tags()`` method, which it asks
    after the call, when another thread may have routed meanwhile)."""
    try:
        from seldon_core.user_model import SeldonResponse
    except ImportError:
        return Routed(branch, tags)
    return SeldonResponse(data=branch, tags=tags)


def _policy_spec(policy: Any, epsilon: float | None) -> dict[str, Any]:
    """The experiment's policy from the ``policy`` and ``epsilon`` parameters."""
    if policy is None or policy == "":
        spec: dict[str, Any] = {"type": "epsilon_greedy"}
    elif isinstance(policy, dict):
        spec = dict(policy)
    elif isinstance(policy, str) and policy.lstrip().startswith("{"):
        try:
            spec = json.loads(policy)
        except ValueError as exc:
            raise _bad_parameter(f"policy is not valid JSON: {exc}") from exc
        if not isinstance(spec, dict):
            raise _bad_parameter("policy must be a type name or a JSON object")
    elif isinstance(policy, str):
        spec = {"type": policy.strip()}
    else:
        raise _bad_parameter("policy must be a type name or a JSON object")
    if epsilon is not None:
        if spec.get("type") != "epsilon_greedy":
            raise _bad_parameter(f"epsilon is a parameter of epsilon_greedy, not of {spec}")
        if "epsilon" in spec and spec["epsilon"] != epsilon:
            raise _bad_parameter("epsilon is given twice (as a parameter and in policy)")
        spec["epsilon"] = epsilon
    elif spec.get("type") == "epsilon_greedy":
        spec.setdefault("epsilon", DEFAULT_EPSILON)
    return spec


def _bad_parameter(message: str) -> Exception:
    return seldon_error(message, 400, "MICROSERVICE_BAD_PARAMETER")


def _rows(features: Any) -> int:
    """How many predictions a request holds: its first dimension, as for Seldon's router
    (1 for a scalar, a string, bytes or JSON data)."""
    shape = getattr(features, "shape", None)
    if shape is None:
        if isinstance(features, list | tuple):
            return max(len(features), 1)
        return 1
    return int(shape[0]) if len(shape) >= 1 and int(shape[0]) > 0 else 1


class Router:
    """A Seldon Core ROUTER over an octobandit experiment (see the module's doc).

    >>> import tempfile, os
    >>> db = os.path.join(tempfile.mkdtemp(), "r.db")
    >>> r = Router(n_branches=3, epsilon=0.3, url=db, experiment="doc")
    >>> routed = r.route([[0, 0]], ["a", "b"])
    >>> routed.data in (0, 1, 2), list(routed.tags) == ["octobandit:doc"]
    (True, True)
    >>> r.reward_routed(routed, 1.0)
    >>> r.bandits().stats("doc").total_reward
    1.0
    >>> r.close()
    """

    def __init__(
        self,
        n_branches: int | str | None = None,
        epsilon: float | str | None = None,
        policy: Any = None,
        url: str | None = None,
        experiment: str = DEFAULT_EXPERIMENT,
        reward: str = "binary",
        api_key: str | None = None,
        verbose: bool = False,
        seed: int | str | None = None,
        **others: Any,
    ) -> None:
        unknown = sorted(set(others) - set(IGNORED_PARAMETERS))
        if unknown:
            raise _bad_parameter(f"unknown parameters {unknown} for the octobandit router")
        try:
            n = int(n_branches) if n_branches is not None else 0
        except (TypeError, ValueError):
            n = 0
        if n < 1:
            raise _bad_parameter("n_branches is required: the number of the router's children")
        eps: float | None = None
        if epsilon is not None and epsilon != "":
            try:
                eps = float(epsilon)
            except (TypeError, ValueError) as exc:
                raise _bad_parameter(f"epsilon must be a number, not {epsilon!r}") from exc
        if not isinstance(experiment, str) or not experiment:
            raise _bad_parameter("experiment must be a non-empty string")
        self.n_branches = n
        self.experiment = experiment
        self.url = url or os.environ.get("OCTOBANDIT_URL") or DEFAULT_URL
        self.api_key = api_key or os.environ.get("OCTOBANDIT_API_KEY") or None
        self.seed = int(seed) if seed is not None and seed != "" else None
        self.verbose = bool(verbose)
        #: the tag of this router's decisions in ``meta.tags``
        self.tag = f"octobandit:{experiment}"
        self.spec: dict[str, Any] = {
            "id": experiment,
            "name": f"Seldon router {experiment}",
            "policy": _policy_spec(policy, eps),
            "reward": {"type": reward},
            "arms": [{"id": str(i)} for i in range(n)],
        }
        if self.verbose:
            log.setLevel(logging.DEBUG)
        self._lock = threading.Lock()
        self._bandits: Bandits | None = None
        self._pid = 0
        # check the URL and the experiment now, so a bad one stops the microservice at
        # start; then close: Seldon's servers fork (gunicorn workers, the gRPC server)
        # and each process opens its own connection on its first request
        self.bandits()
        self.close()

    # -- the connection, one per process ------------------------------------------------

    def bandits(self) -> Bandits:
        """This process's connection to octobandit (opened, and the experiment ensured,
        on first use: Seldon's servers fork after the router is built)."""
        pid = os.getpid()
        with self._lock:
            if self._bandits is not None and self._pid == pid:
                return self._bandits
            options: dict[str, Any] = {}
            if self.url.startswith(("http://", "https://")):
                options["api_key"] = self.api_key
            elif self.seed is not None:
                options["seed"] = self.seed
            try:
                bandits = connect(self.url, **options)
            except errors.OctobanditError as exc:
                raise _as_seldon(exc) from exc
            try:
                self._ensure(bandits)
            except Exception:
                bandits.close()
                raise
            self._bandits, self._pid = bandits, pid
            return bandits

    def _ensure(self, bandits: Bandits) -> None:
        try:
            bandits.ensure_experiment(self.spec)
            experiment = bandits.get_experiment(self.experiment)
            have = {arm.id for arm in experiment.arms}
            for i in range(self.n_branches):
                if str(i) not in have:  # the graph got more children: a new arm each
                    bandits.add_arm(self.experiment, {"id": str(i)})
        except errors.OctobanditError as exc:
            raise _as_seldon(exc, "MICROSERVICE_BAD_PARAMETER") from exc
        foreign = [
            arm.id
            for arm in experiment.arms
            if arm.enabled and not (arm.id.isdigit() and int(arm.id) < self.n_branches)
        ]
        if foreign:
            raise _bad_parameter(
                f"experiment {self.experiment!r} has arms {foreign} that are not branches "
                f"0…{self.n_branches - 1} of this router"
            )

    def _call(self, what: Callable[[Bandits], T]) -> T:
        bandits = self.bandits()
        try:
            return what(bandits)
        except errors.OctobanditError as exc:
            raise _as_seldon(exc) from exc

    def close(self) -> None:
        with self._lock:
            if self._bandits is not None and self._pid == os.getpid():
                self._bandits.close()
            self._bandits = None

    # -- Seldon's user-model API ------------------------------------------------------

    def route(self, features: Any, feature_names: Any, **kwargs: Any) -> Any:
        """The branch octobandit chose for this request (one decision for all its rows),
        with the decision id in this response's ``meta.tags``."""
        decision = self._call(lambda b: b.decide(self.experiment))
        branch = int(decision.arm_id)
        log.debug("routed to %d (decision %s)", branch, decision.decision_id)
        return _routed(branch, {self.tag: decision.decision_id})

    def send_feedback(
        self,
        features: Any,
        feature_names: Any,
        reward: float,
        truth: Any,
        routing: int | None = None,
    ) -> Any:
        """Seldon's plain feedback (no tags reach it): the arm-level reward of the batch,
        ``reward`` being the mean over its rows. The microservice calls
        :meth:`send_feedback_raw` instead, which sees the decision's tag."""
        self.feedback(reward, routing=routing, rows=_rows(features))
        return []

    def send_feedback_raw(self, feedback: Any) -> Any:
        """Seldon's feedback message (a ``prediction_pb2.Feedback``): the reward of the
        decision its response's tag names, else of the branch its routing names."""
        import numpy as np
        from seldon_core import utils as seldon_utils
        from seldon_core.env_utils import get_model_name

        meta = feedback.response.meta
        unit = get_model_name("0")  # the key of this router in meta.routing, as Seldon's
        routing = int(meta.routing[unit]) if unit in meta.routing else None
        decision_id = None
        if self.tag in meta.tags:  # a map of protobuf Values
            value = meta.tags[self.tag]
            if value.WhichOneof("kind") != "string_value" or not value.string_value:
                raise seldon_error(f"meta.tags[{self.tag!r}] must be a decision id (a string)")
            decision_id = value.string_value
        features = seldon_utils.extract_feedback_request_parts(feedback)[1]
        self.feedback(
            float(feedback.reward), routing=routing, rows=_rows(features), decision_id=decision_id
        )
        # the answer Seldon gives for a router's feedback: no data, the request's meta
        return seldon_utils.construct_response(self, False, feedback.request, np.array([]))

    # -- the mapping ------------------------------------------------------------------

    def feedback(
        self,
        reward: float,
        *,
        routing: int | None = None,
        rows: int = 1,
        decision_id: str | None = None,
    ) -> None:
        """Reward a routed batch of ``rows`` predictions whose mean reward is ``reward``.

        With its decision id: the decision gets ``reward`` (its propensity is logged
        with it) and, when the decision was not rewarded before, the branch it routed to
        gets ``rows - 1`` more observations at that mean, so the arm counts every row as
        Seldon's router does. Without: the branch ``routing`` gets ``rows`` observations.
        """
        if routing is not None and not 0 <= routing < self.n_branches:
            raise seldon_error(
                f"routing {routing} is not a branch of this router (0…{self.n_branches - 1})"
            )
        if decision_id is None:
            if routing is None:
                raise seldon_error(
                    f"feedback names no decision (meta.tags[{self.tag!r}]) and no routing"
                )
            branch = str(routing)
            self._call(lambda b: b.reward_arm(self.experiment, branch, reward, count=rows))
            return
        answer = self._call(lambda b: b.reward(self.experiment, decision_id, reward))
        if rows > 1 and answer.accepted:
            if routing is None:
                log.warning(
                    "feedback for decision %s has %d rows but no routing: only the "
                    "decision is rewarded",
                    decision_id,
                    rows,
                )
                return
            branch = str(routing)
            self._call(lambda b: b.reward_arm(self.experiment, branch, reward, count=rows - 1))

    def reward_routed(self, routed: Any, reward: float, rows: int = 1) -> None:
        """Reward what :meth:`route` answered (for callers outside Seldon)."""
        self.feedback(reward, routing=routed.data, rows=rows, decision_id=routed.tags[self.tag])


def _as_seldon(exc: errors.OctobanditError, reason: str | None = None) -> Exception:
    """An octobandit error as Seldon's: 400 when the request was at fault, 503 when the
    store or the service is unavailable, 500 otherwise."""
    from octobandit.api.errors import http_status

    status = http_status(exc)
    if type(exc).__name__ == "ServiceUnreachable" or isinstance(exc, errors.StorageUnavailable):
        status = 503
    elif 400 <= status < 500:
        status = 400
    if reason is None:
        reason = "MICROSERVICE_BAD_DATA" if status == 400 else "MICROSERVICE_INTERNAL_ERROR"
    return seldon_error(f"octobandit {exc.code}: {exc.message}", status, reason)
