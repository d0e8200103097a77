"""Calibration of the stopping rule: false winners in A/A tests, power in A/B tests.

Run from the repository root (about 3 minutes on 2 cores with the defaults):

    .venv/bin/python bench/calibration.py [--experiments 1000] [--seed 20240611]
                                          [--max-visitors 200000] [--batch 100] [--jobs 2]

Results are printed as tables and written to ``bench/results/calibration.json``.

Design
------
Every experiment has two Bernoulli arms and is simulated in batches of visitors.  After each
batch (``--batch`` visitors per arm, i.e. ``2 × batch`` visitors in all; default 100 per arm)
the posterior summary of the data so far is computed with
:func:`octobandit.stats.conclusion.posterior_summary` (Beta(1, 1) priors) and the stopping
rules are checked with :func:`~octobandit.stats.conclusion.evaluate_batch` — the same code the
service uses, checked as often as a dashboard refreshing every 200 visitors would.  An
experiment stops at the first look where a rule is met (that arm is its winner) or, without a
winner, at ``--max-visitors`` visitors in all (default 200,000, i.e. 100,000 per arm).

Scenarios (each with ``--experiments`` independent experiments, default 1,000):

* ``aa_split``: A/A, both arms convert at 5%, traffic split 50/50 (an A/B test).  Any winner
  is a false winner.
* ``aa_thompson``: A/A with Thompson-sampling allocation: each batch of ``2 × batch`` visitors
  is split binomially with the current P(best) (batched probability matching).
* ``ab_split``: A/B, 5% vs 5.5% (a 10% relative lift), 50/50 split.  Power = fraction that
  conclude with the right winner (arm 1) within the horizon.
* ``ab_thompson``: the same with Thompson-sampling allocation.

Besides the default :class:`~octobandit.stats.conclusion.StoppingRule`, looser variants
(lower P(best) thresholds, a smaller minimum) are checked on the same simulated paths to show
the trade-off; every variant is looser than the default in every condition, so the paths need
not run longer than the default needs.  The A/B results are set beside the per-arm sample size
a fixed-horizon two-sided two-proportion z-test (α = 0.05) needs for the same power.

Experiments are vectorised with NumPy (a batch axis) and split into fixed chunks of 250 with
their own seeds (``SeedSequence(seed).spawn``), so results do not depend on ``--jobs``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

# One BLAS thread per process: the quadrature's small matrix products are slower threaded,
# and --jobs processes already use the cores.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
from scipy import stats as st  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

from octobandit.policies import ArmStats, ThompsonSampling  # noqa: E402
from octobandit.stats.conclusion import (  # noqa: E402
    StoppingRule,
    evaluate_batch,
    posterior_summary,
    reward_gain_vs_equal_split,
)

RESULTS = HERE / "results" / "calibration.json"
CHUNK = 250
BASE_RATE = 0.05
LIFT = 0.10
ALPHA = 0.05

DEFAULT = StoppingRule()
RULES: dict[str, StoppingRule] = {
    "default": DEFAULT,
    "prob_best=0.995": replace(DEFAULT, prob_best=0.995),
    "prob_best=0.99": replace(DEFAULT, prob_best=0.99),
    "prob_best=0.95": replace(DEFAULT, prob_best=0.95),
    "min_rewards_per_arm=500": replace(DEFAULT, min_rewards_per_arm=500),
    # two arms: the leader always has P(best) >= 0.5, so only the loss cap and minimum decide
    "loss cap only (prob_best=0.5)": replace(DEFAULT, prob_best=0.5),
}
THOMPSON = ThompsonSampling()  # Beta(1, 1), the service's default


@dataclass(frozen=True)
class Scenario:
    name: str
    rates: tuple[float, float]
    allocation: str  # "split" or "thompson"


SCENARIOS = [
    Scenario("aa_split", (BASE_RATE, BASE_RATE), "split"),
    Scenario("aa_thompson", (BASE_RATE, BASE_RATE), "thompson"),
    Scenario("ab_split", (BASE_RATE, BASE_RATE * (1 + LIFT)), "split"),
    Scenario("ab_thompson", (BASE_RATE, BASE_RATE * (1 + LIFT)), "thompson"),
]


def simulate(
    scenario: Scenario, size: int, seed: np.random.SeedSequence, batch: int, looks: int
) -> dict[str, Any]:
    """Run ``size`` experiments; per rule: the look at which each stopped (-1: never) and its
    winner, plus the traffic and the gain estimate at the default rule's stop (or the horizon).
    """
    rng = np.random.default_rng(seed)
    rates = np.array(scenario.rates)
    n = np.zeros((size, 2))
    s = np.zeros((size, 2))
    p_next = np.full(size, 0.5)  # probability that a visitor goes to arm 1
    stop = {name: np.full(size, -1, dtype=np.intp) for name in RULES}
    winner = {name: np.full(size, -1, dtype=np.intp) for name in RULES}
    final_n = np.zeros((size, 2))
    final_s = np.zeros((size, 2))
    smallest_min = min(r.min_rewards_per_arm for r in RULES.values())
    for look in range(looks):
        running = np.zeros(size, dtype=bool)
        for name in RULES:
            running |= stop[name] < 0  # until every rule has decided
        idx = np.flatnonzero(running)
        if idx.size == 0:
            break
        # one more batch of visitors for the running experiments
        if scenario.allocation == "split":
            to_one = np.full(idx.size, batch)
        else:
            to_one = rng.binomial(2 * batch, p_next[idx])
        visitors = np.stack([2 * batch - to_one, to_one], axis=1)
        n[idx] += visitors
        s[idx] += rng.binomial(visitors, rates)
        final_n[idx], final_s[idx] = n[idx], s[idx]
        # look at the data; no rule can be met before every arm has the smallest minimum
        ready = n[idx].min(axis=1) >= smallest_min
        if scenario.allocation == "thompson" and not ready.all():
            # the next batch's allocation, exactly as the service's Thompson policy computes it
            wait = idx[~ready]
            p_next[wait] = THOMPSON.probabilities(ArmStats(n[wait], s[wait], s[wait]))[:, 1]
        idx = idx[ready]
        if idx.size == 0:
            continue
        summary = posterior_summary(ArmStats(n[idx], s[idx], s[idx]), "binary")
        p_next[idx] = summary.prob_best[:, 1]
        for name, rule in RULES.items():
            met, leader = evaluate_batch(rule, summary, n[idx])
            new = met & (stop[name][idx] < 0)
            stop[name][idx[new]] = look
            winner[name][idx[new]] = leader[new]
    gain = np.array(
        [
            reward_gain_vs_equal_split(ArmStats(nn, ss, ss), nn)
            for nn, ss in zip(final_n, final_s, strict=True)
        ]
    )
    true_gain = final_s.sum(axis=1) - final_n.sum(axis=1) * rates.mean()
    return {
        "stop": stop,
        "winner": winner,
        "final_n": final_n,
        "gain": gain,
        "true_gain": true_gain,
    }


def _task(args: tuple[Scenario, int, np.random.SeedSequence, int, int]) -> dict[str, Any]:
    return simulate(*args)


def binom_ci(k: int, n: int) -> list[float]:
    """Exact (Clopper–Pearson) 95% interval of a proportion."""
    ci = st.binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    return [float(ci.low), float(ci.high)]


def z_test_n_per_arm(p1: float, p2: float, power: float, alpha: float = ALPHA) -> float:
    """Per-arm sample size of a fixed-horizon two-sided two-proportion z-test.

    ``n = (z_{1-α/2} sqrt(2 p̄ q̄) + z_{power} sqrt(p1 q1 + p2 q2))² / (p2 - p1)²``
    (pooled variance under H0, unpooled under H1; the far rejection tail is ignored).
    """
    if not alpha / 2 < power < 1.0:
        return math.nan
    za = float(st.norm.ppf(1 - alpha / 2))
    zb = float(st.norm.ppf(power))
    pbar = (p1 + p2) / 2
    num = za * math.sqrt(2 * pbar * (1 - pbar)) + zb * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    return num**2 / (p2 - p1) ** 2


def summarise(scenario: Scenario, res: dict[str, Any], batch: int, looks: int) -> dict[str, Any]:
    size = len(res["gain"])
    out: dict[str, Any] = {
        "rates": list(scenario.rates),
        "allocation": scenario.allocation,
        "rules": {},
    }
    ab = scenario.rates[1] > scenario.rates[0]
    for name, rule in RULES.items():
        stop, win = res["stop"][name], res["winner"][name]
        decided = stop >= 0
        visitors = np.where(decided, 2 * batch * (stop + 1), 2 * batch * looks)
        row: dict[str, Any] = {"rule": rule.params(), "decided": int(decided.sum())}
        if ab:
            right = int((decided & (win == 1)).sum())
            wrong = int((decided & (win == 0)).sum())
            power = right / size
            row |= {
                "power": power,
                "power_ci95": binom_ci(right, size),
                "wrong_winner_rate": wrong / size,
                "wrong_winner_ci95": binom_ci(wrong, size),
                "median_visitors_per_arm_to_decision": (
                    float(np.median(visitors[decided])) / 2 if decided.any() else None
                ),
                "mean_visitors_per_arm_incl_horizon": float(visitors.mean()) / 2,
                "z_test_n_per_arm_same_power": z_test_n_per_arm(*scenario.rates, power),
            }
        else:
            k = int(decided.sum())
            row |= {
                "false_winner_rate": k / size,
                "false_winner_ci95": binom_ci(k, size),
                "median_visitors_per_arm_to_false_decision": (
                    float(np.median(visitors[decided])) / 2 if decided.any() else None
                ),
            }
        out["rules"][name] = row
    n = res["final_n"]
    z = (res["gain"][:, 0] - res["true_gain"]) / res["gain"][:, 1]
    out["traffic_share_arm1"] = float(n[:, 1].sum() / n.sum())
    out["gain_vs_equal_split"] = {
        "note": "at the default rule's decision or the horizon; estimand = realised gain",
        "mean_estimate": float(res["gain"][:, 0].mean()),
        "mean_realised": float(res["true_gain"].mean()),
        "ci95_coverage": float((np.abs(z) <= 1.959964).mean()),
    }
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--experiments", type=int, default=1000, help="per scenario")
    ap.add_argument("--seed", type=int, default=20240611)
    ap.add_argument("--max-visitors", type=int, default=200_000, help="per experiment, all arms")
    ap.add_argument("--batch", type=int, default=100, help="visitors per arm between looks")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    if args.experiments < 1 or args.batch < 1 or args.max_visitors < 2 * args.batch:
        ap.error("need --experiments >= 1, --batch >= 1 and --max-visitors >= 2 * batch")
    looks = args.max_visitors // (2 * args.batch)

    started = time.perf_counter()
    root = np.random.SeedSequence(args.seed)
    seeds = root.spawn(len(SCENARIOS))
    tasks = []
    for scenario, seq in zip(SCENARIOS, seeds, strict=True):
        sizes = [min(CHUNK, args.experiments - i) for i in range(0, args.experiments, CHUNK)]
        for size, child in zip(sizes, seq.spawn(len(sizes)), strict=True):
            tasks.append((scenario, size, child, args.batch, looks))
    if args.jobs > 1:
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            parts = list(pool.map(_task, tasks))
    else:
        parts = [_task(t) for t in tasks]
    elapsed = time.perf_counter() - started

    results: dict[str, Any] = {}
    for scenario in SCENARIOS:
        mine = [p for t, p in zip(tasks, parts, strict=True) if t[0] is scenario]
        merged = {
            "stop": {r: np.concatenate([p["stop"][r] for p in mine]) for r in RULES},
            "winner": {r: np.concatenate([p["winner"][r] for p in mine]) for r in RULES},
            "final_n": np.concatenate([p["final_n"] for p in mine]),
            "gain": np.concatenate([p["gain"] for p in mine]),
            "true_gain": np.concatenate([p["true_gain"] for p in mine]),
        }
        results[scenario.name] = summarise(scenario, merged, args.batch, looks)

    p1, p2 = BASE_RATE, BASE_RATE * (1 + LIFT)
    report = {
        "command": "python bench/calibration.py " + " ".join(argv or sys.argv[1:]),
        "config": {
            "experiments_per_scenario": args.experiments,
            "seed": args.seed,
            "batch_visitors_per_arm": args.batch,
            "look_every_visitors": 2 * args.batch,
            "max_visitors_per_experiment": looks * 2 * args.batch,
            "looks": looks,
            "prior": "Beta(1, 1)",
            "default_rule": DEFAULT.params(),
        },
        "z_test_80pct_power_n_per_arm": z_test_n_per_arm(p1, p2, 0.8),
        "scenarios": results,
        "elapsed_seconds": round(elapsed, 1),
        "machine": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "cpus": os.cpu_count(),
            "jobs": args.jobs,
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print_tables(report)
    print(f"\nelapsed: {elapsed:.1f} s ({args.jobs} jobs); results: {args.out}")
    return 0


def _pct(x: float) -> str:
    return f"{100 * x:5.1f}%"


def _ci(ci: list[float]) -> str:
    return f"[{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]%"


def print_tables(report: dict[str, Any]) -> None:
    cfg = report["config"]
    print(
        f"{cfg['experiments_per_scenario']} experiments per scenario, a look every "
        f"{cfg['look_every_visitors']} visitors, horizon {cfg['max_visitors_per_experiment']:,} "
        f"visitors ({cfg['looks']} looks); default rule {cfg['default_rule']}"
    )
    for name in ("aa_split", "aa_thompson"):
        sc = report["scenarios"][name]
        print(f"\n{name}: A/A at {sc['rates'][0]:.1%}, {sc['allocation']} allocation")
        print(f"  {'rule':<30} {'false winners':>13}  {'95% CI':<16} {'median n/arm':>12}")
        for rule, row in sc["rules"].items():
            med = row["median_visitors_per_arm_to_false_decision"]
            print(
                f"  {rule:<30} {_pct(row['false_winner_rate']):>13}  "
                f"{_ci(row['false_winner_ci95']):<16} {'-' if med is None else f'{med:,.0f}':>12}"
            )
    z80 = report["z_test_80pct_power_n_per_arm"]
    print(f"\nfixed-horizon two-sided z-test (α = 0.05), 80% power: {z80:,.0f} visitors per arm")
    for name in ("ab_split", "ab_thompson"):
        sc = report["scenarios"][name]
        print(
            f"\n{name}: A/B {sc['rates'][0]:.1%} vs {sc['rates'][1]:.2%}, {sc['allocation']} "
            f"allocation (arm 1 gets {sc['traffic_share_arm1']:.0%} of the traffic)"
        )
        print(
            f"  {'rule':<30} {'power':>6}  {'95% CI':<16} {'wrong':>6}  "
            f"{'median n/arm':>12} {'mean n/arm':>10} {'z-test n/arm':>12}"
        )
        for rule, row in sc["rules"].items():
            med = row["median_visitors_per_arm_to_decision"]
            print(
                f"  {rule:<30} {_pct(row['power']):>6}  {_ci(row['power_ci95']):<16} "
                f"{_pct(row['wrong_winner_rate']):>6}  {'-' if med is None else f'{med:,.0f}':>12} "
                f"{row['mean_visitors_per_arm_incl_horizon']:>10,.0f} "
                f"{row['z_test_n_per_arm_same_power']:>12,.0f}"
            )
        g = sc["gain_vs_equal_split"]
        print(
            f"  gain vs equal split: mean estimate {g['mean_estimate']:.1f}, mean realised "
            f"{g['mean_realised']:.1f}, 95% interval coverage {g['ci95_coverage']:.1%}"
        )


if __name__ == "__main__":
    raise SystemExit(main())
