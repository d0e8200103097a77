"""`octobandit evaluate`: candidate policies evaluated off-policy on an experiment's log.

Structured as a data source (the experiment's log, read from a store or a running
service) → the estimators' arrays → the shared estimation and output of
:mod:`octobandit.offline.report`, so another source of the same arrays plugs in.
"""

from __future__ import annotations

import os

import typer

from octobandit.cli._app import app


@app.command()
def evaluate(
    experiment: str = typer.Argument(..., help="The experiment's id."),
    policy: list[str] = typer.Option(
        [],
        "--policy",
        "-p",
        help='A candidate (repeat it): a policy type or its JSON spec, e.g. \'{"type": '
        '"epsilon_greedy", "epsilon": 0.2}\', optionally with a "name"; or a fixed action '
        "distribution '{\"action_dist\": [0.5, 0.3, 0.2]}' over the experiment's arms.",
    ),
    store: str = typer.Option(
        "", "--store", "--db", help="Read this store directly: an SQLite file or a PostgreSQL URL."
    ),
    url: str = typer.Option(
        "", "--url", help="Read a running service instead, e.g. http://127.0.0.1:8000."
    ),
    limit: int = typer.Option(
        0,
        "--limit",
        min=0,
        help="Only the most recent LIMIT decisions (0: all of them; memory holds them).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    png: str = typer.Option(
        "", "--png", help="Write the replay's reward and regret curves to this PNG (matplotlib)."
    ),
    bootstrap: int = typer.Option(
        1000, "--bootstrap", min=10, help="Bootstrap resamples for the 95% intervals."
    ),
    switch_tau: float = typer.Option(
        10.0, "--switch-tau", min=0.0, help="Switch-DR: the largest importance weight corrected."
    ),
    seed: int = typer.Option(12345, "--seed", help="Seeds the bootstrap, reward model and replay."),
) -> None:
    """Evaluate candidate policies off-policy on an experiment's event log: IPS, SNIPS, DM,
    DR, SNDR, Switch-DR (the candidate given the logger's information) and the replay
    method (the candidate as if run online), with 95% intervals. See docs/evaluation.md."""
    import json

    from octobandit.errors import OctobanditError
    from octobandit.evaluation import EvaluationError
    from octobandit.export import ExportError
    from octobandit.offline import (
        evaluate_log,
        http_rounds,
        parse_candidates,
        plot_replay,
        print_table,
        store_rounds,
    )

    if bool(store) == bool(url):
        raise typer.BadParameter("give exactly one of --store/--db and --url")
    if not policy:
        raise typer.BadParameter("give at least one --policy")
    if store and "://" not in store and not os.path.exists(store):
        raise typer.BadParameter(f"--db: no such file {store!r}")
    try:
        if url:
            rounds, reward_type = http_rounds(url, experiment, limit=limit or None)
        else:
            rounds, reward_type = store_rounds(store, experiment, limit=limit or None)
        try:
            candidates = parse_candidates(policy, reward_type)
        except OctobanditError as exc:
            raise typer.BadParameter(str(exc), param_hint="--policy") from None
        result = evaluate_log(
            rounds,
            candidates,
            switch_tau=switch_tau,
            n_bootstrap_samples=bootstrap,
            random_state=seed,
            curves=bool(png) or as_json,
        )
    except (OctobanditError, EvaluationError, ExportError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    if png:
        try:
            plot_replay(result, png)
        except ImportError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(result, indent=1))
    else:
        print_table(result)
        if png:
            typer.echo(f"wrote {png}", err=True)
