"""Shared estimation and output: arrays → estimates, an experiment's log → per-candidate
estimates and replays, as JSON, a rich table or a PNG.

A data source (an experiment's log through :mod:`octobandit.offline.log`, or any loader
that returns the same plain arrays) feeds :func:`estimate_arrays`; every estimator's key is
one of :data:`ESTIMATORS`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from octobandit.evaluation import (
    DirectMethod,
    DoublyRobust,
    EvaluationError,
    InverseProbabilityWeighting,
    OffPolicyEstimator,
    RegressionModel,
    SelfNormalizedDoublyRobust,
    SelfNormalizedInverseProbabilityWeighting,
    SwitchDoublyRobust,
    evaluate,
)
from octobandit.offline.candidates import (
    Candidate,
    replay,
    same_info_action_dist,
)
from octobandit.offline.log import FloatArray, LoggedRounds

#: the estimators' keys, in the order tables show them
ESTIMATORS = ("ipw", "snipw", "dm", "dr", "sndr", "switch-dr", "replay")
#: Switch-DR's default weight threshold
SWITCH_TAU = 10.0


def reward_model(
    context: FloatArray | None,
    action: Any,
    reward: Any,
    n_actions: int,
    *,
    position: Any = None,
    len_list: int = 1,
    n_folds: int = 3,
    random_state: int = 12345,
) -> FloatArray | None:
    """Cross-fitted rewards for DM and the DR family (the default
    :class:`~octobandit.evaluation.RegressionModel`; a ridge regression when a fold's
    rewards are all 0 or all 1), or ``None`` without scikit-learn or when no model can
    be fitted (those estimators are then left out). No context: a constant feature."""
    try:
        import sklearn  # noqa: F401
    except ImportError:
        return None
    from sklearn.linear_model import Ridge

    n = len(reward)
    x = np.ones((n, 1)) if context is None else np.asarray(context, dtype=np.float64)
    folds = max(1, min(n_folds, n))
    # the default model; a ridge regression when a classifier cannot be fitted (a fold
    # whose rewards are all 0 or all 1); none when neither can (too few rounds)
    for base in (None, Ridge()):
        model = RegressionModel(n_actions=n_actions, len_list=len_list, base_model=base)
        try:
            return model.fit_predict(
                x, action, reward, position=position, n_folds=folds, random_state=random_state
            )
        except (EvaluationError, ValueError):
            continue
    return None


def estimate_arrays(
    *,
    reward: Any,
    action: Any,
    pscore: Any,
    action_dist: Any,
    position: Any = None,
    estimated_rewards_by_reg_model: Any = None,
    switch_tau: float = SWITCH_TAU,
    n_bootstrap_samples: int = 1000,
    random_state: int = 12345,
) -> dict[str, dict[str, Any]]:
    """``{"ipw": {"value", "ci95"}, "snipw": …, "dm": …, "dr": …, "sndr": …,
    "switch-dr": …}`` on plain arrays (the model-based ones only with a reward model)."""
    estimators: list[OffPolicyEstimator] = [
        InverseProbabilityWeighting(),
        SelfNormalizedInverseProbabilityWeighting(),
    ]
    if estimated_rewards_by_reg_model is not None:
        estimators += [
            DirectMethod(),
            DoublyRobust(),
            SelfNormalizedDoublyRobust(),
            SwitchDoublyRobust(tau=switch_tau),
        ]
    return evaluate(
        estimators,
        n_bootstrap_samples=n_bootstrap_samples,
        random_state=random_state,
        reward=reward,
        action=action,
        pscore=pscore,
        action_dist=action_dist,
        position=position,
        estimated_rewards_by_reg_model=estimated_rewards_by_reg_model,
    )


def evaluate_log(
    rounds: LoggedRounds,
    candidates: Sequence[Candidate],
    *,
    switch_tau: float = SWITCH_TAU,
    n_bootstrap_samples: int = 1000,
    random_state: int = 12345,
    curves: bool = True,
) -> dict[str, Any]:
    """Every candidate evaluated on an experiment's rounds:
    ``{"logged": summary, "candidates": {name: {"spec", "estimates", "replay"}}}``.

    ``estimates`` holds the keys of :func:`estimate_arrays` for the candidate's
    same-information action distribution, and ``replay`` (its value and interval from
    :func:`~octobandit.offline.candidates.replay`); the candidate's ``replay`` entry has
    the replay's details (accepted rounds, ``p_min``, and the curves unless ``curves`` is
    False). The reward model is fitted once, on the log.
    """
    q = reward_model(
        rounds.context, rounds.action, rounds.reward, rounds.k, random_state=random_state
    )
    out: dict[str, Any] = {"logged": rounds.summary(), "candidates": {}}
    for c in candidates:
        dist = same_info_action_dist(c, rounds)
        estimates = estimate_arrays(
            reward=rounds.reward,
            action=rounds.action,
            pscore=rounds.pscore,
            action_dist=dist,
            estimated_rewards_by_reg_model=q,
            switch_tau=switch_tau,
            n_bootstrap_samples=n_bootstrap_samples,
            random_state=random_state,
        )
        played = replay(c, rounds, random_state=random_state)
        estimates["replay"] = {"value": played["value"], "ci95": played["ci95"]}
        if not curves:
            played.pop("curve")
        out["candidates"][c.name] = {"spec": c.spec, "estimates": estimates, "replay": played}
    return out


def _fmt(v: Any) -> str:
    return "–" if v is None else f"{v:.3f}"


def print_table(result: dict[str, Any], console: Any = None) -> None:
    """A rich table: one row per candidate (or one row for plain ``{"estimates"}``), an
    estimate and its 95% interval per column."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    rows = result.get("candidates") or {"policy": result}
    keys = [k for k in ESTIMATORS if any(k in r["estimates"] for r in rows.values())]
    table = Table(title="Off-policy estimates (value [95% interval])")
    table.add_column("candidate")
    for k in keys:
        table.add_column(k, justify="right")
    for name, r in rows.items():
        cells = []
        for k in keys:
            e = r["estimates"].get(k)
            if e is None or e["value"] is None:
                cells.append("–")
            else:
                lo, hi = e["ci95"]
                cells.append(f"{_fmt(e['value'])}\n[{_fmt(lo)}, {_fmt(hi)}]")
        table.add_row(name, *cells)
    console.print(table)
    logged = result.get("logged")
    if logged:
        console.print(
            f"logged: {logged['rounds']} rounds with an outcome (value {_fmt(logged['value'])}),"
            f" {logged['dropped']} decisions without one yet, smallest pscore "
            f"{_fmt(logged['min_pscore'])}"
        )
        for name, r in rows.items():
            played = r.get("replay")
            if played:
                console.print(
                    f"replay {name}: {played['accepted']} of {played['rounds']} rounds accepted"
                    f" (p_min {_fmt(played['p_min'])})"
                )


def plot_replay(result: dict[str, Any], path: str | Path) -> Path:
    """Replay curves (PNG): each candidate's running mean reward and cumulative regret
    against the accepted rounds. Needs matplotlib (the ``plot`` extra)."""
    from octobandit.simulation.plotting import _pyplot

    plt = _pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 7), sharex=True)
    for name, r in result["candidates"].items():
        curve = r["replay"].get("curve") or {}
        if curve.get("t"):
            top.plot(curve["t"], curve["reward"], label=name)
            bottom.plot(curve["t"], curve["regret"], label=name)
    logged = result.get("logged") or {}
    if logged.get("value") is not None:
        top.axhline(logged["value"], color="grey", linestyle="--", label="logged policy")
    top.set_ylabel("mean reward so far")
    top.set_title("Replay on the logged rounds")
    top.legend(loc="best")
    bottom.set_ylabel("regret (vs. the best arm's logged mean)")
    bottom.set_xlabel("accepted rounds")
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
