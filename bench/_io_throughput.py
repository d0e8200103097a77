"""Export and import throughput of the event log: events per second and peak memory.

:func:`measure` fills an SQLite store with ``n_events`` events (half decisions, half
their rewards, written straight through the storage interface in batches, so that
filling is quick), then runs, each in a subprocess of its own (``octobandit`` as a user
runs it, its start-up included):

* ``octobandit export`` to JSON Lines and to DSJSON;
* ``octobandit import`` of each file into a fresh store.

For each it reports the wall time, the events per second (``n_events`` for JSON Lines;
the decisions plus their labels for DSJSON, i.e. ``n_events`` too) and the process's
peak resident memory (its ``VmHWM``, polled). The command's
start-up alone (``octobandit --help``) is reported beside them (``startup_s``) so the
per-event rate can be read without it. Called by bench/evaluation.py with 10 million
events; alone, for a quick check:

    .venv/bin/python bench/_io_throughput.py --events 50000 [--rounds 1] [--out FILE]

Run the real measurement on a quiet machine: it needs about 9 GB of disk for 10 million
events (measured at 50,000: the source store and each imported store about 1.4 GB per
10 million events, the JSON Lines file 2.5 GB, the DSJSON file 1.6 GB), in ``workdir``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ARMS = ("a", "b", "c")
FILL_BATCH = 50_000


def _octobandit() -> list[str]:
    exe = Path(sys.executable).with_name("octobandit")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "octobandit.cli"]


def fill(db: Path, n_events: int, experiment: str = "io") -> None:
    """An experiment with ``n_events`` events: decisions (contexts on every other one)
    each followed later by its binary reward, written in batches through the store."""
    import numpy as np

    from octobandit.model import ArmStatsDelta, DecisionEvent, RewardEvent
    from octobandit.storage import open_store

    store = open_store(str(db))
    try:
        from octobandit.engine import Engine

        Engine(store).create_experiment(
            {"id": experiment, "policy": {"type": "thompson"}, "arms": [{"id": a} for a in ARMS]}
        )
        rng = np.random.default_rng(1)
        decisions = n_events // 2
        t0 = 1_700_000_000.0
        for start in range(0, decisions, FILL_BATCH // 2):
            stop = min(decisions, start + FILL_BATCH // 2)
            arms = rng.integers(len(ARMS), size=stop - start)
            clicks = rng.random(stop - start) < 0.1 * (1 + arms)
            ids = [
                f"{int((t0 + i) * 1000):012x}{hashlib.sha1(str(i).encode()).hexdigest()[:20]}"
                for i in range(start, stop)
            ]
            d_events = [
                DecisionEvent(
                    t0 + i,
                    experiment,
                    ids[i - start],
                    ARMS[int(arms[i - start])],
                    1 / 3,
                    None,
                    {"x": float(i % 7)} if i % 2 else None,
                    eligible=3,
                )
                for i in range(start, stop)
            ]
            r_events = [
                RewardEvent(t0 + i + 0.5, experiment, e.arm_id, float(c), 1.0, e.decision_id)
                for i, e, c in zip(range(start, stop), d_events, clicks, strict=True)
            ]
            deltas = []
            for j, arm in enumerate(ARMS):
                mask = arms == j
                n, s = float(mask.sum()), float(clicks[mask].sum())
                deltas.append(ArmStatsDelta(arm, int(n), n, s, s, None, 0.0, s))
            with store.batch() as tx:
                tx.append_decisions(d_events)
                tx.append_rewards(r_events)
                tx.add_arm_stats(experiment, deltas)
    finally:
        store.close()


def _hwm_kb(pid: int) -> int:
    """The process's peak resident memory so far (``VmHWM``, kB; 0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def run(cmd: list[str]) -> dict[str, float]:
    """Run ``cmd``; its wall time and peak resident memory (MB).

    The peak is the child's ``VmHWM``, read every 20 ms while it runs: ``ru_maxrss``
    would not do, since a child forked from a large process (this one, or
    bench/evaluation.py) starts with its parent's peak on Linux."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _hwm_kb(proc.pid))
        time.sleep(0.02)
    seconds = time.perf_counter() - started
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {err[-500:]}")
    return {"seconds": seconds, "peak_rss_mb": peak / 1024}


def measure(n_events: int, workdir: str | os.PathLike[str], *, rounds: int = 1) -> dict[str, Any]:
    """Fill a store with ``n_events`` events in ``workdir`` and time export and import
    (see the module's docstring); with ``rounds`` > 1 each step runs that many times,
    interleaved, and the median and the min–max are reported."""
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    src = work / "io-source.db"
    for p in work.glob("io-*"):
        p.unlink()
    t = time.perf_counter()
    fill(src, n_events)
    fill_s = time.perf_counter() - t
    ob = _octobandit()
    steps: dict[str, list[dict[str, float]]] = {}
    startup: list[float] = []
    for _ in range(rounds):
        startup.append(run([*ob, "--help"])["seconds"])
        for fmt in ("jsonl", "dsjson"):
            out = work / f"io-export.{fmt}"
            steps.setdefault(f"export_{fmt}", []).append(
                run([*ob, "export", "io", "--db", str(src), "-f", fmt, "-o", str(out)])
            )
        for fmt in ("jsonl", "dsjson"):
            dst = work / f"io-import-{fmt}.db"
            for p in work.glob(f"io-import-{fmt}.db*"):
                p.unlink()
            steps.setdefault(f"import_{fmt}", []).append(
                run([*ob, "import", "io", str(work / f"io-export.{fmt}"), "--db", str(dst)])
            )
    result: dict[str, Any] = {
        "events": n_events,
        "rounds": rounds,
        "fill_seconds": round(fill_s, 3),
        "startup_s": _summary(startup),
        "file_mb": {
            fmt: round((work / f"io-export.{fmt}").stat().st_size / 2**20, 1)
            for fmt in ("jsonl", "dsjson")
        },
    }
    for name, runs in steps.items():
        secs = [r["seconds"] for r in runs]
        result[name] = {
            "seconds": _summary(secs),
            "events_per_s": _summary([n_events / s for s in secs]),
            "peak_rss_mb": _summary([r["peak_rss_mb"] for r in runs]),
        }
    return result


def _summary(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--workdir", default=None, help="default: a temporary directory")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args()
    work = args.workdir or tempfile.mkdtemp(prefix="octobandit-io-")
    try:
        result = measure(args.events, work, rounds=args.rounds)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
