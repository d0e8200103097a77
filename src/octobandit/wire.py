"""Wire types, defined once: the data plane's requests and answers, every answer of the
control plane, and the error body.

The HTTP door, the engine process and the Python client (:mod:`octobandit.client`)
share these msgspec types: the server encodes its answers through them, the
client decodes them with them, and the OpenAPI document's schemas are generated
from them. Decoding a data-plane request validates it in one pass.

This module imports nothing heavier than msgspec (the client depends on that).
The answer types ignore unknown fields when decoded, so a client keeps working
against a newer server that answers more.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

import msgspec

from octobandit.errors import BadRequest, InvalidInput, OctobanditError


class DecisionRequest(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Body of ``POST /v1/experiments/{id}/decisions`` (all fields optional)."""

    unit_id: str | None = None
    n: int | None = None
    context: dict[str, Any] | list[float] | None = None


class Decision(msgspec.Struct):
    """One decision: the arm to serve, its payload and the probability it was chosen with."""

    decision_id: str
    experiment_id: str
    arm_id: str
    payload: Any
    propensity: float


class DecisionBatch(msgspec.Struct):
    """The answer to a decision request with ``n``."""

    decisions: list[Decision]


class Reward(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """A reward for one decision, or the mean reward over ``count`` pulls of an arm."""

    reward: float
    decision_id: str | None = None
    arm_id: str | None = None
    count: int = 1


class RewardRequest(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """One reward (``decision_id`` or ``arm_id`` + ``count``) or ``rewards`` in bulk."""

    reward: float | None = None
    decision_id: str | None = None
    arm_id: str | None = None
    count: int = 1
    rewards: list[Reward] | None = None


class RewardAnswer(msgspec.Struct, omit_defaults=True):
    """Rewards accepted, rewards for decisions already rewarded (ignored), and, for an
    experiment with an attribution window, rewards that came after their decision's
    window closed (logged, not counted; absent, ``None``, without a window)."""

    accepted: int
    duplicates: int
    late: int | None = None


class ErrorDetail(msgspec.Struct, omit_defaults=True):
    """``code`` is stable, ``message`` is for people; ``field`` names the invalid value."""

    code: str
    message: str
    field: str | None = None


class ErrorBody(msgspec.Struct):
    """Every error answer: ``{"error": {"code", "message"}}`` (and ``field`` when known)."""

    error: ErrorDetail


# -- control-plane answers ---------------------------------------------------------

_STATUS = Annotated[
    str, msgspec.Meta(extra_json_schema={"enum": ["running", "paused", "concluded"]})
]
_INTERVAL = Annotated[list[float | None], msgspec.Meta(min_length=2, max_length=2)]


class Arm(msgspec.Struct):
    """An arm of an experiment (``enabled`` is false once it is ``deleted``)."""

    id: str
    payload: Any
    enabled: bool
    deleted: bool
    prior: dict[str, float] | None = None


class RewardSpec(msgspec.Struct, omit_defaults=True):
    """The reward's type, and its attribution window when it has one (see
    ``docs/rewards.md``): seconds a decision waits for its reward, the default it
    gets when none came, and ``first`` or ``sum``."""

    type: str  # binary | continuous
    attribution_window: float | None = None
    default: float | None = None
    aggregation: str | None = None


class ContextSpec(msgspec.Struct):
    features: list[str]


class Experiment(msgspec.Struct):
    """An experiment as the API answers it (``stopping`` and ``conclusion`` as objects)."""

    id: str
    name: str
    status: _STATUS
    policy: dict[str, Any]
    reward: RewardSpec
    arms: list[Arm]
    context: ContextSpec | None
    stopping: dict[str, Any] | None
    snapshot_interval: float | None
    conclusion: dict[str, Any] | None
    version: int
    created_at: str
    updated_at: str


class ExperimentList(msgspec.Struct):
    experiments: list[Experiment]


class Deleted(msgspec.Struct):
    """How many experiments ``DELETE /v1/experiments?confirm=true`` removed."""

    deleted: int


class Health(msgspec.Struct, omit_defaults=True):
    """``ok``, or ``degraded`` with the reason (the answer of ``GET /healthz``, 200 or 503)."""

    status: str
    reason: str | None = None
    message: str | None = None


class ArmStats(msgspec.Struct):
    arm_id: str
    enabled: bool
    deleted: bool
    decisions: int
    rewards: float
    reward_sum: float
    mean_reward: float | None
    ci95: _INTERVAL | None
    #: decisions whose attribution window is open and that have no outcome yet
    #: (``None``: the experiment has no attribution window)
    pending: int | None = None
    #: the rewards those pending decisions have received so far, counted when their
    #: windows close (``None``: no attribution window)
    pending_reward_sum: float | None = None


class RewardGain(msgspec.Struct):
    """Reward gained over an equal split of the same decisions (see docs/conclusions.md)."""

    estimate: float | None
    se: float | None
    ci95: _INTERVAL | None
    method: str | None  # ips | model
    decisions_covered: int
    decisions_excluded: int
    excluded_reason: str | None
    note: str | None


class Stats(msgspec.Struct):
    experiment_id: str
    status: _STATUS
    total_decisions: int
    total_reward: float
    reward_gain_vs_equal_split: RewardGain
    arms: list[ArmStats]
    #: the arms' pending decisions (``None``: no attribution window)
    pending_decisions: int | None = None


class ArmPosterior(msgspec.Struct):
    """An arm's posterior summary (``None`` while the experiment has no enabled arm)."""

    arm_id: str
    enabled: bool
    decisions: int
    rewards: float
    mean: float | None
    ci95: _INTERVAL | None
    prob_best: float | None
    expected_loss: float | None


class Conclusion(msgspec.Struct):
    """The stopping rule evaluated now; ``concluded`` is the recorded conclusion, if any."""

    experiment_id: str
    status: _STATUS
    rule: dict[str, Any] | None
    concluded: dict[str, Any] | None
    arms: list[ArmPosterior]
    met: bool
    winner: str | None
    leader: str | None
    reason: str
    failed: list[str]
    prob_best: float | None
    expected_loss: float | None
    loss_threshold: float | None


class ArmSeries(msgspec.Struct):
    """One arm's snapshots as series aligned with :attr:`History.at` (``None``: absent)."""

    decisions: list[int | None]
    rewards: list[float | None]
    mean: list[float | None]
    ci95: list[list[float | None] | None]
    prob_best: list[float | None]
    expected_loss: list[float | None]
    enabled: list[bool | None]


class History(msgspec.Struct):
    """Posterior snapshots, oldest first: when (``at``), why (``reason``), per arm."""

    experiment_id: str
    snapshot_interval: float | None
    at: list[str]
    reason: list[str]
    arms: dict[str, ArmSeries]


class LogEvent(msgspec.Struct):
    """One event of the log (see docs/api.md): ``ts`` in epoch seconds, ``at`` the same in
    ISO 8601 UTC; the fields a kind does not have are ``null``."""

    seq: int
    ts: float
    at: str
    experiment_id: str
    kind: Literal["decision", "reward", "default", "part", "late", "reset", "set_stats"]
    decision_id: str | None
    arm_id: str | None
    propensity: float | None
    unit_id: str | None
    context: Any
    reward: float | None
    count: float | None
    data: Any


class EventPage(msgspec.Struct):
    """A page of the event log in ``seq`` order; ``next``: the cursor of the next page
    (pass it as ``after``), ``null`` after the last one."""

    events: list[LogEvent]
    next: int | None


class Estimate(msgspec.Struct):
    """An estimate of a candidate's value (mean reward per round) and its 95% interval
    (``null`` when the replay accepted no round)."""

    value: float | None
    ci95: list[float] | None


class ReplayCurve(msgspec.Struct):
    """At ``t`` accepted rounds: the running mean reward and the cumulative regret
    against the best arm's logged mean."""

    t: list[int]
    reward: list[float]
    regret: list[float]


class Replay(msgspec.Struct):
    """The replay method: ``accepted`` of the log's ``rounds``, each match accepted with
    probability ``p_min / pscore``."""

    value: float | None
    ci95: list[float] | None
    accepted: int
    rounds: int
    p_min: float
    curve: ReplayCurve


class CandidateEvaluation(msgspec.Struct):
    """One candidate: its spec, ``estimates`` by estimator (``ipw``, ``snipw``, ``dm``,
    ``dr``, ``sndr``, ``switch-dr``, ``replay``) and the replay's details."""

    spec: dict[str, Any]
    estimates: dict[str, Estimate]
    replay: Replay


class LoggedSummary(msgspec.Struct):
    """What was read: rounds with an outcome, decisions without one yet (``dropped``),
    outcomes with no decision read (``orphans``), older decisions left out (``older``),
    the logged value and the smallest logged propensity."""

    arms: list[str]
    rounds: int
    dropped: int
    orphans: int
    older: int
    value: float | None
    min_pscore: float | None


class Evaluation(msgspec.Struct):
    """Candidate policies evaluated off-policy on the experiment's most recent decisions
    (see docs/evaluation.md)."""

    logged: LoggedSummary
    candidates: dict[str, CandidateEvaluation]


class LoggedDecision(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """A decision made locally (``client.local``) on the policy snapshot ``version``."""

    decision_id: str
    arm_id: str
    propensity: float
    version: str
    unit_id: str | None = None
    context: dict[str, Any] | list[float] | None = None
    ts: float | None = None


class LoggedDecisions(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Body of ``POST /v1/experiments/{id}/decisions/logged``."""

    #: at least one (an empty list is refused with 400 ``empty``, as for rewards)
    decisions: Annotated[list[LoggedDecision], msgspec.Meta(extra_json_schema={"minItems": 1})]


class LoggedAnswer(msgspec.Struct):
    """Logged decisions recorded, and decision ids already recorded (ignored)."""

    accepted: int
    duplicates: int


class SnapshotArm(msgspec.Struct):
    id: str
    enabled: bool
    payload: Any = None


class SnapshotStats(msgspec.Struct):
    """Per-arm sufficient statistics the policy sees (observed + prior): ``n`` rewards,
    ``s`` their sum, ``ss`` the sum of squares about the shift ``c``."""

    n: list[float]
    s: list[float]
    ss: list[float]
    c: list[float]


class StateArray(msgspec.Struct):
    shape: list[int]
    data: list[float]


class PolicySnapshot(msgspec.Struct):
    """What a local decider needs to decide like the service (see docs/client.md)."""

    experiment_id: str
    version: str
    status: str
    policy: dict[str, Any]
    reward_type: str
    context_features: list[str] | None
    arms: list[SnapshotArm]
    stats: SnapshotStats
    state: dict[str, StateArray] | None = None
    winner: str | None = None


#: the answer types of the control plane, in the OpenAPI document's components
ANSWERS: tuple[type[msgspec.Struct], ...] = (
    Arm,
    Experiment,
    ExperimentList,
    Deleted,
    Health,
    Stats,
    Conclusion,
    History,
    EventPage,
    Evaluation,
    PolicySnapshot,
    LoggedAnswer,
    LoggedDecisions,  # a request body, read by the route itself
)


encode = msgspec.json.Encoder().encode
_decode_decision = msgspec.json.Decoder(DecisionRequest).decode
_decode_reward = msgspec.json.Decoder(RewardRequest).decode
_decode_logged = msgspec.json.Decoder(LoggedDecisions).decode
EMPTY_DECISION = DecisionRequest()


def error_body(code: str, message: str, field: str | None = None) -> bytes:
    """``{"error": {"code": ..., "message": ...}}`` as JSON bytes (with ``field`` if given)."""
    return encode(ErrorBody(ErrorDetail(code, message, field)))


def _bad_body(exc: msgspec.MsgspecError, body: bytes) -> OctobanditError:
    """:class:`BadRequest` for a body that is not JSON, :class:`InvalidInput` for a bad one."""
    if isinstance(exc, msgspec.ValidationError):
        try:  # a typed decoder may stop at a type error before it sees broken syntax
            msgspec.json.decode(body)
        except msgspec.DecodeError as syntax:
            exc = syntax
        else:
            return InvalidInput(str(exc))
    try:  # NaN, Infinity or a number too large for a float: valid to Python, not to JSON
        json.loads(body)
    except ValueError:
        return BadRequest(f"request body is not valid JSON: {exc}", code="invalid_json")
    return InvalidInput("numbers must be finite (no NaN or Infinity)")


def decode_decision(raw: bytes) -> DecisionRequest:
    """A decision request from its body (empty or blank: all defaults)."""
    if not raw.strip():
        return EMPTY_DECISION
    try:
        return _decode_decision(raw)
    except msgspec.MsgspecError as exc:
        raise _bad_body(exc, raw) from None


def decode_reward(raw: bytes) -> list[Reward]:
    """The rewards of a reward request: one, or the ``rewards`` given in bulk."""
    try:
        req = _decode_reward(raw)
    except msgspec.MsgspecError as exc:
        raise _bad_body(exc, raw) from None
    if req.rewards is not None:
        if req.reward is not None or req.decision_id is not None or req.arm_id is not None:
            raise InvalidInput("give either one reward or `rewards`, not both")
        return req.rewards
    if req.reward is None:
        raise InvalidInput("Object missing required field `reward`")
    return [Reward(req.reward, req.decision_id, req.arm_id, req.count)]


def decode_logged(raw: bytes) -> list[LoggedDecision]:
    """The decisions of a ``decisions/logged`` body."""
    try:
        return _decode_logged(raw).decisions
    except msgspec.MsgspecError as exc:
        raise _bad_body(exc, raw) from None
