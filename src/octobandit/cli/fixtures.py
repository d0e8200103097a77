"""`octobandit fixtures load FILE`: arms' statistics and new arms with priors ("cheater
mode"), from YAML or JSON, into a running service's experiment (through the SDK)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from octobandit.cli import _remote as r
from octobandit.cli._app import app

fixtures = typer.Typer(
    help='Fixtures ("cheater mode"): start an experiment from chosen statistics.',
    epilog=r.EXIT_CODES_HELP,
    no_args_is_help=True,
)
app.add_typer(fixtures, name="fixtures")


@fixtures.command("load", epilog=r.EXIT_CODES_HELP)
def load(
    file: Annotated[
        Path,
        typer.Argument(
            help="The fixture: .json is JSON, anything else YAML (the format of "
            "octobandit.fixtures, shared with the Telegram example's /cheat).",
            show_default=False,
        ),
    ],
    experiment_id: Annotated[
        str,
        typer.Option(
            "--experiment", "-e", help="The experiment to load it into.", show_default=False
        ),
    ],
    url: r.Url = r.DEFAULT_URL,
    api_key: r.ApiKey = "",
    timeout: r.Timeout = 10.0,
    as_json: r.AsJson = False,
) -> None:
    """Load a fixture: add its arms (with their priors; an existing arm is kept as it is),
    then replace the statistics of the arms it lists. Prints what it did and the
    experiment's statistics (--json: the statistics, as GET .../stats answers them).

    Not atomic: a refusal midway (exit code 3 or 4) leaves the steps before it done.
    """
    from octobandit.client import ConflictError
    from octobandit.fixtures import FixtureError, load_fixture

    try:
        fixture = load_fixture(file)
    except FixtureError as exc:
        r.fail(str(exc), r.INVALID)
    done: list[str] = []
    with r.connect(url, api_key, timeout) as client:
        client.get_experiment(experiment_id)  # a missing experiment: nothing is tried
        for spec in fixture.arms:
            try:
                client.add_arm(
                    experiment_id,
                    spec["id"],
                    payload=spec.get("payload"),
                    enabled=spec.get("enabled", True),
                    prior=spec.get("prior"),
                )
                done.append(f"arm {spec['id']} added")
            except ConflictError as exc:
                if exc.code != "already_exists":
                    raise
                done.append(f"arm {spec['id']} exists, kept")
        for arm_id, row in fixture.stats.items():
            client.set_arm_stats(experiment_id, arm_id, **row)
            done.append(f"arm {arm_id} statistics set")
        stats = client.stats(experiment_id)
    if as_json:
        r.print_json(stats)
        return
    for line in done:
        typer.echo(line)
    if not done:
        typer.echo("the fixture is empty: nothing to do")
