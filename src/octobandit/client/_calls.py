"""Every call of the API as a description (:class:`Call`): method, path, body, how to
read the answer and whether it is idempotent. The sync and async clients build a
call here and run it with their own transport, so each endpoint is written once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import msgspec

from octobandit import wire
from octobandit.client.errors import from_response

T = TypeVar("T")


def _enc_hook(obj: Any) -> Any:
    """NumPy scalars and arrays (contexts, rewards, payloads) as plain numbers and lists."""
    tolist = getattr(obj, "tolist", None)
    if tolist is None:
        raise TypeError(f"cannot encode {type(obj).__name__} as JSON")
    return tolist()


_encode = msgspec.json.Encoder(enc_hook=_enc_hook).encode
_JSON = {"content-type": "application/json"}
Context = Mapping[str, float] | Sequence[float]
#: an arm of a new experiment: its id, or ``{"id", "payload"?, "enabled"?, "prior"?}``
ArmSpec = str | Mapping[str, Any]


def _decoder(kind: type[T]) -> Callable[[bytes], T]:
    return msgspec.json.Decoder(kind).decode


def _nothing(_: bytes) -> None:
    return None


_experiment = _decoder(wire.Experiment)
_experiments = _decoder(wire.ExperimentList)
_arm = _decoder(wire.Arm)
_stats = _decoder(wire.Stats)
_decision = _decoder(wire.Decision)
_batch = _decoder(wire.DecisionBatch)
_reward_answer = _decoder(wire.RewardAnswer)
_health = _decoder(wire.Health)


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One request and how to read its answer."""

    method: str
    path: str
    read: Callable[[bytes], T]
    body: bytes | None = None
    params: Mapping[str, str | int | float | list[str]] | None = None
    #: sending it twice has the effect of sending it once (see :mod:`._retry`)
    idempotent: bool = False
    #: statuses whose body is the answer (others are errors)
    ok: frozenset[int] = frozenset({200, 201, 204})

    @property
    def headers(self) -> dict[str, str] | None:
        return _JSON if self.body is not None else None

    def result(self, status: int, content: bytes, *, attempts: int = 1, unsure: bool = False) -> T:
        """The answer, or raise its error. ``unsure``: an earlier try of this call may
        have taken effect without an answer (then a DELETE's 404 means it did)."""
        if status in self.ok:
            try:
                return self.read(content)
            except msgspec.DecodeError:
                if status < 400:
                    raise
                # e.g. /healthz's 503 is its answer, but a 503 error body may come instead
        elif unsure and self.method == "DELETE" and status == 404:
            return self.read(b"")
        raise from_response(status, content, attempts=attempts)


def _path(*parts: str) -> str:
    return "/v1/experiments" + "".join("/" + quote(p, safe="") for p in parts)


def _json(body: Mapping[str, Any]) -> bytes:
    return _encode({k: v for k, v in body.items() if v is not None})


def _policy(policy: str | Mapping[str, Any] | None) -> dict[str, Any] | None:
    if policy is None:
        return None
    return {"type": policy} if isinstance(policy, str) else dict(policy)


def _arm_spec(arm: ArmSpec) -> dict[str, Any]:
    return {"id": arm} if isinstance(arm, str) else dict(arm)


# -- experiments ------------------------------------------------------------------


def health() -> Call[wire.Health]:
    return Call("GET", "/healthz", _health, idempotent=True, ok=frozenset({200, 503}))


def create_experiment(
    id: str | None,
    *,
    policy: str | Mapping[str, Any] | None,
    arms: Sequence[ArmSpec] | None,
    name: str | None,
    reward: str | Mapping[str, Any] | None,
    context: Sequence[str] | Mapping[str, Any] | None,
    stopping: Mapping[str, Any] | None,
    snapshot_interval: float | None,
) -> Call[wire.Experiment]:
    body = {
        "id": id,
        "name": name,
        "policy": _policy(policy),
        "arms": None if arms is None else [_arm_spec(a) for a in arms],
        "reward": {"type": reward} if isinstance(reward, str) else reward,
        "context": (
            {"features": list(context)}
            if context is not None and not isinstance(context, Mapping)
            else context
        ),
        "stopping": stopping,
        "snapshot_interval": snapshot_interval,
    }
    return Call("POST", _path(), _experiment, _json(body))


def list_experiments() -> Call[list[wire.Experiment]]:
    return Call("GET", _path(), lambda raw: _experiments(raw).experiments, idempotent=True)


def get_experiment(experiment_id: str) -> Call[wire.Experiment]:
    return Call("GET", _path(experiment_id), _experiment, idempotent=True)


def update_experiment(
    experiment_id: str,
    *,
    name: str | None,
    status: str | None,
    policy: str | Mapping[str, Any] | None,
    stopping: Mapping[str, Any] | None,
    snapshot_interval: float | None,
) -> Call[wire.Experiment]:
    body = {
        "name": name,
        "status": status,
        "policy": _policy(policy),
        "stopping": stopping,
        "snapshot_interval": snapshot_interval,
    }
    # it sets values (a policy without a new type and stopping are merged: still the same
    # result when applied twice); only the experiment's version counter moves twice
    return Call("PATCH", _path(experiment_id), _experiment, _json(body), idempotent=True)


def conclude(experiment_id: str, winner: str | None) -> Call[wire.Experiment]:
    body = _json({"status": "concluded", "winner": winner})
    # concluding twice with the same winner records the same conclusion (a later time)
    return Call("PATCH", _path(experiment_id), _experiment, body, idempotent=True)


def delete_experiment(experiment_id: str) -> Call[None]:
    return Call("DELETE", _path(experiment_id), _nothing, idempotent=True)


def delete_all_experiments(confirm: bool) -> Call[int]:
    if confirm is not True:
        raise ValueError("deleting every experiment needs confirm=True")
    return Call(
        "DELETE",
        _path(),
        lambda raw: msgspec.json.decode(raw, type=wire.Deleted).deleted,
        params={"confirm": "true"},
        idempotent=True,
    )


def reset_experiment(experiment_id: str) -> Call[wire.Experiment]:
    # not idempotent: a second reset would drop the rewards that came in between
    return Call("POST", _path(experiment_id, "reset"), _experiment)


# -- arms -------------------------------------------------------------------------


def add_arm(
    experiment_id: str,
    arm_id: str,
    *,
    payload: Any,
    enabled: bool,
    prior: Mapping[str, float] | None,
) -> Call[wire.Arm]:
    body = {"id": arm_id, "payload": payload, "enabled": enabled, "prior": prior}
    return Call("POST", _path(experiment_id, "arms"), _arm, _json(body))


def update_arm(
    experiment_id: str, arm_id: str, *, enabled: bool | None, payload: Any
) -> Call[wire.Arm]:
    body = {"enabled": enabled, "payload": payload}
    return Call("PATCH", _path(experiment_id, "arms", arm_id), _arm, _json(body), idempotent=True)


def delete_arm(experiment_id: str, arm_id: str) -> Call[None]:
    return Call("DELETE", _path(experiment_id, "arms", arm_id), _nothing, idempotent=True)


def set_arm_stats(
    experiment_id: str,
    arm_id: str,
    *,
    decisions: int,
    rewards: float,
    reward_sum: float,
    reward_sq_sum: float | None,
) -> Call[wire.Stats]:
    body = {
        "decisions": decisions,
        "rewards": rewards,
        "reward_sum": reward_sum,
        "reward_sq_sum": reward_sq_sum,
    }
    path = _path(experiment_id, "arms", arm_id, "stats")
    return Call("PUT", path, _stats, _json(body), idempotent=True)


# -- decisions and rewards --------------------------------------------------------


def decide(
    experiment_id: str, *, unit_id: str | None, context: Context | None
) -> Call[wire.Decision]:
    body = _json({"unit_id": unit_id, "context": _context(context)})
    return Call("POST", _path(experiment_id, "decisions"), _decision, body)


def decide_batch(
    experiment_id: str, n: int, *, context: Context | None
) -> Call[list[wire.Decision]]:
    body = _json({"n": n, "context": _context(context)})
    path = _path(experiment_id, "decisions")
    return Call("POST", path, lambda raw: _batch(raw).decisions, body)


def _context(context: Context | None) -> Any:
    if context is None or isinstance(context, Mapping) or hasattr(context, "tolist"):
        return context  # a NumPy vector is encoded by _enc_hook
    return list(context)


def reward(experiment_id: str, decision_id: str, value: float) -> Call[wire.RewardAnswer]:
    body = _encode(wire.Reward(reward=value, decision_id=decision_id))
    # idempotent: the server counts a decision's reward once (a repeat is a duplicate)
    return Call("POST", _path(experiment_id, "rewards"), _reward_answer, body, idempotent=True)


def reward_arm(
    experiment_id: str, arm_id: str, value: float, count: int
) -> Call[wire.RewardAnswer]:
    body = _encode(wire.Reward(reward=value, arm_id=arm_id, count=count))
    return Call("POST", _path(experiment_id, "rewards"), _reward_answer, body)


def rewards(
    experiment_id: str, items: Iterable[wire.Reward | Mapping[str, Any]]
) -> Call[wire.RewardAnswer]:
    batch = [
        item if isinstance(item, wire.Reward) else msgspec.convert(dict(item), wire.Reward)
        for item in items
    ]
    body = _encode({"rewards": batch})
    idempotent = all(r.decision_id is not None and r.arm_id is None for r in batch)
    path = _path(experiment_id, "rewards")
    return Call("POST", path, _reward_answer, body, idempotent=idempotent)


def policy_snapshot(experiment_id: str) -> Call[wire.PolicySnapshot]:
    path = _path(experiment_id, "policy-snapshot")
    return Call("GET", path, _decoder(wire.PolicySnapshot), idempotent=True)


def log_decisions(experiment_id: str, items: list[wire.LoggedDecision]) -> Call[wire.LoggedAnswer]:
    body = _encode(wire.LoggedDecisions(items))
    path = _path(experiment_id, "decisions", "logged")
    # idempotent: a decision id already recorded counts as a duplicate
    return Call("POST", path, _decoder(wire.LoggedAnswer), body, idempotent=True)


def stats(experiment_id: str) -> Call[wire.Stats]:
    return Call("GET", _path(experiment_id, "stats"), _stats, idempotent=True)


def conclusion(experiment_id: str) -> Call[wire.Conclusion]:
    path = _path(experiment_id, "conclusion")
    return Call("GET", path, _decoder(wire.Conclusion), idempotent=True)


def history(experiment_id: str, limit: int) -> Call[wire.History]:
    path = _path(experiment_id, "history")
    return Call("GET", path, _decoder(wire.History), params={"limit": limit}, idempotent=True)


def evaluation(
    experiment_id: str,
    policies: Sequence[str | Mapping[str, Any]],
    limit: int,
    bootstrap: int,
    switch_tau: float,
) -> Call[wire.Evaluation]:
    texts = [p if isinstance(p, str) else msgspec.json.encode(p).decode() for p in policies]
    params: dict[str, str | int | float | list[str]] = {
        "policy": texts, "limit": limit, "bootstrap": bootstrap, "switch_tau": switch_tau,
    }  # fmt: skip
    path = _path(experiment_id, "evaluation")
    return Call("GET", path, _decoder(wire.Evaluation), params=params, idempotent=True)
