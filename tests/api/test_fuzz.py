"""Schema-driven fuzzing of the live server with schemathesis (every operation of /openapi.json).

A real ``octobandit serve`` process on a free loopback port and a temporary
database is fuzzed by the ``st run`` command (the examples, coverage, fuzzing
and stateful phases; stateful sequences follow the links schemathesis infers
from the document, which declares none itself) with every check on: no 5xx,
documented status codes, content types, headers and response schemas, valid
data accepted and invalid data rejected, deleted resources gone. The run is
bounded (``--max-examples`` per operation, a fixed ``--seed`` so a failure
reproduces) and must generate at least 2,000 cases; any failure fails the test
with the run's summary.

Schema-valid data must be accepted (``positive_data_acceptance``) everywhere except
where validity depends on the experiment, which no schema can say: a reward or
arm statistics outside [0, 1] are refused by a binary experiment only; a
policy's parameters (sitting beside its ``type``) and their ranges depend on the
policy family and the reward type, and an arm's prior on the reward type. So
rewards, arm statistics, creating or patching an experiment and adding an arm
may also answer 422 to schema-valid data (``CONFIG``); every other check stays
on for them.

A hooks module seeds an experiment (``seed``, arms ``a``, ``b``, ``c``) so that
half of the generated path parameters name a real experiment and arm; DELETE
operations keep their generated ids, so the seed is only removed by "delete
every experiment", after which the hook seeds it again.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.slow

MAX_EXAMPLES = 150  # per operation and phase: about 5,000 cases, 1 minute on 2 cores
MIN_CASES = 2_000
SEED = 20261126

#: operations whose schema-valid bodies may still be refused by the experiment (422)
EXPERIMENT_DEPENDENT = [
    ("/v1/experiments", "POST"),
    ("/v1/experiments/{experiment_id}", "PATCH"),
    ("/v1/experiments/{experiment_id}/arms", "POST"),
    ("/v1/experiments/{experiment_id}/arms/{arm_id}/stats", "PUT"),
    ("/v1/experiments/{experiment_id}/rewards", "POST"),
]
ACCEPTED = '["2xx", "401", "403", "404", "409", "422"]'
CONFIG = "# schemathesis configuration for tests/api/test_fuzz.py (written there)\n" + "".join(
    f'\n[[operations]]\ninclude-path = "{path}"\ninclude-method = "{method}"\n'
    f"checks.positive_data_acceptance.expected-statuses = {ACCEPTED}\n"
    for path, method in EXPERIMENT_DEPENDENT
)

HOOKS = '''
"""schemathesis hooks for tests/api/test_fuzz.py (written there)."""

import os

import httpx
import schemathesis
from hypothesis import strategies as st

SEED = {
    "id": "seed",
    "policy": {"type": "thompson"},
    "arms": [{"id": "a"}, {"id": "b"}, {"id": "c"}],
}


def ensure_seed() -> None:
    url = os.environ["OCTOBANDIT_FUZZ_URL"]
    if httpx.get(url + "/v1/experiments/seed").status_code == 404:
        httpx.post(url + "/v1/experiments", json=SEED).raise_for_status()


@schemathesis.hook
def flatmap_path_parameters(context, path_parameters):
    """Half of the cases name the seeded experiment and its arm ``a``."""
    method = context.operation.method.upper() if context.operation is not None else ""
    if not path_parameters or method == "DELETE":
        return st.just(path_parameters)
    real = dict(path_parameters)
    if "experiment_id" in real:
        real["experiment_id"] = "seed"
    if "arm_id" in real:
        real["arm_id"] = "a"
    return st.sampled_from([path_parameters, real])


@schemathesis.hook
def after_call(context, case, response):
    if case.method.upper() == "DELETE" and case.path == "/v1/experiments":
        ensure_seed()
'''


def _summary(report: dict[str, Any], stdout: str) -> str:
    lines = [
        f"{f['code']} {f['title']} x{f['count']}: {', '.join(f['operations'])}"
        for f in report.get("failures", [])
    ]
    lines += [f"error: {e}" for e in report.get("errors", [])]
    return "\n".join(lines) + "\n\n" + stdout[-20_000:]


def test_schemathesis_finds_no_failure(server_factory: Any, tmp_path: Path) -> None:
    server = server_factory(tmp_path / "fuzz.db").start()
    seed = {"id": "seed", "policy": {"type": "thompson"}, "arms": [{"id": c} for c in "abc"]}
    httpx.post(server.url + "/v1/experiments", json=seed).raise_for_status()
    (tmp_path / "octobandit_fuzz_hooks.py").write_text(HOOKS)
    (tmp_path / "schemathesis.toml").write_text(CONFIG)
    report_path = tmp_path / "report.json"
    cmd = [
        sys.executable, "-m", "schemathesis.cli",
        "--config-file", str(tmp_path / "schemathesis.toml"),
        "run", server.url + "/openapi.json",
        "--checks", "all",
        "--max-examples", str(MAX_EXAMPLES),
        "--seed", str(SEED),
        "--continue-on-failure",
        "--generation-database", "none",
        "--request-timeout", "10",
        "--no-color",
        "--report", "json", "--report-json-path", str(report_path),
    ]  # fmt: skip
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "octobandit_fuzz_hooks",
        "PYTHONPATH": str(tmp_path),
        "OCTOBANDIT_FUZZ_URL": server.url,
    }
    run = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert report_path.exists(), run.stdout + run.stderr
    report = json.loads(report_path.read_text())
    operations = httpx.get(server.url + "/openapi.json").json()["paths"]
    methods = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
    n_operations = sum(len(methods & item.keys()) for item in operations.values())
    assert report["complete"], report["stop_reason"]
    assert report["operations"]["tested"] == n_operations == report["operations"]["total"]
    assert report["phases"]["stateful"]["status"] != "skip", "no stateful phase ran"
    assert report["test_cases"]["generated"] >= MIN_CASES, report["test_cases"]
    assert run.returncode == 0, _summary(report, run.stdout)
