"""Regret of Thompson sampling on one Gaussian problem expressed in three units.

Run from the repository root (about 10 s; results in bench/results/unit_invariance.json):

    .venv/bin/python bench/unit_invariance.py [--horizon 2000] [--replications 200] [--seed 1]

Three Gaussian arms with means (0, 0.2, 0.5) and sd 1, in hundredths, units and hundreds
(every reward multiplied by 0.01, 1 or 100). The regret is divided by the largest gap (in
the same unit), so a policy that does not depend on the unit prints the same number three
times. The earlier default prior (``mu0 = 0, b0 = 1``, now only when given explicitly)
depended on the unit; the default (empirical ``mu0`` and ``b0``) does not: with the same
seed every choice is the same at the three scales (common random numbers).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from octobandit.policies import ThompsonSampling
from octobandit.simulation.environments import Gaussian
from octobandit.simulation.runner import simulate

RESULTS = Path(__file__).resolve().parent / "results" / "unit_invariance.json"
MEANS = np.array([0.0, 0.2, 0.5])
SCALES = (0.01, 1.0, 100.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--horizon", type=int, default=2000)
    parser.add_argument("--replications", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    priors = {
        "earlier default (mu0 = 0, b0 = 1)": ThompsonSampling(reward="continuous", mu0=0.0, b0=1.0),
        "default (empirical mu0, b0)": ThompsonSampling(reward="continuous"),
    }
    gap = float(MEANS.max() - MEANS.min())
    print(f"regret / gap at T = {args.horizon}, {args.replications} replications (± 1.96 se)")
    print(f"{'prior':36s}" + "".join(f"{'x' + format(a, 'g'):>18s}" for a in SCALES))
    table: dict[str, dict[str, dict[str, float]]] = {}
    for name, policy in priors.items():
        cells = []
        for a in SCALES:
            res = simulate(
                policy,
                Gaussian(a * MEANS, sd=a),
                args.horizon,
                replications=args.replications,
                seed=args.seed,
            )
            final = res.regret[-1] / (a * gap)
            se = final.std(ddof=1) / np.sqrt(final.size)
            cells.append(f"{final.mean():9.1f} ± {1.96 * se:5.1f}")
            table.setdefault(name, {})[f"x{a:g}"] = {"mean": float(final.mean()), "se": se}
        print(f"{name:36s}" + "".join(f"{c:>18s}" for c in cells))
    out = {"benchmark": "unit_invariance", "settings": vars(args), "regret_over_gap": table}
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
