"""Simulator speed: Thompson sampling through ``simulate`` vs a hand-written NumPy loop.

Run from the repository root (about 1 minute on 2 cores with the defaults):

    .venv/bin/python bench/simulation_speed.py [--replications 1000] [--horizon 10000]
                                               [--arms 10] [--repeats 3] [--seed 7]

Both sides run the same algorithm on the same instance (10 Bernoulli arms, best 0.5,
the others 0.4; Beta(1, 1) priors) with all replications vectorised:

* ``simulate``: :func:`octobandit.simulation.simulate` with the service's
  ``ThompsonSampling`` policy object (one ``policy.choose`` call per step on the
  ``(R, K)`` statistics, plus the simulator's regret and best-arm records);
* ``numpy loop``: :func:`numpy_thompson` below, the straightforward loop one would write
  by hand: draw ``Beta(1 + s, 1 + n - s)`` for every arm, take the argmax, draw the
  rewards, update the counts, accumulate the regret.

* ``simulate_parallel``: the same with ``workers=--workers`` processes (default: the
  number of CPUs), each running a share of the replications.

They alternate (``--repeats`` times each, in the same run), the best time of each
is kept, and the ratio ``simulate / numpy loop`` and the speed-up of the parallel
run over the numpy loop are printed. Both mean regrets are
printed too, as a check that the two loops do the same thing. Results:
``bench/results/simulation_speed.json``.
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

import numpy as np

from octobandit.policies import ThompsonSampling
from octobandit.simulation import Bernoulli, simulate

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "simulation_speed.json"


def numpy_thompson(
    means: np.ndarray, horizon: int, replications: int, seed: int
) -> tuple[float, np.ndarray]:
    """Beta–Bernoulli Thompson sampling, all replications at once; returns (seconds, regret)."""
    rng = np.random.default_rng(seed)
    k = means.size
    rows = np.arange(replications)
    n = np.zeros((replications, k))
    s = np.zeros((replications, k))
    gaps = means.max() - means
    regret = np.zeros(replications)
    started = time.perf_counter()
    for _ in range(horizon):
        theta = rng.beta(1.0 + s, 1.0 + n - s)
        arms = theta.argmax(axis=1)
        rewards = rng.random(replications) < means[arms]
        n[rows, arms] += 1.0
        s[rows, arms] += rewards
        regret += gaps[arms]
    return time.perf_counter() - started, regret


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--replications", type=int, default=1000)
    ap.add_argument("--horizon", type=int, default=10_000)
    ap.add_argument("--arms", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument(
        "--workers", type=int, default=os.cpu_count() or 2, help="processes for simulate_parallel"
    )
    args = ap.parse_args()

    env = Bernoulli.with_gap(args.arms, best=0.5, gap=0.1)
    means = np.asarray(env.means)
    policy = ThompsonSampling()
    names = ("simulate", "simulate_parallel", "numpy_loop")
    runs: dict[str, list[float]] = {k: [] for k in names}
    regrets: dict[str, list[float]] = {k: [] for k in names}
    ses: dict[str, list[float]] = {k: [] for k in names}
    for rep in range(args.repeats):
        seed = args.seed + rep
        res = simulate(policy, env, args.horizon, args.replications, seed=seed)
        runs["simulate"].append(res.elapsed_s)
        regrets["simulate"].append(res.final_regret["mean"])
        ses["simulate"].append(res.final_regret["se"])
        par = simulate(
            policy, env, args.horizon, args.replications, seed=seed, workers=args.workers
        )
        runs["simulate_parallel"].append(par.elapsed_s)
        regrets["simulate_parallel"].append(par.final_regret["mean"])
        ses["simulate_parallel"].append(par.final_regret["se"])
        secs, regret = numpy_thompson(means, args.horizon, args.replications, seed)
        runs["numpy_loop"].append(secs)
        regrets["numpy_loop"].append(float(regret.mean()))
        ses["numpy_loop"].append(float(regret.std(ddof=1) / math.sqrt(regret.size)))
        print(
            f"repeat {rep + 1}: simulate {res.elapsed_s:.2f} s "
            f"(regret {regrets['simulate'][-1]:.1f}), {args.workers} workers "
            f"{par.elapsed_s:.2f} s, numpy loop {secs:.2f} s "
            f"(regret {regrets['numpy_loop'][-1]:.1f})",
            flush=True,
        )
    best = {k: min(v) for k, v in runs.items()}
    ratio = best["simulate"] / best["numpy_loop"]
    speedup = best["numpy_loop"] / best["simulate_parallel"]
    steps = args.horizon * args.replications
    print(
        f"\n{args.replications} replications × {args.horizon} steps × {args.arms} arms "
        f"(best of {args.repeats}):"
    )
    for k in runs:
        print(f"  {k:<11} {best[k]:7.2f} s  {steps / best[k] / 1e6:6.2f} M replication-steps/s")
    print(f"  ratio simulate / numpy loop: {ratio:.2f}")
    print(f"  speed-up of simulate with {args.workers} workers over the numpy loop: {speedup:.2f}x")

    report = {
        "benchmark": "simulation_speed",
        "command": "python bench/simulation_speed.py " + " ".join(sys.argv[1:]),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "numpy": np.__version__,
        },
        "settings": vars(args),
        "seconds": runs,
        "best_seconds": best,
        "replication_steps_per_s": {k: steps / v for k, v in best.items()},
        "ratio_simulate_to_numpy_loop": ratio,
        "speedup_parallel_over_numpy_loop": speedup,
        "mean_regret": regrets,
        "mean_regret_se": ses,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=1) + "\n")
    print("results:", RESULTS.relative_to(ROOT))


if __name__ == "__main__":
    main()
