"""Delayed conversions: regret and bias of the mean estimates under attribution windows.

Run from the repository root (about 2 minutes on 2 cores with the defaults; the figure
needs matplotlib):

    .venv/bin/python bench/delays.py [--replications 500] [--horizon 50000]
                                     [--delay-mean 1000] [--windows 1000 5000 10000]
                                     [--eager-window 5000] [--seed 2026] [--workers 2]
                                     [--no-plot]

Instance: 10 Bernoulli arms with conversion rates 0.10, 0.09, ..., 0.01 (the range of
web conversion rates; the best arm is 0.01 above the second, so telling them apart takes
tens of thousands of decisions). Conversions (rewards of 1) are reported an exponential
delay of mean ``--delay-mean`` decisions after their decision (whole steps rounded down,
see :mod:`octobandit.simulation.delays`); failures are never reported. The policy is
Thompson sampling with its default Beta(1, 1) prior (the service's default policy), run
by :func:`octobandit.simulation.simulate` with the same seed for every strategy:

* ``immediate``: no delay, every reward counted at once (the reference);
* ``window W``: attribution window of W decisions, default reward 0 (the service's
  ``reward.attribution_window`` and ``reward.default``), one run per ``--windows`` value:
  every decision is counted once when its window closes, as a conversion if one arrived
  inside it, else with the default; nothing is counted while the window is open;
* ``window_immediate_successes``: for comparison only, the previous semantics
  (``feedback="window_eager"``, window ``--eager-window``): conversions counted as they
  arrive, decisions without one when their window closes; not what the service does;
* ``failure_until_reward``: every decision counted as a failure at once, its conversion
  added when it arrives;
* ``positives_only``: no window, only conversions counted.

Reported per strategy: the cumulative pseudo-regret (median and 2.5%–97.5% quantiles of
the replications, and the mean with its 95% confidence band) at a few steps and at the
horizon; the bias of each arm's mean estimate ``s / n`` at the horizon (estimate minus
true mean, and relative to the true mean: median and 2.5%–97.5% quantiles over
replications); the counted, pending and late decisions; and, where there is a closed
form, the expected estimate for an arm played at a constant rate (see ``expected`` in
the JSON).

Writes ``bench/results/delays.json`` and ``docs/img/delays_regret.png`` (mean regret and
best-arm share with 95% confidence bands of the mean; dotted: 2.5%–97.5% of single runs).
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

from octobandit.policies import make_policy
from octobandit.simulation import (
    Bernoulli,
    Exponential,
    SimulationResult,
    plot_results,
    print_progress,
    simulate,
)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "delays.json"
IMAGE = ROOT / "docs" / "img" / "delays_regret.png"
MEANS = [0.10, 0.09, 0.08, 0.07, 0.06, 0.05, 0.04, 0.03, 0.02, 0.01]
CHECKPOINTS = (1_000, 2_000, 5_000, 10_000, 20_000)


def band(x: np.ndarray) -> dict[str, float]:
    """Median and 2.5%–97.5% quantiles over replications (NaNs left out)."""
    q = np.nanquantile(x, [0.5, 0.025, 0.975])
    return {"median": float(q[0]), "q025": float(q[1]), "q975": float(q[2])}


def expected(
    strategy: str, means: np.ndarray, delay: Exponential, horizon: int, window: int | None
) -> dict[str, Any]:
    """Expected mean estimate at the horizon of an arm played at a constant rate
    (a ratio of expected counts), from the delay's closed forms."""
    if strategy == "immediate":
        return {"factor": 1.0, "estimate": means.tolist(), "note": "no delay: unbiased"}
    if strategy == "positives_only":
        return {"estimate": [1.0] * len(means), "note": "every counted reward is a 1"}
    if strategy == "failure_until_reward":
        f = delay.mean_arrived(horizon)
        return {
            "factor": f,
            "estimate": (means * f).tolist(),
            "note": "(1/H) Σ_{j<H} P(D <= j) ≈ 1 - (m/H)(1 - e^{-H/m}): the conversions of "
            "the last decisions have not arrived yet",
        }
    assert window is not None
    q = delay.within(window)  # closed decisions: converted within the window
    if strategy == "window":
        return {
            "factor": q,
            "estimate": (means * q).tolist(),
            "note": "only closed decisions are counted, each a conversion with probability "
            "P(D < W) = 1 - e^{-W/m}",
        }
    closed = horizon - window + 1
    young = float(delay.arrived(np.arange(window - 1)).sum())  # E[young conversions] / μ
    est = means * (closed * q + young) / (closed + means * young)
    return {
        "factor_closed_windows": q,
        "estimate": est.tolist(),
        "note": "decisions whose window closed count a conversion with probability "
        "1 - e^{-W/m}; the conversions of decisions still in their window are counted, "
        "their failures not yet, which pushes the estimate up",
    }


def summarise(res: SimulationResult, means: np.ndarray, strategy: str) -> dict[str, Any]:
    horizon = res.horizon
    marks = [c for c in CHECKPOINTS if c < horizon] + [horizon]
    regret = {str(c): band(res.regret[int(np.searchsorted(res.steps, c))]) for c in marks}
    est = res.estimates
    bias = est - means
    rel = bias / means
    last_tenth = max(1, len(res.steps) // 10)
    out: dict[str, Any] = {
        "strategy": strategy,
        "feedback": res.feedback,
        "elapsed_s": round(res.elapsed_s, 1),
        "regret": regret,
        "regret_mean_at_horizon": res.final_regret,
        "best_arm_share_last_10pct": float(res.best_arm[-last_tenth:].mean()),
        "mean_pulls": res.pulls.mean(axis=0).tolist(),
        "bias": {
            "per_arm": [band(bias[:, a]) for a in range(len(means))],
            "relative_per_arm": [band(rel[:, a]) for a in range(len(means))],
            "best_arm": band(bias[:, 0]),
            "best_arm_relative": band(rel[:, 0]),
            "best_arm_estimate": band(est[:, 0]),
            "mean_relative_over_arms": band(np.nanmean(rel, axis=1)),
            "runs_with_an_arm_never_counted": int(np.isnan(est).any(axis=1).sum()),
        },
        "counts_per_run": {
            "counted": band(res.stats.n.sum(axis=1)),
            "pending": band(
                np.zeros(res.replications) if res.pending is None else res.pending.sum(axis=1)
            ),
            "late": band(np.zeros(res.replications) if res.late is None else res.late.sum(axis=1)),
        },
    }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--replications", type=int, default=500)
    ap.add_argument("--horizon", type=int, default=50_000)
    ap.add_argument("--delay-mean", type=float, default=1000.0)
    ap.add_argument("--windows", type=int, nargs="+", default=[1000, 5000, 10_000])
    ap.add_argument(
        "--eager-window",
        type=int,
        default=5000,
        help="window of the window_immediate_successes comparison run (0: skip it)",
    )
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--workers", type=int, default=2, help="processes per simulation")
    ap.add_argument("--no-plot", action="store_true", help="skip the PNG figure")
    ap.add_argument(
        "--out", type=Path, default=RESULTS, help="results file (default bench/results/delays.json)"
    )
    args = ap.parse_args()

    means = np.asarray(MEANS)
    delay = Exponential(args.delay_mean)
    delayed = Bernoulli(MEANS, delay=delay)
    policy = make_policy({"type": "thompson"})
    strategies: list[tuple[str, Bernoulli, dict[str, Any]]] = [
        ("immediate", Bernoulli(MEANS), {}),
        *((f"window {w}", delayed, {"feedback": "window", "window": w}) for w in args.windows),
        *(
            [
                (
                    "window_immediate_successes",
                    delayed,
                    {"feedback": "window_eager", "window": args.eager_window},
                )
            ]
            if args.eager_window > 0
            else []
        ),
        ("failure_until_reward", delayed, {"feedback": "failure_until_reward"}),
        ("positives_only", delayed, {"feedback": "positives_only"}),
    ]
    report: dict[str, Any] = {
        "benchmark": "delays",
        "command": "python bench/delays.py " + " ".join(sys.argv[1:]),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "numpy": np.__version__,
        },
        "settings": {
            "means": MEANS,
            "policy": policy.params(),
            "delay": delay.describe(),
            "horizon": args.horizon,
            "replications": args.replications,
            "windows": args.windows,
            "eager_window": args.eager_window,
            "default_reward": 0.0,
            "seed": args.seed,
            "workers": args.workers,
        },
        "bands": "median and 2.5%-97.5% quantiles of single replications",
        "strategies": {},
    }
    runs: dict[str, SimulationResult] = {}
    started = time.perf_counter()
    for label, env, kw in strategies:
        res = simulate(
            policy,
            env,
            args.horizon,
            args.replications,
            seed=args.seed,
            record_every=max(1, args.horizon // 500),
            progress=print_progress(label, every=30.0),
            label=label,
            workers=args.workers,
            **kw,
        )
        runs[label] = res
        row = summarise(res, means, label)
        window = kw.get("window")
        row["expected"] = expected(label.split()[0], means, delay, args.horizon, window)
        report["strategies"][label] = row
        r, b = row["regret"][str(args.horizon)], row["bias"]["best_arm_relative"]
        print(
            f"{label:<27} regret(T) median {r['median']:8.1f} [{r['q025']:.1f}, {r['q975']:.1f}]"
            f"  best arm relative bias {b['median']:+.3f} [{b['q025']:+.3f}, {b['q975']:+.3f}]"
            f"  {res.elapsed_s:.0f} s",
            flush=True,
        )
    report["elapsed_s"] = round(time.perf_counter() - started, 1)
    if not args.no_plot:
        try:
            figure = plot_results(
                list(runs.values()),
                IMAGE,
                title=(
                    f"Thompson, 10 arms 0.10…0.01, conversions Exp({args.delay_mean:g}) late, "
                    f"R = {args.replications}"
                ),
                spread=True,
            )
            report["figure"] = str(figure.relative_to(ROOT))
            print("figure:", report["figure"])
        except ImportError as exc:
            print(f"skipped the figure: {exc}", file=sys.stderr)
    out = args.out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(_finite(report), indent=1) + "\n")
    print("\nresults:", out)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


if __name__ == "__main__":
    main()
