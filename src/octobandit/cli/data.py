"""`octobandit decide` and `octobandit reward`: the data plane of a running service, by hand
(through the SDK): to try an experiment out or to check a deployment."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from octobandit.cli import _remote as r
from octobandit.cli._app import app

ExperimentId = Annotated[str, typer.Argument(help="The experiment's id.", show_default=False)]


@app.command(epilog=r.EXIT_CODES_HELP)
def decide(
    experiment_id: ExperimentId,
    unit: Annotated[
        str | None,
        typer.Option(
            "--unit",
            "-u",
            help="The unit (user, session ...): it gets the same arm every time (sticky).",
            show_default=False,
        ),
    ] = None,
    context: Annotated[
        str | None,
        typer.Option(
            "--context",
            "-c",
            help='The context as JSON, for contextual policies: \'{"age": 0.3, "mobile": 1}\' '
            "or a list of numbers in the declared features' order.",
            show_default=False,
        ),
    ] = None,
    url: r.Url = r.DEFAULT_URL,
    api_key: r.ApiKey = "",
    timeout: r.Timeout = 10.0,
    as_json: r.AsJson = False,
) -> None:
    """Ask for a decision: prints the arm and the decision id (to reward it with)."""
    ctx: Any = r.json_option(context, "--context")
    if ctx is not None and not isinstance(ctx, dict | list):
        raise typer.BadParameter("a JSON object or list", param_hint="--context")
    with r.connect(url, api_key, timeout) as client:
        d = client.decide(experiment_id, unit_id=unit, context=ctx)
    r.output(
        d,
        as_json,
        lambda: typer.echo(
            f"arm {d.arm_id}  decision {d.decision_id}  propensity {r.cell(d.propensity)}"
            + ("" if d.payload is None else f"  payload {r.cell(d.payload)}")
        ),
    )


@app.command(epilog=r.EXIT_CODES_HELP)
def reward(
    experiment_id: ExperimentId,
    values: Annotated[
        list[str],
        typer.Argument(
            help="DECISION_ID VALUE: reward that decision; with --arm, only VALUE. A "
            "negative VALUE goes after '--' (octobandit reward exp -- d1 -0.5).",
            show_default=False,
            metavar="[DECISION_ID] VALUE",
        ),
    ],
    arm: Annotated[
        str | None,
        typer.Option(
            "--arm",
            help="Reward an arm directly (no decision): --count pulls whose mean reward is "
            "VALUE. Not idempotent: a repeat counts again.",
            show_default=False,
        ),
    ] = None,
    count: Annotated[
        int, typer.Option("--count", min=1, help="With --arm: how many pulls VALUE stands for.")
    ] = 1,
    url: r.Url = r.DEFAULT_URL,
    api_key: r.ApiKey = "",
    timeout: r.Timeout = 10.0,
    as_json: r.AsJson = False,
) -> None:
    """Send a reward for a decision (a repeat is counted once), or for an arm with --arm."""
    want = 1 if arm is not None else 2
    if len(values) != want:
        raise typer.BadParameter(
            "give VALUE with --arm" if arm is not None else "give DECISION_ID VALUE",
            param_hint="arguments",
        )
    try:
        value = float(values[-1])
    except ValueError:
        raise typer.BadParameter(f"VALUE: a number, got {values[-1]!r}") from None
    if count != 1 and arm is None:
        raise typer.BadParameter("only with --arm", param_hint="--count")
    with r.connect(url, api_key, timeout) as client:
        if arm is not None:
            answer = client.reward_arm(experiment_id, arm, value, count)
        else:
            answer = client.reward(experiment_id, values[0], value)

    def human() -> None:
        text = f"accepted {answer.accepted}, duplicates {answer.duplicates}"
        if answer.late is not None:
            text += f", late {answer.late}"
        typer.echo(text)

    r.output(answer, as_json, human)
