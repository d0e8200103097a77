"""Evaluation benchmark: off-policy evaluation of the Open Bandit Dataset sample, octobandit
against obp 0.4.1's quickstart; and export/import throughput.

**OBD.** One run evaluates obp's ``BernoulliTS`` (ZOZOTOWN prior, campaign ``all``) on OBD's
``random/all`` sample (10,000 rounds, 80 items, 3 positions) with IPW, SNIPW, DM and DR,
their reward model a logistic regression on the context and the item features per
position with 3-fold cross-fitting, and bootstrap intervals (``--n-bootstrap`` resamples,
the same for both):

* **octobandit** (this script with ``--child``, in this venv): ``load_obd`` on the
  fixture tests/data/obd/random/all, ``read_action_dist`` of
  tests/data/obd_bts_action_dist.json (the policy's (K, L) distribution that obp
  computed), ``evaluate_obd``;
* **obp** (``bench/obp_reference.py --time-only`` in the obp venv; ``bench/obp-venv``
  builds it): obp's quickstart, ``OpenBanditDataset`` on its own copy of the sample,
  ``BernoulliTS.compute_batch_action_dist(n_sim=100000)``, ``RegressionModel.fit_predict``,
  ``OffPolicyEvaluation``'s values and intervals.

Each run is a fresh process; the time is measured inside it, from before its first import
(NumPy, and for obp pandas, scikit-learn and torch, are part of the cost) to the last
interval: the interpreter's own start-up is excluded for both (the process's wall time,
start-up included, is reported too). Two ratios: against obp's whole quickstart, and
against obp without its policy simulation (``policy_s``; octobandit reads the action
distribution from a file instead), the same work. The two run in interleaved rounds, the
order alternating; the median and the min–max across rounds are reported.

**Export/import.** ``bench/_io_throughput.py``: a store filled with ``--io-events`` events
(10 million by default; about 9 GB of disk in ``--io-dir``), then ``octobandit export``
(JSON Lines and DSJSON) and ``octobandit import`` of each file, in subprocesses: events
per second and each process's peak memory (``VmHWM``).

Run from the repository root on a quiet machine:

    bench/obp-venv && .venv/bin/python bench/evaluation.py [--rounds 7] [--n-bootstrap 1000]
    .venv/bin/python bench/evaluation.py --quick --out /tmp/evaluation.json   # does it work?

Writes ``bench/results/evaluation.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
# bench/http.py would shadow the stdlib's http package: keep bench/ last on the path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH] + [str(BENCH)]

RESULTS = BENCH / "results" / "evaluation.json"
OBP_VENV = Path(os.environ.get("OCTOBANDIT_OBP_VENV", ROOT / ".venv-obp"))
FIXTURE = ROOT / "tests" / "data" / "obd" / "random" / "all"
ACTION_DIST = ROOT / "tests" / "data" / "obd_bts_action_dist.json"
REFERENCE = ROOT / "tests" / "data" / "obp_reference.json"


def child(n_bootstrap: int) -> None:
    """octobandit's whole run, timed inside this process; prints the timing as JSON."""
    t0 = time.perf_counter()
    from octobandit.evaluation.obd import evaluate_obd, load_obd, read_action_dist

    t_import = time.perf_counter()
    data = load_obd(FIXTURE)
    t_load = time.perf_counter()
    dist = read_action_dist(ACTION_DIST, n_actions=data.n_actions, len_list=data.len_list)
    t_dist = time.perf_counter()
    out = evaluate_obd(data, dist, n_bootstrap_samples=n_bootstrap)
    t_end = time.perf_counter()
    timing = {
        "import_s": t_import - t0,
        "load_s": t_load - t_import,
        "action_dist_s": t_dist - t_load,
        "evaluate_s": t_end - t_dist,
        "total_s": t_end - t0,
    }
    print(json.dumps({"timing": timing, "estimates": out["estimates"]}))


def _run(cmd: list[str]) -> tuple[dict[str, Any], float]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
    wall = time.perf_counter() - start
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1]), wall


def _summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def obd(rounds: int, n_bootstrap: int) -> dict[str, Any]:
    obp_python = OBP_VENV / "bin" / "python"
    if not obp_python.exists():
        raise SystemExit(f"{obp_python} is missing: build the obp venv first (bench/obp-venv)")
    commands = {
        "octobandit": [sys.executable, str(BENCH / "evaluation.py"), "--child"],
        "obp": [str(obp_python), str(BENCH / "obp_reference.py"), "--time-only"],
    }
    for cmd in commands.values():
        cmd += ["--n-bootstrap", str(n_bootstrap)]
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in commands}
    reference = json.loads(REFERENCE.read_text())["estimates"]
    for r in range(rounds):
        order = list(commands) if r % 2 == 0 else list(reversed(commands))
        for name in order:
            out, wall = _run(commands[name])
            timing = out["timing"] if name == "octobandit" else out
            if name == "octobandit":  # the run that is timed is also the right one
                for est in ("ipw", "snipw"):
                    got, want = out["estimates"][est]["value"], reference[est]["value"]
                    assert abs(got - want) <= 1e-9 * abs(want), (est, got, want)
            runs[name].append({**timing, "wall_s": wall})
            print(f"round {r + 1}/{rounds} {name}: {timing['total_s']:.2f} s", file=sys.stderr)
    ours = [t["total_s"] for t in runs["octobandit"]]
    theirs = [t["total_s"] for t in runs["obp"]]
    theirs_same = [t["total_s"] - t["policy_s"] for t in runs["obp"]]
    return {
        "rounds": rounds,
        "n_bootstrap_samples": n_bootstrap,
        "timed": "inside each process, from before its imports to the last interval "
        "(interpreter start-up excluded; wall_s includes it)",
        "octobandit": {
            key: _summary([t[key] for t in runs["octobandit"]]) for key in runs["octobandit"][0]
        },
        "obp": {key: _summary([t[key] for t in runs["obp"]]) for key in runs["obp"][0]},
        "obp_without_policy_simulation_s": _summary(theirs_same),
        "speedup_vs_obp_quickstart": _summary([b / a for a, b in zip(ours, theirs, strict=True)]),
        "speedup_vs_obp_same_work": _summary(
            [b / a for a, b in zip(ours, theirs_same, strict=True)]
        ),
        "runs": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--n-bootstrap", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="--rounds 2 --n-bootstrap 100")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--io-events",
        type=int,
        default=10_000_000,
        help="events for the export/import throughput (0: skip it; --quick: 100,000)",
    )
    parser.add_argument("--io-dir", default=None, help="where the stores and files go")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.n_bootstrap)
        return
    if args.quick:
        args.rounds, args.n_bootstrap = 2, 100
    result: dict[str, Any] = {
        "benchmark": "evaluation",
        "command": " ".join(["bench/evaluation.py", *sys.argv[1:]]),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        },
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    print("obd: octobandit against obp 0.4.1's quickstart", file=sys.stderr)
    result["obd"] = obd(args.rounds, args.n_bootstrap)

    # --- export/import throughput (bench/_io_throughput.py) ---------------------------------
    if args.io_events > 0:
        import tempfile

        import _io_throughput

        n = 100_000 if args.quick else args.io_events
        print(f"io: export and import of {n:,} events", file=sys.stderr)
        with tempfile.TemporaryDirectory(dir=args.io_dir) as work:
            result["io"] = _io_throughput.measure(n, work)
    else:
        result["io"] = None

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    summary = {k: v for k, v in result["obd"].items() if k != "runs"}
    print(json.dumps(summary, indent=2))
    if result["io"] is not None:
        print(json.dumps({k: v for k, v in result["io"].items() if k != "runs"}, indent=2))
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
