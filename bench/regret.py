"""Regret benchmark: Thompson, KL-UCB, UCB1 and ε-greedy(0.1) on 10-armed Bernoulli bandits.

Run from the repository root (about 3 minutes on 2 cores with the defaults; the figures
need matplotlib: ``.venv/bin/pip install matplotlib``):

    .venv/bin/python bench/regret.py [--replications 1000] [--horizon 10000]
                                     [--gaps 0.1 0.02] [--seed 2024] [--no-plot]

Instance: 10 arms, the best with mean 0.5, the other nine 0.5 - gap (gap 0.1 and 0.02).
Every policy is the service's own policy object, run by
:func:`octobandit.simulation.simulate` on all replications at once. Reported per gap and
policy: the cumulative pseudo-regret at the horizon (mean, standard error, 95% confidence
band of the mean over replications), its ratio to Thompson's and to the Lai–Robbins
asymptotic lower bound ``Σ_i Δ_i / KL(μ_i, μ*) · ln T``, the share of best-arm plays in
the last 10% of the steps, and which pairwise orderings the 95% bands confirm (the 95%
confidence interval of the difference of the means excludes 0).

Writes ``bench/results/regret.json`` and ``docs/img/regret_gap<gap>.png`` (mean regret with
95% bands, the Lai–Robbins curve dashed).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from octobandit.policies import make_policy
from octobandit.simulation import (
    Bernoulli,
    SimulationResult,
    lai_robbins_bound,
    lai_robbins_constant,
    plot_results,
    print_progress,
    simulate,
)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "regret.json"
IMAGES = ROOT / "docs" / "img"
Z95 = 1.959963984540054

POLICIES: dict[str, dict[str, Any]] = {
    "thompson": {"type": "thompson"},
    "kl_ucb": {"type": "kl_ucb"},
    "ucb1": {"type": "ucb1"},
    "epsilon_greedy(0.1)": {"type": "epsilon_greedy", "epsilon": 0.1},
}


def confirmed_orderings(runs: dict[str, SimulationResult]) -> list[str]:
    out = []
    for a, b in itertools.combinations(runs, 2):
        fa, fb = runs[a].final_regret, runs[b].final_regret
        diff = fa["mean"] - fb["mean"]
        half = Z95 * math.hypot(fa["se"], fb["se"])
        if diff + half < 0:
            out.append(f"{a} < {b}")
        elif diff - half > 0:
            out.append(f"{b} < {a}")
    return out


def thin(res: SimulationResult, points: int = 200) -> dict[str, list[float]]:
    series = res.series()
    idx = np.unique(np.linspace(0, len(res.steps) - 1, points).round().astype(int))
    keep = ("step", "regret_mean", "regret_lo", "regret_hi", "best_arm_share")
    return {k: [series[k][i] for i in idx] for k in keep}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--replications", type=int, default=1000)
    ap.add_argument("--horizon", type=int, default=10_000)
    ap.add_argument("--gaps", type=float, nargs="+", default=[0.1, 0.02])
    ap.add_argument("--arms", type=int, default=10)
    ap.add_argument("--best", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--no-plot", action="store_true", help="skip the PNG figures")
    ap.add_argument(
        "--out", type=Path, default=RESULTS, help="results file (default bench/results/regret.json)"
    )
    args = ap.parse_args()

    report: dict[str, Any] = {
        "benchmark": "regret",
        "command": "python bench/regret.py " + " ".join(sys.argv[1:]),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "numpy": np.__version__,
        },
        "settings": {
            "arms": args.arms,
            "best": args.best,
            "gaps": args.gaps,
            "horizon": args.horizon,
            "replications": args.replications,
            "seed": args.seed,
        },
        "band": "95% confidence interval of the mean over replications (mean ± 1.96 SE)",
        "instances": [],
    }
    for gi, gap in enumerate(args.gaps):
        env = Bernoulli.with_gap(args.arms, best=args.best, gap=gap)
        means = np.asarray(env.means)
        print(f"\n== {args.arms} arms, best {args.best}, gap {gap} ==", flush=True)
        runs: dict[str, SimulationResult] = {}
        for pi, (label, spec) in enumerate(POLICIES.items()):
            runs[label] = simulate(
                make_policy(spec),
                env,
                args.horizon,
                args.replications,
                seed=args.seed + 100 * gi + pi,
                record_every=max(1, args.horizon // 1000),
                progress=print_progress(label),
                label=label,
            )
        bound_t = float(lai_robbins_bound(means, args.horizon))
        last_tenth = max(1, len(runs["thompson"].steps) // 10)
        rows = {}
        base = runs["thompson"].final_regret["mean"]
        print(
            f"{'policy':<22}{'regret(T)':>11}{'± 1.96 SE':>11}{'/ Thompson':>12}"
            f"{'/ Lai-Robbins':>15}{'best arm, last 10%':>20}{'time':>8}"
        )
        for label, res in runs.items():
            f = res.final_regret
            share = float(res.best_arm[-last_tenth:].mean())
            rows[label] = {
                "policy": res.policy,
                "final_regret": f,
                "ratio_to_thompson": f["mean"] / base,
                "ratio_to_lai_robbins": f["mean"] / bound_t,
                "best_arm_share_last_10pct": share,
                "elapsed_s": round(res.elapsed_s, 2),
                "series": thin(res),
            }
            print(
                f"{label:<22}{f['mean']:>11.1f}{Z95 * f['se']:>11.1f}{f['mean'] / base:>12.2f}"
                f"{f['mean'] / bound_t:>15.2f}{share:>20.3f}{res.elapsed_s:>7.1f}s"
            )
        orderings = confirmed_orderings(runs)
        print(f"Lai–Robbins bound at T = {args.horizon}: {bound_t:.1f}")
        print("orderings confirmed by the 95% bands:", ", ".join(orderings) or "none")
        figure = None
        if not args.no_plot:
            steps = np.unique(np.geomspace(1, args.horizon, 400).round())
            figure = plot_results(
                list(runs.values()),
                IMAGES
                / (
                    f"regret_gap{gap:g}.png"
                    if args.horizon == 10_000
                    else f"regret_gap{gap:g}_T{args.horizon}.png"
                ),
                title=(
                    f"{args.arms}-armed Bernoulli, best {args.best}, gap {gap:g}: "
                    f"mean regret, 95% bands (R = {args.replications})"
                ),
                lower_bound=(steps, lai_robbins_bound(means, steps)),
            )
            print("figure:", figure.relative_to(ROOT))
        report["instances"].append(
            {
                "gap": gap,
                "means": means.tolist(),
                "lai_robbins_constant": lai_robbins_constant(means),
                "lai_robbins_bound_at_horizon": bound_t,
                "policies": rows,
                "confirmed_orderings": orderings,
                "figure": None if figure is None else str(figure.relative_to(ROOT)),
            }
        )
    out = args.out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    print("\nresults:", out)


if __name__ == "__main__":
    main()
