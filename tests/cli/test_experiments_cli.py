"""The service commands (experiments, arms, decide, reward, fixtures) against a real service:
their --json output is the API's answer, their exit codes follow the error."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import msgspec
import pytest
from typer.testing import CliRunner, Result

from octobandit.cli import app
from octobandit.client import Client

runner = CliRunner()
EXAMPLE_FIXTURES = Path(__file__).parents[2] / "examples" / "telegram_bot" / "fixtures"

COMMANDS = [
    ["experiments", "create"],
    ["experiments", "list"],
    ["experiments", "show"],
    ["experiments", "stats"],
    ["experiments", "pause"],
    ["experiments", "resume"],
    ["experiments", "conclude"],
    ["experiments", "delete"],
    ["arms", "add"],
    ["arms", "enable"],
    ["arms", "disable"],
    ["decide"],
    ["reward"],
    ["fixtures", "load"],
]


@pytest.fixture
def url(module_server: Any) -> str:
    return str(module_server.url)


@pytest.fixture
def api(url: str) -> Iterator[Client]:
    with Client(url) as client:
        yield client


def cli(url: str, *args: str, input: str | None = None) -> Result:
    """Run the command with OCTOBANDIT_URL set as a user would."""
    return runner.invoke(app, list(args), env={"OCTOBANDIT_URL": url}, input=input)


def as_json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def plain(value: Any) -> Any:
    return msgspec.to_builtins(value)


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help_with_the_connection_and_the_exit_codes(
    command: list[str],
) -> None:
    r = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert r.exit_code == 0
    for text in ("--url", "OCTOBANDIT_URL", "--api-key", "OCTOBANDIT_API_KEY", "--json"):
        assert text in r.stdout
    assert "Exit codes: 0 ok" in r.stdout and "6 service unreachable" in r.stdout


def test_create_list_and_show_answer_what_the_api_answers(
    url: str, api: Client, exp_id: str
) -> None:
    created = as_json(
        cli(
            url, "experiments", "create", exp_id, "--json",
            "-a", "red", "-a", '{"id": "blue", "payload": {"colour": "#00f"}}',
            "-p", '{"type": "epsilon_greedy", "epsilon": 0.2}',
            "--reward", '{"type": "binary", "attribution_window": 60, "default": 0}',
            "--name", "Buttons", "--stopping", '{"prob_best": 0.99}',
        )
    )  # fmt: skip
    assert created == plain(api.get_experiment(exp_id))
    assert created["policy"]["epsilon"] == 0.2 and created["name"] == "Buttons"
    assert [a["id"] for a in created["arms"]] == ["red", "blue"]
    assert created["reward"]["attribution_window"] == 60
    assert created["stopping"]["prob_best"] == 0.99
    listed = as_json(cli(url, "experiments", "list", "--json"))
    assert plain(api.get_experiment(exp_id)) in listed
    assert as_json(cli(url, "experiments", "show", exp_id, "--json")) == created
    # for people: tables with the values
    shown = cli(url, "experiments", "show", exp_id)
    assert shown.exit_code == 0 and "epsilon_greedy" in shown.stdout and "blue" in shown.stdout
    rows = cli(url, "experiments", "list")
    assert rows.exit_code == 0 and exp_id in rows.stdout


def test_create_from_a_file_with_options_over_it(
    url: str, api: Client, exp_id: str, tmp_path: Path
) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"id": "ignored", "arms": ["x", "y"], "policy": "ucb1"}))
    made = as_json(cli(url, "experiments", "create", exp_id, "--file", str(spec), "--json"))
    assert made["id"] == exp_id and made["policy"]["type"] == "ucb1"
    assert made == plain(api.get_experiment(exp_id))
    spec.write_text(json.dumps({"arms": ["x"], "colour": "red"}))
    r = cli(url, "experiments", "create", "--file", str(spec))
    assert r.exit_code == 2 and "colour" in r.output


def test_decide_and_reward_by_decision_and_by_arm(url: str, api: Client, exp_id: str) -> None:
    api.create_experiment(exp_id, arms=["a", "b"], policy="thompson")
    decision = as_json(cli(url, "decide", exp_id, "--unit", "u1", "--json"))
    assert decision["experiment_id"] == exp_id and decision["arm_id"] in ("a", "b")
    again = cli(url, "decide", exp_id, "--unit", "u1")  # sticky: the same arm
    assert again.exit_code == 0 and f"arm {decision['arm_id']} " in again.stdout
    assert as_json(cli(url, "reward", exp_id, decision["decision_id"], "1", "--json")) == {
        "accepted": 1,
        "duplicates": 0,
    }
    repeat = cli(url, "reward", exp_id, decision["decision_id"], "1")
    assert repeat.exit_code == 0 and "duplicates 1" in repeat.stdout
    assert (
        as_json(cli(url, "reward", exp_id, "--arm", "b", "0.25", "--count", "8", "--json"))[
            "accepted"
        ]
        == 1
    )
    stats = as_json(cli(url, "experiments", "stats", exp_id, "--json"))
    assert stats == plain(api.stats(exp_id))
    by_arm = {a["arm_id"]: a for a in stats["arms"]}
    chosen = decision["arm_id"]
    assert by_arm[chosen]["decisions"] == 2
    assert by_arm["b"]["rewards"] == 8 + (chosen == "b")
    assert by_arm["b"]["reward_sum"] == pytest.approx(2.0 + (chosen == "b"))
    table = cli(url, "experiments", "stats", exp_id)
    assert table.exit_code == 0 and "P(best)" in table.stdout and "stopping rule" in table.stdout
    # a negative value after '--' reaches the service (which refuses it for a binary reward)
    negative = cli(url, "reward", exp_id, "--", decision["decision_id"], "-1")
    assert negative.exit_code == 4 and "reward" in negative.stderr
    # usage errors: no value, a value that is not a number, --count without --arm
    for args in (["d1"], ["d1", "lots"], ["d1", "1", "--count", "2"], ["--arm", "a", "d1", "1"]):
        assert cli(url, "reward", exp_id, *args).exit_code == 2
    assert cli(url, "decide", exp_id, "--context", "{nope").exit_code == 2


def test_pause_resume_conclude(url: str, api: Client, exp_id: str) -> None:
    api.create_experiment(exp_id, arms=["a", "b"])
    api.set_arm_stats(exp_id, "a", decisions=50, rewards=50, reward_sum=10)
    api.set_arm_stats(exp_id, "b", decisions=50, rewards=50, reward_sum=40)
    paused = as_json(cli(url, "experiments", "pause", exp_id, "--json"))
    assert paused["status"] == "paused" == api.get_experiment(exp_id).status
    r = cli(url, "experiments", "resume", exp_id)
    assert r.exit_code == 0 and "resumed" in r.stdout
    assert api.get_experiment(exp_id).status == "running"
    done = as_json(cli(url, "experiments", "conclude", exp_id, "--json"))
    assert done == plain(api.get_experiment(exp_id))
    assert done["status"] == "concluded" and done["conclusion"]["winner"] == "b"  # the leader
    r = cli(url, "experiments", "conclude", exp_id, "--winner", "a")
    assert r.exit_code == 0 and "a wins" in r.stdout
    assert api.get_experiment(exp_id).conclusion["winner"] == "a"  # type: ignore[index]
    assert "concluded: a" in cli(url, "experiments", "stats", exp_id).stdout
    bad = cli(url, "experiments", "conclude", exp_id, "--winner", "zzz")
    assert bad.exit_code == 4 and "winner" in bad.stderr
    assert api.get_experiment(exp_id).conclusion["winner"] == "a"  # type: ignore[index]
    assert cli(url, "experiments", "resume", exp_id).exit_code == 0
    assert api.get_experiment(exp_id).conclusion is None


def test_arms_add_enable_disable(url: str, api: Client, exp_id: str) -> None:
    api.create_experiment(exp_id, arms=["a"])
    added = as_json(
        cli(
            url, "arms", "add", exp_id, "c", "--json", "--payload", '{"text": "hi"}',
            "--prior", '{"rewards": 10, "reward_sum": 8}', "--disabled",
        )
    )  # fmt: skip
    arm = next(a for a in api.get_experiment(exp_id).arms if a.id == "c")
    assert added == plain(arm) and added["enabled"] is False and added["payload"] == {"text": "hi"}
    assert added["prior"]["reward_sum"] == 8
    assert as_json(cli(url, "arms", "enable", exp_id, "c", "--json"))["enabled"] is True
    r = cli(url, "arms", "disable", exp_id, "c")
    assert r.exit_code == 0 and "disabled" in r.stdout
    assert not next(a for a in api.get_experiment(exp_id).arms if a.id == "c").enabled
    again = cli(url, "arms", "add", exp_id, "c")
    assert again.exit_code == 4 and "already exists" in again.stderr
    assert cli(url, "arms", "enable", exp_id, "nope").exit_code == 3
    assert cli(url, "arms", "add", exp_id, "d", "--prior", "[1]").exit_code == 2


def test_delete_asks_unless_yes(url: str, api: Client, exp_id: str) -> None:
    api.create_experiment(exp_id, arms=["a"])
    no = cli(url, "experiments", "delete", exp_id, input="n\n")
    assert no.exit_code == 1 and "not deleted" in no.stderr
    assert api.get_experiment(exp_id).id == exp_id
    yes = cli(url, "experiments", "delete", exp_id, input="y\n")
    assert yes.exit_code == 0 and "deleted" in yes.stdout
    assert cli(url, "experiments", "show", exp_id).exit_code == 3
    api.create_experiment(exp_id, arms=["a"])
    assert as_json(cli(url, "experiments", "delete", exp_id, "--yes", "--json")) == {
        "deleted": exp_id
    }
    assert exp_id not in [e.id for e in api.list_experiments()]


def test_exit_codes_and_the_services_message_on_stderr(url: str, api: Client, exp_id: str) -> None:
    missing = cli(url, "experiments", "stats", exp_id)
    assert missing.exit_code == 3
    assert missing.stderr.startswith("error: 404 experiment_not_found:") and missing.stdout == ""
    invalid = cli(url, "experiments", "create", exp_id, "-p", "nonsense")
    assert invalid.exit_code == 4 and "unknown policy type 'nonsense'" in invalid.stderr
    assert exp_id not in [e.id for e in api.list_experiments()]  # refused: nothing written
    assert cli(url, "experiments", "create", exp_id, "-a", "a").exit_code == 0
    conflict = cli(url, "experiments", "create", exp_id, "-a", "a")
    assert conflict.exit_code == 4 and "already_exists" in conflict.stderr
    assert cli(url, "experiments", "create", "-p", "{broken").exit_code == 2  # usage
    assert cli(url, "decide", exp_id, "--context", "3").exit_code == 2


def test_an_unreachable_service_is_exit_code_6() -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = cli(f"http://127.0.0.1:{port}", "experiments", "list", "--timeout", "2")
    assert r.exit_code == 6 and "Connection refused" in r.stderr
    for url in ("localhost:8000", "127.0.0.1", "ftp://127.0.0.1"):  # not a URL of a service
        r = cli(url, "experiments", "list")
        assert r.exit_code == 2 and "http:// or https://" in r.output


class _Refusing(BaseHTTPRequestHandler):
    """Answers 401 without the right key and 403 with another one (as an auth layer does)."""

    seen: ClassVar[list[str | None]] = []

    def do_GET(self) -> None:
        key = self.headers.get("Authorization")
        self.seen.append(key)
        status = 401 if key is None else 403
        body = json.dumps({"error": {"code": "unauthorized", "message": "no access"}}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_auth_refusals_are_exit_code_5_and_the_key_is_sent() -> None:
    server = HTTPServer(("127.0.0.1", 0), _Refusing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        r = cli(url, "experiments", "list")
        assert r.exit_code == 5 and "401 unauthorized: no access" in r.stderr
        r = runner.invoke(
            app,
            ["experiments", "show", "x"],
            env={"OCTOBANDIT_URL": url, "OCTOBANDIT_API_KEY": "k-123"},
        )
        assert r.exit_code == 5 and "403" in r.stderr
        assert _Refusing.seen == [None, "Bearer k-123"]
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("fixture", ["arm2_wins.yaml", "arm2_wins.json"])
def test_fixtures_load_changes_the_stats_the_api_reports(
    url: str, api: Client, exp_id: str, fixture: str, tmp_path: Path
) -> None:
    path = EXAMPLE_FIXTURES / "arm2_wins.yaml"
    if fixture.endswith(".json"):  # the same fixture as JSON
        import yaml

        path = tmp_path / fixture
        path.write_text(
            json.dumps(yaml.safe_load((EXAMPLE_FIXTURES / "arm2_wins.yaml").read_text()))
        )
    api.create_experiment(exp_id, arms=["arm1", "arm2"])
    stats = as_json(cli(url, "fixtures", "load", str(path), "-e", exp_id, "--json"))
    assert stats == plain(api.stats(exp_id))
    by_arm = {a["arm_id"]: a for a in stats["arms"]}
    assert (by_arm["arm1"]["decisions"], by_arm["arm1"]["reward_sum"]) == (100, 10)
    assert (by_arm["arm2"]["decisions"], by_arm["arm2"]["reward_sum"]) == (100, 80)
    # arm2 now leads: 81/102 against 11/102 successes leave no doubt which is best
    assert api.conclusion(exp_id).leader == "arm2"


def test_fixtures_load_adds_arms_with_priors_once(url: str, api: Client, exp_id: str) -> None:
    api.create_experiment(exp_id, arms=["arm1", "arm2"])
    path = str(EXAMPLE_FIXTURES / "arm3_prior.json")
    r = cli(url, "fixtures", "load", path, "--experiment", exp_id)
    assert r.exit_code == 0 and r.stdout.strip() == "arm arm3 added"
    arm3 = next(a for a in api.get_experiment(exp_id).arms if a.id == "arm3")
    assert arm3.prior is not None and arm3.prior["reward_sum"] == 8
    r = cli(url, "fixtures", "load", path, "--experiment", exp_id)
    assert r.exit_code == 0 and r.stdout.strip() == "arm arm3 exists, kept"


def test_a_bad_fixture_or_experiment_writes_nothing(
    url: str, api: Client, exp_id: str, tmp_path: Path
) -> None:
    api.create_experiment(exp_id, arms=["a"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("stats:\n  a: {decisions: many}\n")
    r = cli(url, "fixtures", "load", str(bad), "-e", exp_id)
    assert r.exit_code == 4 and "stats.a.decisions: must be a number" in r.stderr
    path = str(EXAMPLE_FIXTURES / "arm3_prior.json")
    assert cli(url, "fixtures", "load", path, "-e", exp_id + "-missing").exit_code == 3
    assert [a.id for a in api.get_experiment(exp_id).arms] == ["a"]
    assert api.stats(exp_id).total_decisions == 0


def test_the_readme_commands_run(url: str, api: Client) -> None:
    import re
    import shlex

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("## Command line", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, flags=re.S)
    assert block is not None
    api.create_experiment("tg-prompts", arms=["arm1", "arm2"])  # the Telegram example's
    decision_id = None
    for line in block.group(1).splitlines():
        args = shlex.split(line, comments=True)
        assert args[0] == "octobandit"
        args = [decision_id if a == "DECISION_ID" else a for a in args[1:]]
        args = [
            str(Path(__file__).parents[2] / a) if a.startswith("examples/") else a for a in args
        ]
        r = cli(url, *args)
        assert r.exit_code == 0, (line, r.output)
        found = re.search(r"decision (\S+)", r.stdout)
        decision_id = found.group(1) if found and args[0] == "decide" else decision_id
    assert api.get_experiment("router").conclusion["winner"] == "model-2"  # type: ignore[index]
    assert api.stats("router").total_decisions == 1
    assert sum(a.reward_sum for a in api.stats("router").arms) == 1
    assert {a.arm_id: a.reward_sum for a in api.stats("tg-prompts").arms} == {
        "arm1": 10,
        "arm2": 80,
    }
