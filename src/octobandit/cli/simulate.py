"""`octobandit simulate`: policies against simulated environments."""

from __future__ import annotations

from typing import Any

import typer

from octobandit.cli._app import app

ENVIRONMENTS = ("bernoulli", "gaussian", "piecewise", "linear", "logistic")


def _floats(text: str, what: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise typer.BadParameter(f"{what}: comma-separated numbers, got {text!r}") from None


def _environment(
    env: str, means: str | None, arms: int, best: float, gap: float, change_points: str | None,
    sd: float, dim: int, seed: int,
) -> Any:  # fmt: skip
    from octobandit import simulation as sim

    if env == "bernoulli":
        return (
            sim.Bernoulli(_floats(means, "--means"))
            if means
            else sim.Bernoulli.with_gap(arms, best=best, gap=gap)
        )
    if env == "gaussian":
        values = _floats(means, "--means") if means else [best] + [best - gap] * (arms - 1)
        return sim.Gaussian(values, sd=sd)
    if env == "piecewise":
        if not means or not change_points:
            raise typer.BadParameter("piecewise needs --means 'a,b;c,d' and --change-points")
        segments = [_floats(part, "--means") for part in means.split(";")]
        return sim.PiecewiseBernoulli(segments, [int(x) for x in _floats(change_points, "cp")])
    import numpy as np

    theta = np.random.default_rng(seed).normal(0.0, 1.0, size=(arms, dim))
    if env == "linear":
        return sim.LinearContextual(theta.tolist())
    return sim.LogisticContextual(theta.tolist())


@app.command()
def simulate(
    policy: list[str] = typer.Option(
        ["thompson"],
        "--policy",
        "-p",
        help='A policy type or its JSON spec, e.g. \'{"type": "epsilon_greedy", '
        '"epsilon": 0.1}\'. Repeat to compare policies. Each is labelled by its type and '
        'the parameters given, e.g. epsilon_greedy(epsilon=0.1), or by a "label" in the '
        "spec; a repeated label gets #2, #3.",
    ),
    env: str = typer.Option("bernoulli", help=f"Environment: {', '.join(ENVIRONMENTS)}."),
    means: str | None = typer.Option(
        None,
        help="Arm means, comma-separated; for piecewise, segments separated by ';'.",
    ),
    arms: int = typer.Option(10, min=1, help="Number of arms (when --means is not given)."),
    best: float = typer.Option(0.5, help="Best arm's mean (when --means is not given)."),
    gap: float = typer.Option(0.1, help="Gap between the best arm and the others."),
    change_points: str | None = typer.Option(
        None, help="piecewise: steps at which the means switch, comma-separated."
    ),
    sd: float = typer.Option(1.0, help="gaussian: reward standard deviation."),
    dim: int = typer.Option(3, min=1, help="linear/logistic: context dimension."),
    horizon: int = typer.Option(10_000, min=1, help="Steps per replication."),
    replications: int = typer.Option(200, min=1, help="Independent replications."),
    seed: int = typer.Option(0, help="Random seed (fixes the whole run)."),
    out: str = typer.Option(
        "simulation",
        help="Output name: writes OUT.csv, OUT.json and OUT.png, appending the extension to "
        "the whole name (out/run0.1 gives out/run0.1.csv; a trailing .csv, .json or .png is "
        "dropped first). Refuses to overwrite existing files unless --force.",
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite existing output files."),
    plot: bool = typer.Option(
        True, help="Write the PNG plot (needs matplotlib: pip install 'octobandit[plot]')."
    ),
    feedback: str = typer.Option(
        "immediate",
        help="When rewards are counted: immediate; window (attribution window of --window "
        "steps, as the service does: every decision counted once when its window closes, "
        "as 1 if its conversion arrived inside it, else 0; nothing counted while it is "
        "open); window_eager (for comparison, not what the service does: conversions "
        "counted as they arrive, 0s when windows close); failure_until_reward (every "
        "decision counted as 0 at once, its conversion added when it arrives); "
        "positives_only (only conversions counted). The delayed modes need a binary "
        "environment and a stateless policy; see docs/delayed-feedback.md.",
    ),
    window: int | None = typer.Option(
        None,
        min=1,
        help="--feedback window or window_eager: the attribution window, in steps (decisions).",
    ),
    delay_mean: float | None = typer.Option(
        None,
        help="Conversions (rewards of 1) arrive exponentially distributed steps after their "
        "decision, with this mean (binary environments; used by the delayed --feedback "
        "modes, ignored by immediate). Default: no delay.",
    ),
) -> None:
    """Simulate policies on a synthetic environment: regret and best-arm share with 95% bands."""
    import csv
    import io
    import json
    from pathlib import Path

    from rich.progress import Progress

    from octobandit.errors import OctobanditError
    from octobandit.simulation import plot_results, policy_labels
    from octobandit.simulation import simulate as run

    if env not in ENVIRONMENTS:
        raise typer.BadParameter(f"one of {', '.join(ENVIRONMENTS)}", param_hint="--env")
    try:
        environment = _environment(env, means, arms, best, gap, change_points, sd, dim, seed)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    from octobandit.simulation import FEEDBACK, WINDOWED

    if feedback not in FEEDBACK:
        raise typer.BadParameter(f"one of {', '.join(FEEDBACK)}", param_hint="--feedback")
    if (feedback in WINDOWED) != (window is not None):
        raise typer.BadParameter(
            "give --window with --feedback window or window_eager, and only then",
            param_hint="--window",
        )
    if delay_mean is not None:
        import dataclasses

        from octobandit.simulation import Exponential

        if environment.reward != "binary":
            raise typer.BadParameter(
                f"{env} has continuous rewards: delays are for binary environments",
                param_hint="--delay-mean",
            )
        try:
            environment = dataclasses.replace(environment, delay=Exponential(delay_mean))
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--delay-mean") from None
    specs = []
    for text in policy:
        try:
            spec = json.loads(text) if text.lstrip().startswith("{") else {"type": text}
        except json.JSONDecodeError as exc:
            raise typer.BadParameter(f"{text!r}: {exc}", param_hint="--policy") from None
        if not isinstance(spec, dict):
            raise typer.BadParameter(f"{text!r}: not a JSON object", param_hint="--policy")
        specs.append(spec)
    labels = policy_labels(specs)
    if out.endswith(("/", "\\")) or Path(out).is_dir():
        raise typer.BadParameter(f"{out!r} is a directory: name the files", param_hint="--out")
    stem = out[: -len(ext)] if (ext := Path(out).suffix) in (".csv", ".json", ".png") else out
    paths = {kind: Path(f"{stem}.{kind}") for kind in ("csv", "json", "png")}
    if not plot:
        del paths["png"]
    existing = [str(p) for p in paths.values() if p.exists()]
    if existing and not force:
        typer.echo(
            f"error: {', '.join(existing)} already exist: refusing to overwrite "
            "(pass --force, or another --out)",
            err=True,
        )
        raise typer.Exit(1)
    results = []
    with Progress(transient=True) as bar:
        for spec, label in zip(specs, labels, strict=True):
            spec = {k: v for k, v in spec.items() if k != "label"}
            task = bar.add_task(label, total=horizon)

            def advance(done: int, total: int, task: Any = task) -> None:
                bar.update(task, completed=done)

            try:
                result = run(
                    spec,
                    environment,
                    horizon,
                    replications,
                    seed,
                    progress=advance,
                    label=label,
                    feedback=feedback,
                    window=window,
                )
            except (OctobanditError, ValueError) as exc:
                raise typer.BadParameter(str(exc), param_hint="--policy") from None
            results.append(result)
    paths["csv"].parent.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    table = csv.writer(buf, lineterminator="\n")
    for r in results:  # one table, a policy column in front (labels quoted when needed)
        header, *lines = csv.reader(io.StringIO(r.to_csv()))
        if buf.tell() == 0:
            table.writerow(["policy", *header])
        table.writerows([r.label, *line] for line in lines)
    paths["csv"].write_text(buf.getvalue())
    paths["json"].write_text(json.dumps([json.loads(r.to_json()) for r in results], indent=1))
    written = [paths["csv"], paths["json"]]
    width = max(24, *(len(r.label) for r in results))
    for r in results:
        final = r.final_regret
        typer.echo(
            f"{r.label:<{width}} regret at T={horizon}: {final['mean']:.1f} "
            f"± {1.96 * final['se']:.1f} (95%), best-arm share {r.best_arm_share[-1]:.3f}"
        )
    if plot:
        try:
            plot_results(results, paths["png"])
            written.append(paths["png"])
        except ImportError as exc:
            typer.echo(f"skipped the PNG plot: {exc}", err=True)
    typer.echo("wrote " + ", ".join(map(str, written)))
