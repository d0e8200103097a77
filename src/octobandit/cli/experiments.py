"""`octobandit experiments ...`: create, list, show, pause, resume, conclude and delete
experiments of a running service, and read their statistics (through the SDK)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from octobandit.cli import _remote as r
from octobandit.cli._app import app

if TYPE_CHECKING:
    from octobandit.client import Conclusion, Experiment, Stats

experiments = typer.Typer(
    help="Experiments of a running service: create, list, show, stats, pause, resume, "
    "conclude, delete.",
    epilog=r.EXIT_CODES_HELP,
    no_args_is_help=True,
)
app.add_typer(experiments, name="experiments")

ExperimentId = Annotated[str, typer.Argument(help="The experiment's id.", show_default=False)]


def _show(e: Experiment) -> None:
    reward = " ".join(f"{k}={v}" for k, v in r.msgspec_dict(e.reward).items())
    rows: list[tuple[str, Any]] = [
        ("id", e.id),
        ("name", e.name),
        ("status", e.status),
        ("policy", e.policy),
        ("reward", reward),
        ("context", None if e.context is None else ", ".join(e.context.features)),
        ("stopping", e.stopping),
        ("snapshot interval", e.snapshot_interval),
        ("conclusion", e.conclusion),
        ("version", e.version),
        ("created", e.created_at),
        ("updated", e.updated_at),
    ]
    r.print_table(r.table(f"Experiment {e.id}", ("field", "value"), rows))
    arms = [
        (a.id, "deleted" if a.deleted else ("yes" if a.enabled else "no"), a.prior, a.payload)
        for a in e.arms
    ]
    r.print_table(r.table("Arms", ("arm", "enabled", "prior", "payload"), arms))


def _changed(e: Experiment, what: str, as_json: bool) -> None:
    r.output(e, as_json, lambda: typer.echo(f"experiment {e.id} {what} (status {e.status})"))


@experiments.command("create", epilog=r.EXIT_CODES_HELP)
def create(
    experiment_id: Annotated[
        str | None,
        typer.Argument(
            help="The new experiment's id: lower-case letters, digits, - and _ (at most 64, "
            "starting with a letter or digit). Default: the file's 'id', else the service "
            "makes one.",
            show_default=False,
        ),
    ] = None,
    arm: Annotated[
        list[str] | None,
        typer.Option(
            "--arm",
            "-a",
            help="An arm: its id, or its JSON spec "
            '\'{"id": "b", "payload": ..., "prior": {...}}\'. Repeat it for each arm.',
            show_default=False,
        ),
    ] = None,
    policy: Annotated[
        str | None,
        typer.Option(
            "--policy",
            "-p",
            help='A policy type or its JSON spec, e.g. \'{"type": "epsilon_greedy", '
            "\"epsilon\": 0.1}' (the service's default: thompson).",
            show_default=False,
        ),
    ] = None,
    reward: Annotated[
        str | None,
        typer.Option(
            "--reward",
            help="The reward's type (binary, continuous) or its JSON spec, e.g. '{\"type\": "
            '"binary", "attribution_window": 3600, "default": 0}\' (default: binary).',
            show_default=False,
        ),
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="A readable name.", show_default=False)
    ] = None,
    context: Annotated[
        str | None,
        typer.Option(
            "--context",
            help="Context feature names, comma-separated (for contextual policies).",
            show_default=False,
        ),
    ] = None,
    stopping: Annotated[
        str | None,
        typer.Option(
            "--stopping",
            help='The stopping rule as JSON, e.g. \'{"prob_best": 0.99, "auto_conclude": true}\'.',
            show_default=False,
        ),
    ] = None,
    snapshot_interval: Annotated[
        float | None,
        typer.Option(
            "--snapshot-interval", help="Seconds between posterior snapshots.", show_default=False
        ),
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file",
            "-f",
            help="The whole spec as JSON (the body of POST /v1/experiments); the id "
            "argument and the options given replace its values.",
            show_default=False,
        ),
    ] = None,
    url: r.Url = r.DEFAULT_URL,
    api_key: r.ApiKey = "",
    timeout: r.Timeout = 10.0,
    as_json: r.AsJson = False,
) -> None:
    """Create an experiment, e.g. `octobandit experiments create buttons -a buy -a get`."""
    spec: dict[str, Any] = {}
    if file is not None:
        try:
            spec = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise typer.BadParameter(f"{file}: {exc}", param_hint="--file") from None
        if not isinstance(spec, dict):
            raise typer.BadParameter(f"{file}: a JSON object", param_hint="--file")
    given: dict[str, Any] = {
        "id": experiment_id,
        "name": name,
        "policy": r.spec_or_name(policy, "--policy"),
        "arms": None if not arm else [r.spec_or_name(a, "--arm") for a in arm],
        "reward": r.spec_or_name(reward, "--reward"),
        "context": None
        if context is None
        else [f.strip() for f in context.split(",") if f.strip()],
        "stopping": r.json_object(stopping, "--stopping"),
        "snapshot_interval": snapshot_interval,
    }
    spec.update({k: v for k, v in given.items() if v is not None})
    known = set(given)
    if set(spec) - known:
        raise typer.BadParameter(
            f"unknown fields {sorted(set(spec) - known)} (known: {sorted(known)})",
            param_hint="--file",
        )
    with r.connect(url, api_key, timeout) as client:
        e = client.create_experiment(
            spec.get("id"),
            policy=spec.get("policy"),
            arms=spec.get("arms"),
            name=spec.get("name"),
            reward=spec.get("reward"),
            context=spec.get("context"),
            stopping=spec.get("stopping"),
            snapshot_interval=spec.get("snapshot_interval"),
        )
    r.output(e, as_json, lambda: _show(e))


@experiments.command("list", epilog=r.EXIT_CODES_HELP)
def list_(
    url: r.Url = r.DEFAULT_URL,
    api_key: r.ApiKey = "",
    timeout: r.Timeout = 10.0,
    as_json: r.AsJson = False,
) -> None:
    """List the experiments (--json: a JSON array of experiments)."""
    with r.connect(url, api_key, timeout) as client:
        found = client.list_experiments()
    rows = [
        (
            e.id,
            e.name,
            e.status,
            e.policy.get("type"),
            sum(1 for a in e.arms if a.enabled),
            len([a for a in e.arms if not a.deleted]),
            e.created_at,
        )
        for e in found
    ]
    columns = ("id", "name", "status", "policy", "enabled", "arms", "created")
    r.output(found, as_json, lambda: r.print_table(r.table(None, columns, rows)))


@experiments.command("show", epilog=r.EXIT_CODES_HELP)
def show(
    experiment_id: ExperimentId,
    url: r.Url = r.DEFAULT_URL,
    api_key: r.ApiKey = "",
    timeout: r.Timeout = 10.0,
    as_json: r.AsJson = False,
) -> None:
    """Show an experiment: its settings and arms."""
    with r.connect(url, api_key, timeout) as client:
        e = client.get_experiment(experiment_id)
    r.output(e, as_json, lambda: _show(e))


def _stats_table(s: Stats, c: Conclusion) -> None:
    posterior = {a.arm_id: a for a in c.arms}
    rows = []
    for a in s.arms:
        p = posterior.get(a.arm_id)
        ci = None if a.ci95 is None else f"[{r.cell(a.ci95[0])}, {r.cell(a.ci95[1])}]"
        rows.append(
            (
                a.arm_id,
                "deleted" if a.deleted else ("yes" if a.enabled else "no"),
                a.decisions,
                a.rewards,
                a.reward_sum,
                a.mean_reward,
                ci,
                None if p is None else p.prob_best,
                a.pending,
            )
        )
    columns = ("arm", "enabled", "decisions", "rewards", "sum", "mean", "95% CI", "P(best)")
    title = f"{s.experiment_id} ({s.status}): {s.total_decisions} decisions"
    r.print_table(r.table(title, (*columns, "pending"), rows))
    gain = s.reward_gain_vs_equal_split
    if gain.estimate is not None:
        typer.echo(f"reward gained over an equal split: {r.cell(gain.estimate)} ({gain.method})")
    if c.concluded is not None:
        typer.echo(f"concluded: {c.concluded.get('winner')} ({c.concluded.get('reason')})")
    elif c.met:
        typer.echo(f"stopping rule met: {c.winner} wins ({c.reason})")
    else:
        typer.echo(f"stopping rule not met: {c.reason}")


@experiments.command("stats", epilog=r.EXIT_CODES_HELP)
def stats(
    experiment_id: ExperimentId,
    url: r.Url = r.DEFAULT_URL,
    api_key: r.ApiKey = "",
    timeout: r.Timeout = 10.0,
    as_json: r.AsJson = False,
) -> None:
    """Per-arm statistics, P(best) and the stopping rule's verdict (--json: the answer of
    GET /v1/experiments/ID/stats)."""
    with r.connect(url, api_key, timeout) as client:
        s = client.stats(experiment_id)
        if as_json:
            r.print_json(s)
            return
        c = client.conclusion(experiment_id)
    _stats_table(s, c)


@experiments.command("pause", epilog=r.EXIT_CODES_HELP)
def pause(
    experiment_id: ExperimentId,
    url: r.Url = r.DEFAULT_URL,
    api_key: r.ApiKey = "",
    timeout: r.Timeout = 10.0,
    as_json: r.AsJson = False,
) -> None:
    """Pause: decisions then serve the best estimate without exploring; rewards still count."""
    with r.connect(url, api_key, timeout) as client:
        e = client.update_experiment(experiment_id, status="paused")
    _changed(e, "paused", as_json)


@experiments.command("resume", epilog=r.EXIT_CODES_HELP)
def resume(
    experiment_id: ExperimentId,
    url: r.Url = r.DEFAULT_URL,
    api_key: r.ApiKey = "",
    timeout: r.Timeout = 10.0,
    as_json: r.AsJson = False,
) -> None:
    """Resume (status running); a concluded experiment is re-opened, its conclusion cleared."""
    with r.connect(url, api_key, timeout) as client:
        e = client.update_experiment(experiment_id, status="running")
    _changed(e, "resumed", as_json)


@experiments.command("conclude", epilog=r.EXIT_CODES_HELP)
def conclude(
    experiment_id: ExperimentId,
    winner: Annotated[
        str | None,
        typer.Option(
            "--winner",
            "-w",
            help="The winning arm (default: the arm with the largest P(best)).",
            show_default=False,
        ),
    ] = None,
    url: r.Url = r.DEFAULT_URL,
    api_key: r.ApiKey = "",
    timeout: r.Timeout = 10.0,
    as_json: r.AsJson = False,
) -> None:
    """Conclude now, by hand, whatever the stopping rule says (status concluded; with the
    rule's after_conclusion, by default serve_winner, decisions then serve the winner)."""
    with r.connect(url, api_key, timeout) as client:
        e = client.conclude(experiment_id, winner)
    won = (e.conclusion or {}).get("winner")
    r.output(e, as_json, lambda: typer.echo(f"experiment {e.id} concluded: {won} wins"))


@experiments.command("delete", epilog=r.EXIT_CODES_HELP)
def delete(
    experiment_id: ExperimentId,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    url: r.Url = r.DEFAULT_URL,
    api_key: r.ApiKey = "",
    timeout: r.Timeout = 10.0,
    as_json: r.AsJson = False,
) -> None:
    """Delete an experiment with its arms, statistics and history (asks first unless --yes)."""
    if not yes and not typer.confirm(
        f"Delete experiment {experiment_id!r} and its whole history?", err=True
    ):
        r.fail("not deleted", r.ERROR)
    with r.connect(url, api_key, timeout) as client:
        client.delete_experiment(experiment_id)
    r.output(
        {"deleted": experiment_id},
        as_json,
        lambda: typer.echo(f"experiment {experiment_id} deleted"),
    )
