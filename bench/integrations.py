"""Integrations benchmark: what a bandit costs inside the tools users already run.

In one run:

* **Flask** (``bench/_flask.py``): requests per second of the Flask-MAB example app
  (``examples/flask_mab_app``, served by waitress) with its two bandits (``/``: two
  logged decisions per request) and without them (``/plain``: the same view and
  template), and the overhead per request.
* **Seldon** (``bench/_seldon.py``): requests per second of ``/route`` and
  ``/send-feedback`` of the octobandit router against a trivial router (always branch 0)
  in the same seldon-core 1.18.2 microservice (Seldon's defaults: one gunicorn worker,
  one thread). Needs the Seldon venv (``bash .ci/seldon-venv`` builds ``.venv-seldon``).

Each part runs its configurations in interleaved rounds (the order alternating) and
reports the median and the min–max across rounds, never the best round. Run from the
repository root on a quiet machine (nothing else running; ``apt-get install -y wrk``
first, else the Flask part falls back to a slower Python client), about 4 minutes with
the defaults:

    .venv/bin/python bench/integrations.py [--rounds 5] [--seconds 8] [--only flask|seldon]

Writes ``bench/results/integrations.json``.
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

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
# bench/http.py would shadow the stdlib's http package: keep bench/ last on the path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH] + [str(BENCH)]

RESULTS = BENCH / "results" / "integrations.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--only", choices=["flask", "seldon"], default=None)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    result: dict[str, Any] = {
        "benchmark": "integrations",
        "command": " ".join(["bench/integrations.py", *sys.argv[1:]]),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        },
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if args.only in (None, "flask"):
        import _flask

        print("flask: the example app with and without its bandits", file=sys.stderr)
        result["flask"] = _flask.run(args.rounds, args.seconds)
    if args.only in (None, "seldon"):
        import _seldon

        print("seldon: the octobandit router against always-branch-0", file=sys.stderr)
        result["seldon"] = _seldon.run(args.rounds, args.seconds)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k in ("flask", "seldon")}, indent=2))
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
