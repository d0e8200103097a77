"""Contextual benchmark: LinUCB and linear Thompson sampling against non-contextual policies.

Run from the repository root (about 1.5 minutes on 2 cores with the defaults):

    .venv/bin/python bench/contextual.py [--replications 200] [--horizon 10000]
                                         [--arms 5] [--features 4] [--seed 2024]

Instance: :class:`~octobandit.simulation.LinearContextual` with ``K`` arms and contexts
``x = (1, z)``, ``z ~ N(0, I)`` of ``features`` dimensions; arm ``i`` pays
``θ_i · x + N(0, 1)``. The coefficients are drawn once from ``--instance-seed``:
intercepts ``N(0, 0.2²)``, slopes ``N(0, 0.5²)``, so which arm is best depends on the
context and every fixed arm loses a constant amount per step (printed as the
oracle gap: ``E[max_i θ_i · x] - max_i θ_i · E[x]``, by Monte Carlo).

Policies (rewards declared continuous): ``linucb`` (α = 1, λ = 1), ``linear_thompson``
(v = 1, λ = 1) — the service's policy objects, driven by a vectorised loop over the
replications below (``state_draw`` / ``update_state``, one context per replication and
step) — and ``thompson``, ``ucb1``, ``epsilon_greedy`` (ε = 0.1), which never see the
context, through :func:`octobandit.simulation.simulate`. Both drivers measure the same
pseudo-regret ``Σ_t max_a μ_a(x_t) - μ_{A_t}(x_t)``.

Reported per policy: the cumulative regret at the horizon (mean, standard error, 95%
band of the mean over replications), its ratio to the best non-contextual policy's (with
a 95% band by the delta method; the runs are independent), and the share of optimal
choices in the last 10% of the steps; plus the cost of the service's call, one
``state_probabilities`` for 1 and for 100 contexts on a state of one problem. Results:
``bench/results/contextual.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from octobandit.policies import ArmStats, make_policy
from octobandit.policies.linear import DisjointRidge
from octobandit.simulation import LinearContextual, simulate

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "contextual.json"
Z95 = 1.959963984540054

CONTEXTUAL: dict[str, dict[str, Any]] = {
    "linucb": {"type": "linucb", "alpha": 1.0, "ridge": 1.0},
    "linear_thompson": {"type": "linear_thompson", "v": 1.0, "ridge": 1.0},
}
NON_CONTEXTUAL: dict[str, dict[str, Any]] = {
    "thompson": {"type": "thompson"},
    "ucb1": {"type": "ucb1"},
    "epsilon_greedy(0.1)": {"type": "epsilon_greedy", "epsilon": 0.1},
}


def checkpoints(horizon: int) -> list[int]:
    """Steps at which the mean regret is reported (multiples of the simulator's records)."""
    every = max(1, horizon // 100)
    return sorted(
        {max(every, horizon * f // (100 * every) * every) for f in (10, 25, 50)} | {horizon}
    )


def instance(arms: int, features: int, seed: int) -> LinearContextual:
    rng = np.random.default_rng(seed)
    theta = np.column_stack([rng.normal(0.0, 0.2, arms), rng.normal(0.0, 0.5, (arms, features))])
    return LinearContextual(theta.round(3), intercept=True, noise_sd=1.0)


def oracle_gap(env: LinearContextual, seed: int, draws: int = 1_000_000) -> float:
    """Per-step regret of the best fixed arm, ``E[max_i θ_i·x] - max_i θ_i·E[x]``."""
    x = env.contexts(0, draws, np.random.default_rng(seed))
    mu = env.expected_rewards(0, x)
    return float(mu.max(axis=1).mean() - np.asarray(env.theta)[:, 0].max())


def run_contextual(
    policy: DisjointRidge, env: LinearContextual, horizon: int, replications: int, seed: int
) -> dict[str, Any]:
    """Vectorised loop mirroring ``simulate``: independent policy and environment streams."""
    policy_rng, env_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    r = replications
    state = policy.init_state(r, env.k, env.context_dim)
    stats = ArmStats.zeros(env.k, (r,))
    rows, ones, nan = np.arange(r), np.ones(r), np.full(r, np.nan)
    cum = np.zeros(r)
    hits = np.zeros(r)
    tail = horizon - max(1, horizon // 10)
    marks = checkpoints(horizon)
    at: list[float] = []
    started = time.perf_counter()
    for t in range(horizon):
        x = env.contexts(t, r, env_rng)
        mu = env.expected_rewards(t, x)
        arms = policy.state_draw(stats, None, state, policy_rng, contexts=x, time=float(t))
        chosen = mu[rows, arms]
        step = mu.max(axis=1) - chosen
        cum += step
        if t >= tail:
            hits += step == 0
        rewards = env.rewards(arms, chosen, env_rng)
        policy.update_state(
            state, arms, rewards, ones, propensities=nan, contexts=x, times=np.full(r, float(t))
        )
        if t + 1 in marks:
            at.append(float(cum.mean()))
    return {
        "final": cum,
        "regret_at": dict(zip(marks, at, strict=True)),
        "best_arm_share": float(hits.mean() / (horizon - tail)),
        "elapsed_s": time.perf_counter() - started,
        "driver": "bench/contextual.py loop (state_draw, update_state)",
    }


def run_simulate(
    spec: dict[str, Any], env: LinearContextual, horizon: int, replications: int, seed: int
) -> dict[str, Any]:
    every = max(1, horizon // 100)
    res = simulate(
        make_policy(spec, "continuous"), env, horizon, replications, seed, record_every=every
    )
    last = max(1, len(res.steps) // 10)
    means = res.regret_mean
    return {
        "final": res.regret[-1],
        "regret_at": {
            m: float(means[int(np.searchsorted(res.steps, m))]) for m in checkpoints(horizon)
        },
        "best_arm_share": float(res.best_arm[-last:].mean()),
        "elapsed_s": res.elapsed_s,
        "driver": "octobandit.simulation.simulate",
    }


def service_call_cost(env: LinearContextual, seed: int) -> dict[str, dict[str, float]]:
    """Median seconds of one state_probabilities call on a state of one problem."""
    rng = np.random.default_rng(seed)
    out: dict[str, dict[str, float]] = {}
    for label, spec in CONTEXTUAL.items():
        policy = make_policy(spec, "continuous")
        assert isinstance(policy, DisjointRidge)
        state = policy.init_state(1, env.k, env.context_dim)
        for _ in range(200):  # some history, so that the arms differ
            x = env.contexts(0, 1, rng)
            arm = rng.integers(0, env.k, 1)
            r = env.rewards(arm, env.expected_rewards(0, x)[0, arm], rng)
            policy.update_state(
                state, arm, r, np.ones(1), propensities=np.full(1, np.nan), contexts=x,
                times=np.zeros(1),
            )  # fmt: skip
        stats = ArmStats.zeros(env.k)
        out[label] = {}
        for m in (1, 100):
            xs = env.contexts(0, m, rng)
            times = []
            for _ in range(30):
                started = time.perf_counter()
                policy.state_probabilities(stats, None, state, contexts=xs)
                times.append(time.perf_counter() - started)
            out[label][f"contexts_{m}"] = float(np.median(times))
    return out


def summary(final: np.ndarray) -> dict[str, float]:
    mean = float(final.mean())
    se = float(final.std(ddof=1) / math.sqrt(final.size))
    return {"mean": mean, "se": se, "lo": mean - Z95 * se, "hi": mean + Z95 * se}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--replications", type=int, default=200)
    ap.add_argument("--horizon", type=int, default=10_000)
    ap.add_argument("--arms", type=int, default=5)
    ap.add_argument("--features", type=int, default=4)
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--instance-seed", type=int, default=11)
    args = ap.parse_args()

    env = instance(args.arms, args.features, args.instance_seed)
    gap = oracle_gap(env, args.seed + 999)
    print(
        f"{args.arms} arms, d = {env.context_dim} (intercept + {args.features}), "
        f"horizon {args.horizon}, {args.replications} replications; "
        f"best fixed arm loses {gap:.4f} per step",
        flush=True,
    )
    runs: dict[str, dict[str, Any]] = {}
    for i, (label, spec) in enumerate(CONTEXTUAL.items()):
        policy = make_policy(spec, "continuous")
        assert isinstance(policy, DisjointRidge)
        runs[label] = run_contextual(policy, env, args.horizon, args.replications, args.seed + i)
        runs[label]["policy"] = policy.params()
        print(f"  {label}: {runs[label]['elapsed_s']:.1f} s", file=sys.stderr, flush=True)
    for i, (label, spec) in enumerate(NON_CONTEXTUAL.items()):
        runs[label] = run_simulate(spec, env, args.horizon, args.replications, args.seed + 10 + i)
        runs[label]["policy"] = make_policy(spec, "continuous").params()
        print(f"  {label}: {runs[label]['elapsed_s']:.1f} s", file=sys.stderr, flush=True)

    for run in runs.values():
        run["final_regret"] = summary(run.pop("final"))
    best_label = min(NON_CONTEXTUAL, key=lambda k: runs[k]["final_regret"]["mean"])
    best = runs[best_label]["final_regret"]
    print(
        f"\n{'policy':<22}{'regret(T)':>11}{'95% band':>21}{'/ best non-ctx':>16}"
        f"{'95% band':>17}{'best arm, last 10%':>20}{'time':>8}"
    )
    for label, run in runs.items():
        f = run["final_regret"]
        ratio = f["mean"] / best["mean"]
        # the best policy's ratio to itself is exactly 1; the others' runs are independent of it
        rel = (
            0.0
            if label == best_label
            else math.hypot(f["se"] / f["mean"], best["se"] / best["mean"])
        )
        run["ratio_to_best_non_contextual"] = {
            "ratio": ratio,
            "lo": ratio - Z95 * ratio * rel,
            "hi": ratio + Z95 * ratio * rel,
        }
        rb = run["ratio_to_best_non_contextual"]
        run["elapsed_s"] = round(run["elapsed_s"], 2)
        print(
            f"{label:<22}{f['mean']:>11.1f}{f['lo']:>10.1f} – {f['hi']:<8.1f}{ratio:>16.4f}"
            f"{rb['lo']:>8.4f} – {rb['hi']:<6.4f}{run['best_arm_share']:>20.3f}"
            f"{run['elapsed_s']:>7.1f}s"
        )
    cost = service_call_cost(env, args.seed + 7)
    print(f"\nbest non-contextual policy: {best_label}; oracle gap × T = {gap * args.horizon:.1f}")
    print("mean regret at", ", ".join(str(m) for m in checkpoints(args.horizon)), "steps:")
    for label, run in runs.items():
        print(f"  {label:<22}" + "".join(f"{v:>10.1f}" for v in run["regret_at"].values()))
    for label, c in cost.items():
        print(
            f"state_probabilities, {label}: {c['contexts_1'] * 1e3:.3f} ms for 1 context, "
            f"{c['contexts_100'] * 1e3:.3f} ms for 100"
        )

    report = {
        "benchmark": "contextual",
        "command": "python bench/contextual.py " + " ".join(sys.argv[1:]),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "numpy": np.__version__,
        },
        "settings": vars(args),
        "environment": env.describe(),
        "oracle_gap_per_step": gap,
        "band": "95% confidence interval of the mean over replications (mean ± 1.96 SE); "
        "ratio bands by the delta method for independent runs",
        "best_non_contextual": best_label,
        "policies": runs,
        "state_probabilities_seconds": cost,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=1) + "\n")
    print("\nresults:", RESULTS.relative_to(ROOT))


if __name__ == "__main__":
    main()
