"""The Seldon Core router, run by seldon-core 1.18.2's own microservice (a real process).

seldon-core pins old Flask and protobuf 3, so it lives in a virtualenv of its own:
``$OCTOBANDIT_SELDON_VENV`` (default ``.venv-seldon`` in the repository), built by
``.ci/seldon-venv`` (``.ci/run`` runs it; a test that finds it missing runs it too). The
microservice imports this checkout's ``src/`` (first on ``PYTHONPATH``).

The tests replay Seldon's epsilon-greedy notebook (the seed) over HTTP, on an embedded
store (an SQLite file) and on a real octobandit service.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from octobandit.integrations import Bandits, connect

REPO = Path(__file__).resolve().parents[2]
#: the key of the router in ``meta.routing`` (Seldon sets it from the graph's unit name)
UNIT = "eg-router"
ROUTER = "octobandit.integrations.seldon.Router"


def _missing(reason: str) -> None:
    if os.environ.get("OCTOBANDIT_REQUIRE_SERVICES") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def seldon_venv() -> Path:
    """The seldon-core virtualenv, built by ``.ci/seldon-venv`` when missing or stale."""
    venv = Path(os.environ.get("OCTOBANDIT_SELDON_VENV", REPO / ".venv-seldon"))
    script = REPO / ".ci" / "seldon-venv"
    try:
        subprocess.run(
            ["bash", str(script)],
            env={**os.environ, "OCTOBANDIT_SELDON_VENV": str(venv)},
            check=True,
            capture_output=True,
            text=True,
            timeout=600,
        )
    except subprocess.CalledProcessError as exc:
        _missing(f"could not build the seldon-core venv {venv}: {exc.stderr[-2000:]}")
    except (OSError, subprocess.TimeoutExpired) as exc:
        _missing(f"could not build the seldon-core venv {venv}: {exc}")
    return venv


@pytest.fixture(scope="session")
def seldon() -> Path:
    return seldon_venv()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Microservice:
    """``seldon-core-microservice <router> --service-type ROUTER`` on loopback ports (no
    gRPC server), with the router's parameters in ``PREDICTIVE_UNIT_PARAMETERS``."""

    def __init__(self, venv: Path, cwd: Path, router: str = ROUTER, **parameters: Any) -> None:
        self.venv, self.cwd, self.router = venv, cwd, router
        self.parameters = parameters
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = cwd / f"seldon-{self.port}.log"

    @staticmethod
    def typed(name: str, value: Any) -> dict[str, str]:
        kind = {bool: "BOOL", int: "INT", float: "FLOAT"}.get(type(value), "STRING")
        return {"name": name, "value": str(value), "type": kind}

    def command(self) -> list[str]:
        return [
            str(self.venv / "bin" / "seldon-core-microservice"), self.router,
            "--service-type", "ROUTER", "--http-port", str(self.port),
            "--grpc-workers", "0", "--metrics-port", str(_free_port()),
            "--log-level", "WARNING",
        ]  # fmt: skip

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OCTOBANDIT_")}
        env["PYTHONPATH"] = str(REPO / "src")
        env["PREDICTIVE_UNIT_ID"] = UNIT
        env["PREDICTIVE_UNIT_PARAMETERS"] = json.dumps(
            [self.typed(k, v) for k, v in self.parameters.items()]
        )
        return env

    def start(self, timeout: float = 60.0) -> Microservice:
        import time

        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                self.command(), cwd=self.cwd, env=self.env(), stdout=log, stderr=log,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the microservice exited: {self.log.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/health/ping", timeout=1).status_code == 200:
                    return self
            time.sleep(0.1)
        raise RuntimeError(f"the microservice did not start: {self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)  # gunicorn, its worker, the metrics server
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


@pytest.fixture
def microservice(seldon: Path, tmp_path: Path) -> Iterator[Any]:
    """``microservice(**parameters)`` starts one (stopped after the test)."""
    started: list[Microservice] = []

    def start(**parameters: Any) -> Microservice:
        started.append(Microservice(seldon, tmp_path, **parameters))
        return started[-1].start()

    yield start
    for m in started:
        m.stop()


@pytest.fixture(params=["embedded", "service"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Where the router keeps its experiment: an SQLite file, or a real octobandit service."""
    if request.param == "embedded":
        yield str(tmp_path / "router.db")
    else:
        yield request.getfixturevalue("module_server").url


@pytest.fixture
def experiment() -> str:
    return f"seldon-{uuid.uuid4().hex[:10]}"


# -- Seldon's client side: what the notebook (and Seldon's executor) send -------------


def request_of(rows: int) -> dict[str, Any]:
    return {"data": {"ndarray": [[0, 0]] * rows, "names": ["feature_1", "feature_2"]}}


def route(http: httpx.Client, request: dict[str, Any]) -> dict[str, Any]:
    answer = http.post("/route", json=request)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def branch_of(routed: dict[str, Any]) -> int:
    (row,) = routed["data"]["ndarray"]
    return int(row[0])


def executor_response(routed: dict[str, Any]) -> dict[str, Any]:
    """The graph's response as Seldon's executor returns it: the router's branch in
    ``meta.routing`` and its tags in ``meta.tags``."""
    return {
        "data": {"ndarray": [[0.9]]},
        "meta": {"routing": {UNIT: branch_of(routed)}, "tags": routed["meta"].get("tags", {})},
    }


def feedback(
    http: httpx.Client, request: dict[str, Any], response: dict[str, Any], reward: float
) -> httpx.Response:
    return http.post(
        "/send-feedback", json={"request": request, "response": response, "reward": reward}
    )


def arms(bandits: Bandits, experiment: str) -> dict[str, tuple[float, float]]:
    """arm → (observed rewards, their sum)."""
    return {a.arm_id: (a.rewards, a.reward_sum) for a in bandits.stats(experiment).arms}


@contextlib.contextmanager
def reader(store: str) -> Iterator[Bandits]:
    bandits = connect(store, tick_seconds=0) if "://" not in store else connect(store)
    try:
        yield bandits
    finally:
        bandits.close()


def binomial_floor(n: int, p: float, sds: float = 4.0) -> float:
    """A count below which Binomial(n, p) falls with probability < ~3e-5 (4 sd)."""
    return n * p - sds * math.sqrt(n * p * (1 - p))


# -- the tests ----------------------------------------------------------------------


def test_the_seed_notebook_replayed_through_seldons_microservice(
    microservice: Any, store: str, experiment: str
) -> None:
    eps, k = 0.3, 3
    m = microservice(n_branches=k, epsilon=eps, url=store, experiment=experiment)
    tag = f"octobandit:{experiment}"
    one = request_of(1)
    with httpx.Client(base_url=m.url, timeout=30) as http, reader(store) as bandits:
        spec = bandits.get_experiment(experiment)
        assert [a.id for a in spec.arms] == ["0", "1", "2"]
        assert spec.policy["type"] == "epsilon_greedy" and spec.policy["epsilon"] == eps

        # 100 routes before any feedback: every branch ties, so octobandit draws each with
        # 1/3 (Seldon's router sends 70% + 10% to branch 0); each a logged decision
        counts = [0] * k
        ids = set()
        for _ in range(100):
            routed = route(http, one)
            counts[branch_of(routed)] += 1
            ids.add(routed["meta"]["tags"][tag])
        assert len(ids) == 100
        assert all(c >= binomial_floor(100, 1 / k) for c in counts), counts
        assert bandits.stats(experiment).total_decisions == 100

        # one negative feedback, as in the notebook
        routed = route(http, one)
        assert feedback(http, one, executor_response(routed), 0).status_code == 200
        assert bandits.stats(experiment).total_reward == 0
        negative = branch_of(routed)

        # 100 route + feedback steps, rewarding branch 2 only: branch 2 comes to dominate
        history = []
        for _ in range(100):
            routed = route(http, one)
            branch = branch_of(routed)
            answer = feedback(http, one, executor_response(routed), 1 if branch == 2 else 0)
            assert answer.status_code == 200, answer.text
            history.append(branch)
        # once branch 2 has one success (each step draws it with >= 1/3: within the first
        # 50 steps but with probability (2/3)^50 < 1e-8) it is greedy: (1 - ε) + ε/3
        share = (1 - eps) + eps / k
        assert history[50:].count(2) >= binomial_floor(50, share), history
        before = arms(bandits, experiment)
        assert before["2"][1] == history.count(2)  # one success each
        assert before["2"][0] == history.count(2) + (negative == 2)
        assert sum(n for n, _ in before.values()) == 101  # every feedback counted once

        # a batch of 10 rows rewarded 0.4: its arm gets 10 observations, 4 successes
        batch = request_of(10)
        routed = route(http, batch)
        branch = str(branch_of(routed))
        assert feedback(http, batch, executor_response(routed), 0.4).status_code == 200
        after = arms(bandits, experiment)
        assert after[branch][0] == before[branch][0] + 10
        assert after[branch][1] == pytest.approx(before[branch][1] + 4)
        # the same feedback again is the same decision's reward: counted once
        assert feedback(http, batch, executor_response(routed), 0.4).status_code == 200
        assert arms(bandits, experiment) == after
        assert bandits.stats(experiment).total_decisions == 100 + 1 + 100 + 1


def test_feedback_without_the_decision_tag_rewards_the_routed_branch(
    microservice: Any, store: str, experiment: str
) -> None:
    m = microservice(n_branches=3, epsilon=0.1, url=store, experiment=experiment)
    with httpx.Client(base_url=m.url, timeout=30) as http, reader(store) as bandits:
        batch = request_of(5)
        plain = {"meta": {"routing": {UNIT: 1}}}  # no tags: an arm-level batch reward
        assert feedback(http, batch, plain, 0.6).status_code == 200
        # another router's tag (another experiment) is not this router's decision
        other = {"meta": {"routing": {UNIT: 1}, "tags": {"octobandit:other": "x"}}}
        assert feedback(http, request_of(1), other, 1.0).status_code == 200
        assert arms(bandits, experiment)["1"] == (6.0, pytest.approx(4.0))
        assert bandits.stats(experiment).total_decisions == 0


def test_bad_requests_answer_with_seldons_error_body(
    microservice: Any, tmp_path: Path, experiment: str
) -> None:
    m = microservice(n_branches=3, epsilon=0.1, url=str(tmp_path / "r.db"), experiment=experiment)
    tag = f"octobandit:{experiment}"
    with httpx.Client(base_url=m.url, timeout=30) as http:

        def failure(answer: httpx.Response, status: int, info: str) -> None:
            assert answer.status_code == status, answer.text
            body = answer.json()["status"]
            assert body["status"] == 1 and body["code"] == -1, body  # Seldon's FAILURE
            assert body["reason"] == "MICROSERVICE_BAD_DATA", body
            assert info in body["info"], body

        one = request_of(1)
        garbage = http.post(
            "/route", content=b"{not json", headers={"Content-Type": "application/json"}
        )
        failure(garbage, 400, "JSON")
        routed = route(http, one)
        response = executor_response(routed)
        failure(feedback(http, one, response, 2.0), 400, "rewards in [0, 1]")
        failure(feedback(http, one, {"meta": {}}, 1.0), 400, "no decision")
        unknown = {"meta": {"routing": {UNIT: 0}, "tags": {tag: "no-such-decision"}}}
        failure(feedback(http, one, unknown, 1.0), 400, "not found")
        failure(feedback(http, one, {"meta": {"routing": {UNIT: 7}}}, 1.0), 400, "routing 7")
        # the good feedback still goes through after all these
        assert feedback(http, one, response, 1.0).status_code == 200


def test_a_bad_parameter_stops_the_microservice_at_start(seldon: Path, tmp_path: Path) -> None:
    m = Microservice(seldon, tmp_path, epsilon=0.1, url=str(tmp_path / "r.db"))  # no n_branches
    with pytest.raises(RuntimeError, match="n_branches is required"):
        m.start()
    m.stop()


# -- the router's parameters, in this process (no seldon-core: its RouterError) ---------


def test_parameters_make_the_experiment(tmp_path: Path) -> None:
    from octobandit.integrations.seldon import Router, RouterError

    db = str(tmp_path / "p.db")
    r = Router(n_branches=2, policy="thompson", url=db, experiment="t")
    r2 = Router(n_branches="2", policy='{"type": "ucb1"}', url=db, experiment="u")
    r3 = Router(n_branches=2, url=db, experiment="e", verbose=True, history=True)
    with reader(db) as bandits:
        assert bandits.get_experiment("t").policy["type"] == "thompson"
        assert bandits.get_experiment("u").policy["type"] == "ucb1"
        assert bandits.get_experiment("e").policy == {
            "type": "epsilon_greedy",
            "epsilon": 0.1,  # Seldon's router's default
            "initial_value": 0.0,
        }
    # the graph got a third child: a third arm; the plain send_feedback is arm-level
    r4 = Router(n_branches=3, url=db, experiment="e")
    r4.send_feedback([[0, 0], [1, 1]], ["a", "b"], 0.5, None, routing=2)
    with reader(db) as bandits:
        assert [a.id for a in bandits.get_experiment("e").arms] == ["0", "1", "2"]
        assert arms(bandits, "e")["2"] == (2.0, 1.0)
    for router in (r, r2, r3, r4):
        router.close()

    bad: list[dict[str, Any]] = [
        {},  # no n_branches
        {"n_branches": 0},
        {"n_branches": 2, "epsilon": "x"},
        {"n_branches": 2, "policy": "thompson", "epsilon": 0.2},
        {"n_branches": 2, "policy": "{not json"},
        {"n_branches": 2, "policy": "no-such-policy"},
        {"n_branches": 2, "colour": "red"},
        {"n_branches": 2, "experiment": "e"},  # e has an enabled arm "2": not a branch
    ]
    for parameters in bad:
        with pytest.raises(RouterError) as info:
            Router(url=db, **{"experiment": "x", **parameters})
        assert info.value.to_dict()["status"]["reason"] == "MICROSERVICE_BAD_PARAMETER"
