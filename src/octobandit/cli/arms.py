"""`octobandit arms ...`: add, enable and disable arms of a running service's experiment."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from octobandit.cli import _remote as r
from octobandit.cli._app import app

if TYPE_CHECKING:
    from octobandit.client import Arm

arms = typer.Typer(
    help="Arms of an experiment: add, enable, disable.",
    epilog=r.EXIT_CODES_HELP,
    no_args_is_help=True,
)
app.add_typer(arms, name="arms")

ExperimentId = Annotated[str, typer.Argument(help="The experiment's id.", show_default=False)]
ArmId = Annotated[str, typer.Argument(help="The arm's id.", show_default=False)]


def _done(a: Arm, what: str, as_json: bool) -> None:
    state = "deleted" if a.deleted else ("enabled" if a.enabled else "disabled")
    r.output(a, as_json, lambda: typer.echo(f"arm {a.id} {what} (now {state})"))


@arms.command("add", epilog=r.EXIT_CODES_HELP)
def add(
    experiment_id: ExperimentId,
    arm_id: ArmId,
    payload: Annotated[
        str | None,
        typer.Option(
            "--payload",
            help='A JSON value returned with the arm\'s decisions, e.g. \'{"color": "red"}\'.',
            show_default=False,
        ),
    ] = None,
    prior: Annotated[
        str | None,
        typer.Option(
            "--prior",
            help='Warm start as JSON: pseudo-observations \'{"rewards": 10, "reward_sum": 8}\' '
            '(also "reward_sq_sum"), or \'{"alpha": 9, "beta": 3}\' for binary rewards.',
            show_default=False,
        ),
    ] = None,
    disabled: Annotated[
        bool, typer.Option("--disabled", help="Add it disabled (never chosen until enabled).")
    ] = False,
    url: r.Url = r.DEFAULT_URL,
    api_key: r.ApiKey = "",
    timeout: r.Timeout = 10.0,
    as_json: r.AsJson = False,
) -> None:
    """Add an arm to an experiment (an existing arm id: exit code 4)."""
    value = r.json_option(payload, "--payload")
    start = r.json_object(prior, "--prior")
    with r.connect(url, api_key, timeout) as client:
        a = client.add_arm(experiment_id, arm_id, payload=value, enabled=not disabled, prior=start)
    _done(a, "added", as_json)


@arms.command("enable", epilog=r.EXIT_CODES_HELP)
def enable(
    experiment_id: ExperimentId,
    arm_id: ArmId,
    url: r.Url = r.DEFAULT_URL,
    api_key: r.ApiKey = "",
    timeout: r.Timeout = 10.0,
    as_json: r.AsJson = False,
) -> None:
    """Enable an arm: the policy may choose it again."""
    with r.connect(url, api_key, timeout) as client:
        a = client.update_arm(experiment_id, arm_id, enabled=True)
    _done(a, "enabled", as_json)


@arms.command("disable", epilog=r.EXIT_CODES_HELP)
def disable(
    experiment_id: ExperimentId,
    arm_id: ArmId,
    url: r.Url = r.DEFAULT_URL,
    api_key: r.ApiKey = "",
    timeout: r.Timeout = 10.0,
    as_json: r.AsJson = False,
) -> None:
    """Disable an arm: never chosen until enabled again; its statistics and rewards stay."""
    with r.connect(url, api_key, timeout) as client:
        a = client.update_arm(experiment_id, arm_id, enabled=False)
    _done(a, "disabled", as_json)
