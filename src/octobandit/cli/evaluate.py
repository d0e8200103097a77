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
    experiment: str = typer.Argument(
        "", help="The experiment's id (not with --obd).", show_default=False
    ),
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
    obd: str = typer.Option(
        "",
        "--obd",
        metavar="DIR",
        help="Evaluate on a part of the Open Bandit Dataset instead, e.g. obd/random/all "
        "(its CSV layout; needs --action-dist).",
    ),
    action_dist: str = typer.Option(
        "",
        "--action-dist",
        metavar="FILE",
        help="With --obd: the evaluated policy's action distribution, a JSON file "
        '{"action_dist": ...} of shape (K, L), the same every round, or (n, K, L).',
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
    method (the candidate as if run online), with 95% intervals; or, with --obd and
    --action-dist, an action distribution on the Open Bandit Dataset (IPW, SNIPW, DM, DR).
    See docs/evaluation.md."""
    import json

    if obd or action_dist:
        _evaluate_obd(obd, action_dist, experiment, bool(policy or store or url or png), as_json,
                      bootstrap, seed)  # fmt: skip
        return

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

    if not experiment:
        raise typer.BadParameter("give the experiment's id (or --obd DIR --action-dist FILE)")
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


def _evaluate_obd(
    obd: str, action_dist: str, experiment: str, log_options: bool, as_json: bool,
    bootstrap: int, seed: int,
) -> None:  # fmt: skip
    """``--obd DIR --action-dist FILE``: IPW, SNIPW, DM and DR on an OBD part."""
    import json

    from octobandit.evaluation.obd import evaluate_obd, load_obd, read_action_dist
    from octobandit.offline import print_table

    if not obd or not action_dist:
        raise typer.BadParameter("--obd and --action-dist go together")
    if experiment or log_options:
        raise typer.BadParameter(
            "--obd evaluates --action-dist on the dataset: no experiment, --policy, --db, "
            "--url or --png"
        )
    try:
        data = load_obd(obd)
        dist = read_action_dist(action_dist, n_actions=data.n_actions, len_list=data.len_list)
        result = evaluate_obd(data, dist, n_bootstrap_samples=bootstrap, random_state=seed)
    except (OSError, ValueError) as exc:  # ObdError is a ValueError
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(result, indent=1))
    else:
        print_table(result)
