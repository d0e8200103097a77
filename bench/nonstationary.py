"""Non-stationary benchmark: recovery after a change point that swaps the best arm.

Run from the repository root (about 3 minutes on 2 cores with the defaults):

    .venv/bin/python bench/nonstationary.py [--replications 400] [--horizon 10000]
                                            [--change 5000] [--seed 2024]

Instance: a piecewise-stationary 10-armed Bernoulli bandit. Before the change point arm 0
has mean 0.7, arm 1 0.5 and the eight others 0.3; at the change point arms 0 and 1 swap
(arm 1 becomes the best, 0.7, and the old best drops to 0.5). Every policy is the
service's own policy object, run by :func:`octobandit.simulation.simulate` on all
replications at once (stateful policies through ``init_state`` / ``update_state``).

Reported per policy, from the share of best-arm choices per 10-step window (mean over
replications, with its 95% confidence band, mean ± 1.96 SE):

* the share in the 1,000 steps before the change and in the last 1,000 steps;
* steps to recover above 80% after the change: the end of the first window whose mean
  share is >= 0.8 ("first"), whose lower 95% band is >= 0.8 ("confirmed"), and after
  which the mean never falls below 0.8 again up to the horizon ("sustained");
* the cumulative pseudo-regret over the steps after the change (mean ± 1.96 SE).

Writes ``bench/results/nonstationary.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from octobandit.policies import make_policy
from octobandit.simulation import (
    PiecewiseBernoulli,
    SimulationResult,
    print_progress,
    simulate,
)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "nonstationary.json"
Z95 = 1.959963984540054
THRESHOLD = 0.8
EVERY = 10

POLICIES: dict[str, dict[str, Any]] = {
    "thompson": {"type": "thompson"},
    "discounted_thompson(h=250)": {"type": "discounted_thompson", "half_life": 250},
    "discounted_thompson(h=500)": {"type": "discounted_thompson", "half_life": 500},
    "discounted_thompson(h=1000)": {"type": "discounted_thompson", "half_life": 1000},
    "sliding_window_ucb(W=1000)": {"type": "sliding_window_ucb", "window": 1000},
    "sliding_window_ucb(W=2000)": {"type": "sliding_window_ucb", "window": 2000},
    "exp3(γ=0.1)": {"type": "exp3", "gamma": 0.1},
    "vdbe(α=0.1)": {"type": "vdbe", "alpha": 0.1},
}


def first(flags: np.ndarray, steps: np.ndarray, change: int) -> int | None:
    hit = np.nonzero(flags)[0]
    return int(steps[hit[0]] - change) if len(hit) else None


def summarise(res: SimulationResult, change: int) -> dict[str, Any]:
    steps = res.steps
    share = res.best_arm_share
    lo, hi = res.best_arm_band
    after = steps > change
    above = share >= THRESHOLD
    # sustained: the first post-change window after which no window falls below the threshold
    below_after = np.nonzero(after & ~above)[0]
    if not above[-1]:
        sustained = None
    elif len(below_after) == 0:
        sustained = first(after, steps, change)
    else:
        sustained = int(steps[below_after[-1] + 1] - change)
    before = (steps > change - 1000) & (steps <= change)
    last = steps > steps[-1] - 1000
    at = int(np.searchsorted(steps, change))
    if steps[at] != change:
        raise ValueError("the change point must be a recorded step")
    post = res.regret[-1] - res.regret[at]
    se = float(post.std(ddof=1) / np.sqrt(len(post)))
    return {
        "policy": res.policy,
        "share_before_change": float(share[before].mean()),
        "share_last_1000": float(share[last].mean()),
        "recovery_steps": {
            "first": first(after & above, steps, change),
            "confirmed": first(after & (lo >= THRESHOLD), steps, change),
            "sustained": sustained,
        },
        "regret_after_change": {
            "mean": float(post.mean()),
            "se": se,
            "lo": float(post.mean() - Z95 * se),
            "hi": float(post.mean() + Z95 * se),
        },
        "elapsed_s": round(res.elapsed_s, 2),
        "best_arm_share": {
            "step": steps.tolist(),
            "mean": [round(float(x), 5) for x in share],
            "lo": [round(float(x), 5) for x in lo],
            "hi": [round(float(x), 5) for x in hi],
        },
    }


def fmt(x: int | None) -> str:
    return "never" if x is None else str(x)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--replications", type=int, default=400)
    ap.add_argument("--horizon", type=int, default=10_000)
    ap.add_argument("--change", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=2024)
    args = ap.parse_args()
    if args.change % EVERY or not 1000 <= args.change < args.horizon:
        ap.error(f"--change must be a multiple of {EVERY}, >= 1000 and below the horizon")

    before = [0.7, 0.5] + [0.3] * 8
    after = [0.5, 0.7] + [0.3] * 8
    env = PiecewiseBernoulli([before, after], change_points=[args.change])
    report: dict[str, Any] = {
        "benchmark": "nonstationary",
        "command": "python bench/nonstationary.py " + " ".join(sys.argv[1:]),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "numpy": np.__version__,
        },
        "settings": {
            "environment": env.describe(),
            "horizon": args.horizon,
            "replications": args.replications,
            "seed": args.seed,
            "record_every": EVERY,
            "threshold": THRESHOLD,
        },
        "band": "95% confidence interval of the mean over replications (mean ± 1.96 SE)",
        "recovery": (
            "steps after the change point to the end of the first 10-step window whose mean "
            "best-arm share is >= 0.8 (first), whose lower 95% band is >= 0.8 (confirmed), "
            "and after which the mean share stays >= 0.8 up to the horizon (sustained)"
        ),
        "policies": {},
    }
    print(
        f"\n== 10 arms, best arm swapped (0.7 <-> 0.5) at step {args.change}, "
        f"horizon {args.horizon}, {args.replications} replications ==",
        flush=True,
    )
    rows: dict[str, dict[str, Any]] = {}
    for i, (label, spec) in enumerate(POLICIES.items()):
        res = simulate(
            make_policy(spec),
            env,
            args.horizon,
            args.replications,
            seed=args.seed + i,
            record_every=EVERY,
            progress=print_progress(label),
            label=label,
        )
        rows[label] = summarise(res, args.change)
    print(
        f"{'policy':<29}{'share before':>13}{'last 1000':>11}"
        f"{'recovery: first':>17}{'confirmed':>11}{'sustained':>11}"
        f"{'regret after change':>24}{'time':>8}"
    )
    for label, row in rows.items():
        rec, reg = row["recovery_steps"], row["regret_after_change"]
        print(
            f"{label:<29}{row['share_before_change']:>13.3f}{row['share_last_1000']:>11.3f}"
            f"{fmt(rec['first']):>17}{fmt(rec['confirmed']):>11}{fmt(rec['sustained']):>11}"
            f"{reg['mean']:>15.1f} ± {Z95 * reg['se']:<6.1f}{row['elapsed_s']:>7.1f}s"
        )
    report["policies"] = rows
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    print("\nresults:", RESULTS.relative_to(ROOT))


if __name__ == "__main__":
    main()
