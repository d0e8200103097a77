"""Flask-MAB's bandit classes, each an octobandit experiment once it is added to an app.

A bandit made in code is a list of arms (``add_arm(arm_id, value)``) and a policy.
``app.add_bandit(name, bandit)`` binds it to the experiment ``name`` in the app's
octobandit store (see :mod:`.storage`): from then on ``suggest_arm`` is a logged
decision of that experiment, a reward goes to that decision, and ``bandit[arm_id]``
reads the experiment's statistics: ``pulls`` its decisions, ``reward`` every reward
received (the policy counts an assignment's outcome when its attribution window
closes). The arms in code are the truth: at binding, arms
missing from the experiment are added, their payload (the value) is updated, and
stored arms no longer in code are disabled (never deleted, so their history stays).

A bandit that is not added to any app (a simulation, a unit test) works alone, in
memory, with the same rules: ``pull_arm`` counts an impression, ``reward_arm`` adds
to the arm's reward, and the policy reads ``reward / pulls``.

The policies, and their octobandit equivalents:

========================== ==================================================================
``Bandit``                 uniform random: ``epsilon_greedy`` with ε = 1
``EpsilonGreedyBandit(ε)`` ``epsilon_greedy`` with ``epsilon`` ε
``NaiveStochasticBandit``  ``thompson`` (Beta(1, 1)): Flask-MAB's weights (each arm's mean,
                           not normalised) are a crude probability matching; Thompson
                           sampling is the principled one
``SoftmaxBandit(tau)``     ``softmax`` with ``temperature`` tau
``AnnealingSoftmaxBandit`` ``softmax``, ``temperature`` 1, ``anneal`` ``log``, ``rate`` 1:
                           τ(t) = 1 / ln(e + t), Flask-MAB's 1 / ln(t) without its
                           division by zero
``ThompsonBandit(prior)``  ``thompson`` with ``alpha``, ``beta`` = prior, per instance
========================== ==================================================================
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import math
import random
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from octobandit import errors

if TYPE_CHECKING:
    from octobandit.integrations.backend import Bandits

__all__ = [
    "AnnealingSoftmaxBandit",
    "Bandit",
    "EpsilonGreedyBandit",
    "NaiveStochasticBandit",
    "SoftmaxBandit",
    "ThompsonBandit",
]

#: the decision the middleware is rewarding (set around its call of ``reward_arm``)
rewarding: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "octobandit_flask_mab_rewarding", default=None
)


@dataclass
class _Binding:
    backend: Bandits
    experiment_id: str
    reward: dict[str, Any]
    legacy: Mapping[str, Any] | None = None
    ready: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


def _payload(value: Any) -> Any:
    """The arm's payload: its value as JSON, or its ``str`` when it is not JSON."""
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError):
        return str(value)


class Bandit:
    """Uniform random assignment (a control); the base of the other bandits."""

    def __init__(self) -> None:
        self._ids: dict[str, str] = {}  # arm id -> the id object given to add_arm
        self._values: dict[str, Any] = {}
        self._pulls: dict[str, int] = {}
        self._reward: dict[str, float] = {}
        self._binding: _Binding | None = None
        self._recent = threading.local()  # bound, outside a request: arm -> decisions

    # -- Flask-MAB's interface ------------------------------------------------------

    def policy(self) -> dict[str, Any]:
        """The octobandit policy of this bandit."""
        return {"type": "epsilon_greedy", "epsilon": 1.0}

    @property
    def arms(self) -> list[str]:
        return list(self._ids.values())

    @property
    def values(self) -> list[Any]:
        return list(self._values.values())

    @property
    def pulls(self) -> list[int]:
        return [self[a]["pulls"] for a in self._ids]

    @property
    def reward(self) -> list[float]:
        return [self[a]["reward"] for a in self._ids]

    def add_arm(self, arm_id: str, value: Any = None) -> None:
        """Add an arm (a second ``add_arm`` of one id changes its value)."""
        key = str(arm_id)
        self._ids.setdefault(key, arm_id)
        self._values[key] = value
        self._pulls.setdefault(key, 0)
        self._reward.setdefault(key, 0.0)
        b = self._binding
        if b is not None and b.ready:
            with b.lock:
                self._sync_arms(b)

    def suggest_arm(self) -> dict[str, Any]:
        """The arm to serve: ``{"id", "value", "pulls", "reward"}``, and ``decision_id``
        once bound (the decision is logged: it is the pull)."""
        if not self._ids:
            raise KeyError("this bandit has no arms")
        b = self._bound()
        if b is None:
            return self[self._choose()]
        d = b.backend.decide(b.experiment_id)
        key = d.arm_id
        if key not in self._ids:  # an arm only the store knows (code changed meanwhile)
            self._ids[key] = key
            self._values[key] = d.payload
        recent: dict[str, list[str]] = self._recent.__dict__.setdefault("by_arm", {})
        pending = recent.setdefault(key, [])
        pending.append(d.decision_id)
        del pending[:-100]
        return {
            "id": self._ids[key],
            "value": self._values[key],
            "decision_id": d.decision_id,
            "propensity": d.propensity,
        }

    def pull_arm(self, arm_id: str) -> None:
        """Count an impression of ``arm_id``. Once bound, the decision logged by
        ``suggest_arm`` is the impression: this does nothing."""
        key = self._key(arm_id)
        if self._binding is None:
            self._pulls[key] += 1

    def reward_arm(self, arm_id: str, reward: float) -> None:
        """Reward ``arm_id``. Once bound, the reward goes to a decision: the one the
        middleware is rewarding (from the ``MAB`` cookie), else the latest decision of
        that arm suggested by this thread and not yet rewarded."""
        key = self._key(arm_id)
        b = self._bound()
        if b is None:
            self._reward[key] += float(reward)
            return
        decision_id = rewarding.get()
        if decision_id is None:
            pending = self._recent.__dict__.get("by_arm", {}).get(key)
            if not pending:
                from octobandit.integrations.flask_mab import MABConfigException

                raise MABConfigException(
                    f"no decision of arm {key!r} to reward: a bound bandit rewards "
                    "decisions (suggest_arm, then reward_arm in the same thread)"
                )
            decision_id = pending.pop()
        b.backend.reward(b.experiment_id, decision_id, float(reward))

    def __getitem__(self, arm_id: str) -> dict[str, Any]:
        key = self._key(arm_id)
        b = self._bound()
        if b is None:
            pulls, reward = self._pulls[key], self._reward[key]
        else:
            arm = {a.arm_id: a for a in b.backend.stats(b.experiment_id).arms}.get(key)
            pulls = arm.decisions if arm is not None else 0
            # Flask-MAB's reward: every reward received, those of assignments whose
            # window is still open included (the policy counts them when it closes)
            reward = (arm.reward_sum + (arm.pending_reward_sum or 0.0)) if arm is not None else 0.0
        return {"id": self._ids[key], "value": self._values[key], "pulls": pulls, "reward": reward}

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._ids.values()))

    def __len__(self) -> int:
        return len(self._ids)

    def __repr__(self) -> str:
        where = f" experiment={self._binding.experiment_id!r}" if self._binding else ""
        return f"<{type(self).__name__} arms={list(self._ids)}{where}>"

    @classmethod
    def fromdict(cls, spec: Mapping[str, Any]) -> Bandit:
        """A bandit from Flask-MAB's JSON storage (arms, values, pulls and rewards)."""
        kind = {c.__name__: c for c in _KINDS}.get(str(spec.get("bandit_type")), Bandit)
        params = {
            k: v
            for k, v in spec.items()
            if k in ("epsilon", "tau", "prior") and kind is not AnnealingSoftmaxBandit
        }
        bandit = kind(**params)
        for i, arm_id in enumerate(spec.get("arms", [])):
            bandit.add_arm(arm_id, (spec.get("values") or [None] * (i + 1))[i])
            key = str(arm_id)
            bandit._pulls[key] = int((spec.get("pulls") or [0] * (i + 1))[i])
            bandit._reward[key] = float((spec.get("reward") or [0.0] * (i + 1))[i])
        return bandit

    # -- alone: the policy in memory --------------------------------------------------

    def _means(self) -> dict[str, float]:
        return {k: (self._reward[k] / self._pulls[k]) if self._pulls[k] else 0.0 for k in self._ids}

    def _choose(self) -> str:
        return random.choice(list(self._ids))

    @staticmethod
    def _argmax(values: Mapping[str, float]) -> str:
        best = max(values.values())
        return random.choice([k for k, v in values.items() if v == best])

    # -- bound: an octobandit experiment ----------------------------------------------

    def _key(self, arm_id: str) -> str:
        key = str(arm_id)
        if key not in self._ids:
            raise KeyError(f"arm {arm_id!r} is not in this bandit")
        return key

    def bind(
        self,
        backend: Bandits,
        experiment_id: str,
        reward: Mapping[str, Any],
        legacy: Mapping[str, Any] | None = None,
    ) -> None:
        """Make this bandit the experiment ``experiment_id`` of ``backend`` (created,
        and its arms and policy brought in line with the code, at first use)."""
        self._binding = _Binding(backend, experiment_id, dict(reward), legacy)

    def _bound(self) -> _Binding | None:
        b = self._binding
        if b is None or b.ready:
            return b
        with b.lock:
            if not b.ready:
                self._setup(b)
                b.ready = True
        return b

    def _setup(self, b: _Binding) -> None:
        from octobandit.integrations.flask_mab import MABConfigException

        spec = {
            "id": b.experiment_id,
            "policy": self.policy(),
            "reward": b.reward,
            "arms": [{"id": k, "payload": _payload(v)} for k, v in self._values.items()],
        }
        try:
            existed = True
            try:
                b.backend.get_experiment(b.experiment_id)
            except errors.NotFound:
                existed = False
            b.backend.ensure_experiment(spec)
            stored = b.backend.get_experiment(b.experiment_id)
            if existed:
                policy = self.policy()
                if any(stored.policy.get(k) != v for k, v in policy.items()):
                    b.backend.update_experiment(b.experiment_id, {"policy": policy})
                self._sync_arms(b)
            elif b.legacy:
                self._import_legacy(b)
        except (errors.InvalidInput, errors.BadRequest, errors.Conflict) as exc:
            raise MABConfigException(
                f"bandit {b.experiment_id!r} cannot be an octobandit experiment: {exc}"
            ) from exc

    def _sync_arms(self, b: _Binding) -> None:
        """Arms in code are the truth: add the missing, update values, disable the others."""
        from octobandit.integrations.flask_mab import MABConfigException

        stored = {a.id: a for a in b.backend.get_experiment(b.experiment_id).arms}
        for key, value in self._values.items():
            payload = _payload(value)
            arm = stored.get(key)
            if arm is None:
                # another worker may have added it meanwhile (with the same payload)
                with contextlib.suppress(errors.Conflict):
                    b.backend.add_arm(b.experiment_id, {"id": key, "payload": payload})
            elif arm.deleted:
                raise MABConfigException(
                    f"arm {key!r} of {b.experiment_id!r} was deleted in octobandit: "
                    "its id cannot be reused"
                )
            elif not arm.enabled or arm.payload != payload:
                b.backend.update_arm(b.experiment_id, key, {"enabled": True, "payload": payload})
        for arm_id, arm in stored.items():
            if arm_id not in self._values and arm.enabled:
                b.backend.update_arm(b.experiment_id, arm_id, {"enabled": False})

    def _import_legacy(self, b: _Binding) -> None:
        """Seed a new experiment with a Flask-MAB JSON file's counts for its arms."""
        legacy = b.legacy or {}
        binary = b.reward.get("type", "binary") == "binary"
        for i, arm_id in enumerate(legacy.get("arms", [])):
            key = str(arm_id)
            if key not in self._values:
                continue
            pulls = int(legacy["pulls"][i])
            total = float(legacy["reward"][i])
            if pulls <= 0:
                continue
            if binary:
                total = min(max(total, 0.0), float(pulls))
            b.backend.set_arm_stats(
                b.experiment_id,
                key,
                {"decisions": pulls, "rewards": pulls, "reward_sum": total},
            )


class EpsilonGreedyBandit(Bandit):
    """Serve the best arm so far, and a uniformly random one with probability ``epsilon``."""

    def __init__(self, epsilon: float = 0.1) -> None:
        super().__init__()
        self.epsilon = float(epsilon)

    def policy(self) -> dict[str, Any]:
        return {"type": "epsilon_greedy", "epsilon": self.epsilon}

    def _choose(self) -> str:
        if random.random() < self.epsilon:
            return random.choice(list(self._ids))
        return self._argmax(self._means())


class SoftmaxBandit(Bandit):
    """Serve arm *i* with probability ∝ exp(mean_i / tau)."""

    def __init__(self, tau: float = 0.1) -> None:
        super().__init__()
        self.tau = float(tau)

    def policy(self) -> dict[str, Any]:
        return {"type": "softmax", "temperature": self.tau}

    def _temperature(self) -> float:
        return self.tau

    def _choose(self) -> str:
        means = self._means()
        tau = self._temperature()
        top = max(means.values())
        weights = [math.exp((m - top) / tau) for m in means.values()]
        return random.choices(list(means), weights)[0]


class AnnealingSoftmaxBandit(SoftmaxBandit):
    """Softmax whose temperature falls as 1 / ln(e + t), t the pulls so far."""

    def __init__(self) -> None:
        super().__init__(tau=1.0)

    def policy(self) -> dict[str, Any]:
        return {
            "type": "softmax",
            "temperature": 1.0,
            "anneal": "log",
            "rate": 1.0,
            "min_temperature": 0.001,
        }

    def _temperature(self) -> float:
        return max(0.001, 1.0 / math.log(math.e + sum(self._pulls.values())))


class ThompsonBandit(Bandit):
    """Thompson sampling with a Beta prior of its own (rewards in [0, 1], not forced to 1)."""

    def __init__(self, prior: tuple[float, float] = (1.0, 1.0)) -> None:
        super().__init__()
        self.prior = (float(prior[0]), float(prior[1]))

    def policy(self) -> dict[str, Any]:
        return {"type": "thompson", "alpha": self.prior[0], "beta": self.prior[1]}

    def _choose(self) -> str:
        a, b = self.prior
        draws = {}
        for k in self._ids:
            n = float(self._pulls[k])
            s = min(max(self._reward[k], 0.0), n) if n else 0.0
            draws[k] = random.betavariate(a + s, b + n - s)
        return self._argmax(draws)


class NaiveStochasticBandit(ThompsonBandit):
    """Flask-MAB's weighted random choice; here Thompson sampling with a Beta(1, 1) prior."""

    def __init__(self) -> None:
        super().__init__((1.0, 1.0))


_KINDS = (
    Bandit,
    EpsilonGreedyBandit,
    NaiveStochasticBandit,
    SoftmaxBandit,
    AnnealingSoftmaxBandit,
    ThompsonBandit,
)
