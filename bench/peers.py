"""Peer cross-check: octobandit, MABWiser and River run the same algorithms on the same instance.

Run from the repository root (about 3 minutes on 2 cores with the defaults, plus a
one-off install of the peers' environment):

    .venv/bin/python bench/peers.py [--replications 50] [--horizon 2000] [--seed 2024]
                                    [--reference-replications 2000]
                                    [--check-replications 500] [--quick]

The peers are installed only in a virtualenv of their own, ``bench/.venv-peers``
(git-ignored), never in the project's. The script creates it when it is absent and
re-executes itself inside it; by hand, the same is:

    python3 -m venv bench/.venv-peers
    bench/.venv-peers/bin/pip install mabwiser river numpy -e .
    bench/.venv-peers/bin/python bench/peers.py

Instance: 10 Bernoulli arms, best mean 0.5, the others 0.4 (gap 0.1). Algorithms,
with parameters mapped so that each library runs the same rule:

* Thompson sampling, Beta(1, 1) prior: octobandit ``ThompsonSampling()``, MABWiser
  ``LearningPolicy.ThompsonSampling()`` (its prior is fixed at Beta(1, 1)), River
  ``bandit.ThompsonSampling(proba.Beta(1, 1))``.
* UCB1, index ``mean + sqrt(2 ln N / n)``: octobandit ``UCB1(c=sqrt(2))`` (``c·sqrt(ln N / n)``),
  MABWiser ``LearningPolicy.UCB1(alpha=1)`` (``alpha·sqrt(2 ln N / n)``), River
  ``bandit.UCB(delta=1)`` (``delta·sqrt(2 ln N / n)``, "delta = 1 is UCB1").
* Epsilon-greedy, ε = 0.1, untried arms valued 0: octobandit ``EpsilonGreedy(0.1)``,
  MABWiser ``LearningPolicy.EpsilonGreedy(epsilon=0.1)``, River ``bandit.EpsilonGreedy(0.1)``.

Every library is driven as a service would drive it, one decision then one reward:
octobandit in two ways, the straightforward loop (``policy.choose`` on ``(1, K)``
``ArmStats``, then the arrays updated in place) and the lean
:class:`~octobandit.policies.Bandit` (``pull``/``update``); MABWiser with
``predict()`` then ``partial_fit([arm], [reward])``; River with ``pull(arms)`` then
``update(arm, reward)``. Replication ``r`` gives every library the same instance and
the same rewards: arm labels are shuffled by a per-replication permutation (MABWiser and
River break ties by list order, which would otherwise favour the best arm when it is
listed first), and the ``j``-th pull of an arm returns the ``j``-th entry of that arm's
pre-drawn reward sequence (common random numbers, so differences between libraries
come from the policies, not from the rewards). Each library's policy gets the same
per-replication integer seed for its own generator. Libraries and algorithms are
interleaved within each replication, so machine noise hits them alike.

Reported per library and algorithm: the mean cumulative pseudo-regret at the horizon
with a 95% confidence interval (Student t over replications), its paired difference
with octobandit's ``Bandit`` (95% CI; "agree" when it contains 0), and the median
time of one decide+update step (and of each half) over all steps, with the ratios
peer / octobandit. ``octobandit.simulate`` with many replications (vectorised) gives a
tight reference regret for each algorithm. The libraries share their reward tables, so
their regrets move together; a harness check runs octobandit's ``Bandit`` on
``--check-replications`` tables through the same harness, to tell a common deviation
from the reference that comes from the tables from one that would come from the
harness. MABWiser's UCB1 values arms it has not
tried at 0 (not +inf), so it is also run after one pull of each arm
("mabwiser_warmup", the warm-up steps untimed) to show where its difference comes from.

Results: ``bench/results/peers.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from array import array
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PEERS_VENV = ROOT / "bench" / ".venv-peers"
PEERS_PYTHON = PEERS_VENV / "bin" / "python"
INSTALLED = PEERS_VENV / ".installed"
PEER_PACKAGES = ["mabwiser", "river", "numpy"]
RESULTS = ROOT / "bench" / "results" / "peers.json"

K, BEST, GAP = 10, 0.5, 0.1
ALGORITHMS = ("thompson", "ucb1", "epsilon_greedy")
LIBRARIES = ("octobandit_bandit", "octobandit_choose", "mabwiser", "river")
#: Extra runs that explain a difference (library, algorithm).
EXTRA = (("mabwiser_warmup", "ucb1"),)

MAPPING = {
    "thompson": {
        "octobandit": "ThompsonSampling(alpha=1, beta=1)",
        "mabwiser": "LearningPolicy.ThompsonSampling() (prior fixed at Beta(1, 1))",
        "river": "bandit.ThompsonSampling(reward_obj=proba.Beta(1, 1))",
        "notes": "Same rule: one draw from each arm's Beta(1 + s, 1 + n - s), the largest wins.",
    },
    "ucb1": {
        "octobandit": "UCB1(c=sqrt(2)): mean + c·sqrt(ln N / n); untried arms +inf",
        "mabwiser": "LearningPolicy.UCB1(alpha=1): mean + alpha·sqrt(2 ln N / n); untried arms 0",
        "river": "bandit.UCB(delta=1): mean + delta·sqrt(2 ln N / n); untried arms +inf",
        "notes": (
            "c = sqrt(2) ⇔ alpha = 1 ⇔ delta = 1. MABWiser gives an arm it has not tried "
            "the expectation 0 instead of an infinite index, so once a tried arm's index "
            "is positive the untried arms are never pulled: it mostly locks on the first "
            "arm it tries. 'mabwiser_warmup' pulls each arm once first (as the infinite "
            "index does in octobandit and River), then lets MABWiser decide."
        ),
    },
    "epsilon_greedy": {
        "octobandit": "EpsilonGreedy(epsilon=0.1, initial_value=0): ties broken uniformly",
        "mabwiser": "LearningPolicy.EpsilonGreedy(epsilon=0.1): ties go to the first listed arm",
        "river": "bandit.EpsilonGreedy(epsilon=0.1): ties go to the first listed arm",
        "notes": (
            "Same rule (explore uniformly over all arms with probability 0.1, else the "
            "best mean, untried arms valued 0) except tie-breaking; the per-replication "
            "shuffle of arm labels makes 'first listed' a uniformly random arm."
        ),
    },
}


# -- the peers' environment -----------------------------------------------------------------


def in_peers_venv() -> bool:
    return Path(sys.prefix).resolve() == PEERS_VENV.resolve()


def ensure_peers_venv() -> None:
    """Create ``bench/.venv-peers`` with the peers and this project, unless already done."""
    if INSTALLED.exists():
        return
    if not PEERS_PYTHON.exists():
        print(f"creating {PEERS_VENV.relative_to(ROOT)} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(PEERS_VENV)], check=True)
    # As venv itself does from Python 3.13 on: git ignores the whole environment.
    (PEERS_VENV / ".gitignore").write_text("*\n")
    print("installing", ", ".join(PEER_PACKAGES), "and octobandit (editable) ...", flush=True)
    subprocess.run(
        [str(PEERS_PYTHON), "-m", "pip", "install", "-q", *PEER_PACKAGES, "-e", str(ROOT)],
        check=True,
    )
    INSTALLED.write_text(" ".join(PEER_PACKAGES) + "\n")


# -- the benchmark ------------------------------------------------------------------------------

Decide = Callable[[], int]
Update = Callable[[int, float], None]


def make_runner(lib: str, algo: str, k: int, seed: int) -> tuple[Decide, Update]:
    """The decide and update calls a user of ``lib`` would write, for one replication."""
    if lib.startswith("octobandit"):
        import numpy as np

        from octobandit.policies import UCB1, ArmStats, Bandit, EpsilonGreedy, ThompsonSampling

        policy = {
            "thompson": lambda: ThompsonSampling(alpha=1.0, beta=1.0),
            "ucb1": lambda: UCB1(c=math.sqrt(2.0)),
            "epsilon_greedy": lambda: EpsilonGreedy(epsilon=0.1),
        }[algo]()
        if lib == "octobandit_bandit":
            bandit = Bandit(policy, k, seed=seed)
            return bandit.pull, bandit.update
        rng = np.random.default_rng(seed)
        stats = ArmStats.zeros(k, (1,))
        n, s, ss = stats.n, stats.s, stats.ss

        def decide() -> int:
            return int(policy.choose(stats, rng, propensities=False).arms[0])

        def update(arm: int, reward: float) -> None:
            n[0, arm] += 1.0
            s[0, arm] += reward
            ss[0, arm] += reward * reward

        return decide, update

    if lib.startswith("mabwiser"):
        from mabwiser.mab import MAB, LearningPolicy

        lp = {
            "thompson": lambda: LearningPolicy.ThompsonSampling(),
            "ucb1": lambda: LearningPolicy.UCB1(alpha=1.0),
            "epsilon_greedy": lambda: LearningPolicy.EpsilonGreedy(epsilon=0.1),
        }[algo]()
        mab = MAB(list(range(k)), lp, seed=seed)
        mab.fit([], [])  # MABWiser predicts only after a fit; an empty one leaves the priors

        def mab_update(arm: int, reward: float) -> None:
            mab.partial_fit([arm], [reward])

        return mab.predict, mab_update

    if lib == "river":
        from river import bandit, proba

        policy_r = {
            "thompson": lambda: bandit.ThompsonSampling(reward_obj=proba.Beta(1, 1), seed=seed),
            "ucb1": lambda: bandit.UCB(delta=1.0, seed=seed),
            "epsilon_greedy": lambda: bandit.EpsilonGreedy(epsilon=0.1, seed=seed),
        }[algo]()
        arms = list(range(k))

        def pull() -> int:
            arm: int = policy_r.pull(arms)
            return arm

        return pull, policy_r.update
    raise ValueError(lib)


def run_replication(
    decide: Decide,
    update: Update,
    rewards: list[list[float]],
    gaps: list[float],
    horizon: int,
    decide_ns: array[int],
    update_ns: array[int],
    warmup: int = 0,
) -> float:
    """One replication, one decision then one reward per step; returns the final regret.

    ``rewards[a][j]`` is the reward of the ``j``-th pull of arm label ``a``. The first
    ``warmup`` steps pull arm ``t`` (label order) and are not timed.
    """
    pulls = [0] * len(gaps)
    regret = 0.0
    clock = time.perf_counter_ns
    for t in range(horizon):
        if t < warmup:
            arm = t
            j = pulls[arm]
            pulls[arm] = j + 1
            regret += gaps[arm]
            update(arm, rewards[arm][j])
            continue
        t0 = clock()
        arm = decide()
        t1 = clock()
        j = pulls[arm]
        pulls[arm] = j + 1
        reward = rewards[arm][j]
        regret += gaps[arm]
        t2 = clock()
        update(arm, reward)
        t3 = clock()
        decide_ns.append(t1 - t0)
        update_ns.append(t3 - t2)
    return regret


def summarise_regret(values: list[float]) -> dict[str, Any]:
    import numpy as np
    from scipy import stats as sps

    x = np.asarray(values)
    r = x.size
    se = float(x.std(ddof=1) / math.sqrt(r)) if r > 1 else float("nan")
    q = float(sps.t.ppf(0.975, r - 1)) if r > 1 else float("nan")
    mean = float(x.mean())
    return {"mean": mean, "se": se, "ci95": [mean - q * se, mean + q * se], "n": r}


def paired_difference(a: list[float], b: list[float]) -> dict[str, Any]:
    """Mean of ``a - b`` over replications (same rewards), 95% CI, and whether it contains 0."""
    d = summarise_regret([x - y for x, y in zip(a, b, strict=True)])
    lo, hi = d["ci95"]
    return {"mean": d["mean"], "ci95": [lo, hi], "agree": bool(lo <= 0.0 <= hi)}


def run_all(
    runs: list[tuple[str, str]], means: Any, reps: int, horizon: int, seed: int
) -> tuple[
    dict[tuple[str, str], list[float]],
    dict[tuple[str, str], array[int]],
    dict[tuple[str, str], array[int]],
    list[int],
]:
    """Every (library, algorithm) of ``runs`` on replications ``0 .. reps - 1``, interleaved.

    Replication ``r``'s instance (label permutation and reward table) and policy seed
    depend only on ``seed`` and ``r``.
    """
    import numpy as np

    k = len(means)
    env_seq, policy_seq = np.random.SeedSequence(seed).spawn(2)
    env_seeds = env_seq.spawn(reps)
    policy_seeds = [int(x) for x in policy_seq.generate_state(reps)]
    regrets: dict[tuple[str, str], list[float]] = {run: [] for run in runs}
    decide_ns: dict[tuple[str, str], array[int]] = {run: array("q") for run in runs}
    update_ns: dict[tuple[str, str], array[int]] = {run: array("q") for run in runs}
    started = time.perf_counter()
    for r in range(reps):
        env_rng = np.random.default_rng(env_seeds[r])
        perm = env_rng.permutation(k)  # label a is instance arm perm[a]
        mu = means[perm]
        draws = env_rng.random((k, horizon))
        rewards = (draws < mu[:, None]).astype(float).tolist()
        gaps = (means.max() - mu).tolist()
        for lib, algo in runs:
            decide, update = make_runner(lib, algo, k, policy_seeds[r])
            warmup = k if lib == "mabwiser_warmup" else 0
            regrets[lib, algo].append(
                run_replication(
                    decide,
                    update,
                    rewards,
                    gaps,
                    horizon,
                    decide_ns[lib, algo],
                    update_ns[lib, algo],
                    warmup,
                )
            )
        if (r + 1) % max(1, reps // 10) == 0 or r + 1 == reps:
            done = time.perf_counter() - started
            eta = done / (r + 1) * (reps - r - 1)
            print(f"  replication {r + 1}/{reps}: {done:.0f} s, about {eta:.0f} s left", flush=True)
    return regrets, decide_ns, update_ns, policy_seeds


def timer_overhead_ns() -> float:
    import numpy as np

    clock = time.perf_counter_ns
    samples = []
    for _ in range(20_000):
        t0 = clock()
        samples.append(clock() - t0)
    return float(np.median(samples))


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("octobandit", "numpy", "scipy", "mabwiser", "river"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def fmt_ci(d: dict[str, Any]) -> str:
    lo, hi = d["ci95"]
    return f"{d['mean']:7.1f} [{lo:6.1f}, {hi:6.1f}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--replications", type=int, default=50)
    ap.add_argument("--horizon", type=int, default=2_000)
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--reference-replications", type=int, default=2_000)
    ap.add_argument("--check-replications", type=int, default=500)
    ap.add_argument("--quick", action="store_true", help="a smoke run: 4 × 300 steps")
    ap.add_argument("--no-venv", action="store_true", help="run in this interpreter as it is")
    ap.add_argument("--output", type=Path, default=RESULTS)
    args = ap.parse_args()

    if not args.no_venv and not in_peers_venv():
        ensure_peers_venv()
        os.execv(str(PEERS_PYTHON), [str(PEERS_PYTHON), __file__, *sys.argv[1:]])
    # bench/http.py would shadow the standard library's http (River imports urllib.request).
    here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]

    import numpy as np

    from octobandit.policies import UCB1, EpsilonGreedy, ThompsonSampling
    from octobandit.simulation import Bernoulli, simulate

    if args.quick:
        args.replications, args.horizon, args.reference_replications = 4, 300, 200
        args.check_replications = 20
    reps, horizon = args.replications, args.horizon
    means = np.array([BEST] + [BEST - GAP] * (K - 1))
    runs = [(lib, algo) for algo in ALGORITHMS for lib in LIBRARIES] + list(EXTRA)
    print(
        f"{reps} replications × {horizon} steps × {K} arms (best {BEST}, gap {GAP}); "
        f"versions: {versions()}",
        flush=True,
    )
    started = time.perf_counter()
    regrets, decide_ns, update_ns, policy_seeds = run_all(runs, means, reps, horizon, args.seed)
    elapsed_peers = time.perf_counter() - started

    # Reference: octobandit's vectorised simulator, many replications.
    env = Bernoulli.with_gap(K, best=BEST, gap=GAP)
    reference: dict[str, dict[str, Any]] = {}
    ref_policies = {
        "thompson": ThompsonSampling(alpha=1.0, beta=1.0),
        "ucb1": UCB1(c=math.sqrt(2.0)),
        "epsilon_greedy": EpsilonGreedy(epsilon=0.1),
    }
    for algo, policy in ref_policies.items():
        res = simulate(policy, env, horizon, args.reference_replications, seed=args.seed)
        final = res.regret[-1].tolist()
        reference[algo] = {**summarise_regret(final), "elapsed_s": res.elapsed_s}

    # Harness check: the libraries share their reward tables, so their regrets move
    # together; octobandit's Bandit on many more tables, through the same step-by-step
    # harness, shows whether a common deviation from the reference is the tables' or
    # the harness's.
    check: dict[str, dict[str, Any]] = {}
    if args.check_replications > 0:
        print(f"harness check: octobandit_bandit, {args.check_replications} replications")
        check_runs = [("octobandit_bandit", algo) for algo in ALGORITHMS]
        check_regrets = run_all(check_runs, means, args.check_replications, horizon, args.seed)[0]
        for (_, algo), values in check_regrets.items():
            summary = summarise_regret(values)
            se = math.hypot(summary["se"], reference[algo]["se"])
            first = summarise_regret(values[:reps]) if len(values) >= reps > 1 else None
            check[algo] = {
                **summary,
                "z_vs_reference": (summary["mean"] - reference[algo]["mean"]) / se,
                "first_replications_mean": None if first is None else first["mean"],
            }

    overhead = timer_overhead_ns()
    results: dict[str, dict[str, Any]] = {}
    for lib, algo in runs:
        d = np.asarray(decide_ns[lib, algo], dtype=float)
        u = np.asarray(update_ns[lib, algo], dtype=float)
        step = d + u
        results.setdefault(algo, {})[lib] = {
            "regret": summarise_regret(regrets[lib, algo]),
            "regret_per_replication": regrets[lib, algo],
            "step_median_us": float(np.median(step)) / 1e3,
            "step_p90_us": float(np.quantile(step, 0.9)) / 1e3,
            "step_mean_us": float(step.mean()) / 1e3,
            "decide_median_us": float(np.median(d)) / 1e3,
            "update_median_us": float(np.median(u)) / 1e3,
            "steps_timed": int(step.size),
        }

    comparisons: dict[str, dict[str, Any]] = {}
    ratios: dict[str, dict[str, Any]] = {}
    for algo in ALGORITHMS:
        base = results[algo]["octobandit_bandit"]
        loop = results[algo]["octobandit_choose"]
        comparisons[algo] = {}
        ratios[algo] = {}
        ref = reference[algo]
        for lib, res_lib in results[algo].items():
            diff = (
                paired_difference(res_lib["regret_per_replication"], base["regret_per_replication"])
                if lib != "octobandit_bandit"
                else None
            )
            se = math.hypot(res_lib["regret"]["se"], ref["se"])
            z = (res_lib["regret"]["mean"] - ref["mean"]) / se if se > 0 else float("nan")
            comparisons[algo][lib] = {
                "paired_difference_vs_octobandit_bandit": diff,
                "difference_vs_reference": res_lib["regret"]["mean"] - ref["mean"],
                "z_vs_reference": z,
                "agrees_with_reference_95": bool(abs(z) <= 1.959963984540054),
            }
            if lib.startswith("octobandit"):
                continue
            ratios[algo][lib] = {
                "peer_step_over_octobandit_bandit": res_lib["step_median_us"]
                / base["step_median_us"],
                "peer_step_over_octobandit_choose": res_lib["step_median_us"]
                / loop["step_median_us"],
            }
    targets = {
        algo: {
            "bandit_at_least_10x_mabwiser": ratios[algo]["mabwiser"][
                "peer_step_over_octobandit_bandit"
            ]
            >= 10.0,
            "bandit_faster_than_river": ratios[algo]["river"]["peer_step_over_octobandit_bandit"]
            > 1.0,
            "choose_loop_at_least_10x_mabwiser": ratios[algo]["mabwiser"][
                "peer_step_over_octobandit_choose"
            ]
            >= 10.0,
            "choose_loop_faster_than_river": ratios[algo]["river"][
                "peer_step_over_octobandit_choose"
            ]
            > 1.0,
        }
        for algo in ALGORITHMS
    }

    # -- print -------------------------------------------------------------------------------
    print(f"\nmean cumulative regret at T = {horizon} [95% CI], median µs per step (decide+update)")
    header = (
        f"{'algorithm':<15}{'library':<20}{'regret [95% CI]':>26}"
        f"{'Δ vs Bandit [95% CI]':>27}{'step':>9}{'decide':>9}{'update':>9}"
    )
    print(header)
    print("-" * len(header))
    for algo in ALGORITHMS:
        for lib, res_lib in results[algo].items():
            diff = comparisons[algo][lib]["paired_difference_vs_octobandit_bandit"]
            diff_s = "" if diff is None else fmt_ci(diff)
            print(
                f"{algo:<15}{lib:<20}{fmt_ci(res_lib['regret']):>26}{diff_s:>27}"
                f"{res_lib['step_median_us']:9.2f}{res_lib['decide_median_us']:9.2f}"
                f"{res_lib['update_median_us']:9.2f}"
            )
        ref_label = f"simulate R={args.reference_replications}"
        print(f"{algo:<15}{ref_label:<20}{fmt_ci(reference[algo]):>26}")
        if algo in check:
            check_label = f"Bandit R={args.check_replications}"
            print(
                f"{algo:<15}{check_label:<20}{fmt_ci(check[algo]):>26}"
                f"{'z vs simulate ' + format(check[algo]['z_vs_reference'], '.2f'):>27}"
            )
    print("\nstep-time ratios, peer / octobandit (Bandit | choose loop):")
    for algo in ALGORITHMS:
        parts = [
            f"{lib} {v['peer_step_over_octobandit_bandit']:.1f}× | "
            f"{v['peer_step_over_octobandit_choose']:.1f}×"
            for lib, v in ratios[algo].items()
        ]
        print(f"  {algo:<15}" + ";  ".join(parts))
    print(f"timer overhead (included in every figure): {overhead:.0f} ns per interval")

    report = {
        "benchmark": "peers",
        "command": "python bench/peers.py " + " ".join(sys.argv[1:]),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "versions": versions(),
        "instance": {"arms": K, "means": means.tolist(), "best": BEST, "gap": GAP},
        "sizes": {
            "replications": reps,
            "horizon": horizon,
            "reference_replications": args.reference_replications,
            "check_replications": args.check_replications,
        },
        "seeds": {
            "seed": args.seed,
            "derivation": (
                "SeedSequence(seed).spawn(2) -> (environment, policy); replication r uses "
                "environment child r (label permutation, then a (K, T) table of uniforms) "
                "and policy_seeds[r] for every library's policy; simulate() uses seed"
            ),
            "policy_seeds": policy_seeds,
        },
        "mapping": MAPPING,
        "timing": {
            "what": (
                "perf_counter_ns around decide and around update, per step, all steps of "
                "all replications; median reported (p90 and mean too)"
            ),
            "timer_overhead_ns": overhead,
        },
        "results": results,
        "reference_simulate": reference,
        "harness_check_octobandit_bandit": check,
        "comparisons": comparisons,
        "ratios": ratios,
        "targets": targets,
        "elapsed_s": {"peers": elapsed_peers, "total": time.perf_counter() - started},
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=1) + "\n")
    shown = args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output
    print("results:", shown)


if __name__ == "__main__":
    main()
