"""The ``octobandit`` command line."""

from __future__ import annotations

import os
from typing import Any

import typer

import octobandit

app = typer.Typer(
    help="octobandit: adaptive experiments (multi-armed bandits) in production.",
    no_args_is_help=True,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(octobandit.__version__)
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """octobandit: adaptive experiments (multi-armed bandits) in production."""


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", envvar="OCTOBANDIT_HOST", help="Address to listen on."),
    port: int = typer.Option(8000, envvar="OCTOBANDIT_PORT", help="Port to listen on."),
    store: str = typer.Option(
        "octobandit.db",
        "--store",
        "--db",
        envvar=["OCTOBANDIT_STORE", "OCTOBANDIT_DB"],
        help="Where the data lives: an SQLite file (created if absent; also sqlite:///path) "
        "or a PostgreSQL URL postgresql://user@host:5432/db (needs the 'postgres' extra). "
        "--db and OCTOBANDIT_DB are older names of --store and OCTOBANDIT_STORE.",
    ),
    state: str = typer.Option(
        "",
        "--state",
        envvar="OCTOBANDIT_STATE",
        help="Optional Redis for the per-arm statistics and sticky assignments, shared by "
        "replicas: redis://host:6379/0, rediss://… (TLS) or redis+cluster://node:7000 (a Redis "
        "Cluster); ?prefix=NAME sets the key prefix. Needs a PostgreSQL --store and the "
        "'redis' extra; rebuilt from the store's event log whenever Redis lost writes.",
    ),
    workers: int = typer.Option(
        1, min=1, envvar="OCTOBANDIT_WORKERS",
        help="HTTP worker processes (all served by one engine process).",
    ),
    synchronous: str = typer.Option(
        "NORMAL",
        envvar="OCTOBANDIT_SQLITE_SYNCHRONOUS",
        help="SQLite only: NORMAL survives a process crash, FULL also power loss.",
    ),
    log_level: str = typer.Option("info", envvar="OCTOBANDIT_LOG_LEVEL", help="Log level."),
    allowed_hosts: str = typer.Option(
        "",
        envvar="OCTOBANDIT_ALLOWED_HOSTS",
        help="Comma-separated Host names accepted besides localhost, 127.0.0.1 and [::1] "
        "when bound to a loopback address ('*': any). Others get 403 (DNS rebinding).",
    ),
    header_timeout: float = typer.Option(
        10.0, min=0, envvar="OCTOBANDIT_HEADER_TIMEOUT",
        help="Seconds for a request's headers to arrive (0: none); then 408 and close.",
    ),
    body_timeout: float = typer.Option(
        30.0, min=0, envvar="OCTOBANDIT_BODY_TIMEOUT",
        help="Seconds for a request's body to arrive (0: none); then 408 and close.",
    ),
    keep_alive_timeout: float = typer.Option(
        5.0, min=0.1, envvar="OCTOBANDIT_KEEP_ALIVE_TIMEOUT",
        help="Seconds an idle keep-alive connection stays open.",
    ),
    max_connections: int = typer.Option(
        0, min=0, envvar="OCTOBANDIT_MAX_CONNECTIONS",
        help="Open connections per worker; beyond it the longest-idle connection is closed, or "
        "if all are busy the request gets 503 (0: the open-file limit minus 64, 16 to 1024).",
    ),
) -> None:  # fmt: skip
    """Run the HTTP service (REST API at /v1, interactive docs at /docs) and its engine process."""
    import uvicorn

    from octobandit.api.guards import is_loopback_address
    from octobandit.api.protocol import PROTOCOL

    synchronous = synchronous.upper()
    if synchronous not in {"NORMAL", "FULL", "EXTRA"}:
        raise typer.BadParameter("must be NORMAL, FULL or EXTRA", param_hint="--synchronous")
    # the worker processes read their settings from the environment
    os.environ.update(
        OCTOBANDIT_STORE=store,
        OCTOBANDIT_DB=store,
        OCTOBANDIT_STATE=state,
        OCTOBANDIT_SQLITE_SYNCHRONOUS=synchronous,
        OCTOBANDIT_LOG_LEVEL=log_level,
        OCTOBANDIT_HOST=host,
        OCTOBANDIT_PORT=str(port),
        OCTOBANDIT_ALLOWED_HOSTS=allowed_hosts,
        OCTOBANDIT_HEADER_TIMEOUT=str(header_timeout),
        OCTOBANDIT_BODY_TIMEOUT=str(body_timeout),
        OCTOBANDIT_KEEP_ALIVE_TIMEOUT=str(keep_alive_timeout),
        OCTOBANDIT_MAX_CONNECTIONS=str(max_connections),
    )
    from octobandit.errors import StorageUnusable

    if not is_loopback_address(host):
        typer.echo(
            f"WARNING: listening on {host}, not a loopback address: anyone who can reach it "
            "can read, change and delete every experiment (the API has no authentication yet).",
            err=True,
        )
    from octobandit.engine.process import EngineProcess

    # the engine (policies, storage, group commits, ticks) runs in its own process, which
    # checks the database first; every HTTP worker reaches it over a Unix socket
    try:
        engine = EngineProcess().start()
    except StorageUnusable as exc:
        typer.echo(f"octobandit: {exc.message}", err=True)
        raise typer.Exit(1) from None
    os.environ["OCTOBANDIT_ENGINE_SOCKET"] = engine.socket
    try:
        uvicorn.run(
            "octobandit.api.app:app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level=log_level.lower(),
            access_log=False,
            http=PROTOCOL,
            timeout_keep_alive=keep_alive_timeout,  # type: ignore[arg-type]  # float is fine
        )
    finally:
        engine.stop()


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


@app.command()
def export(
    experiment: str = typer.Argument(..., help="The experiment's id."),
    store: str = typer.Option(
        "",
        "--store",
        "--db",
        help="Read this store directly: an SQLite file or a PostgreSQL URL.",
    ),
    url: str = typer.Option(
        "", "--url", help="Read a running service instead, e.g. http://127.0.0.1:8000."
    ),
    fmt: str = typer.Option(
        "jsonl",
        "--format",
        "-f",
        help="jsonl (one event a line), csv (a header, one event a row), dsjson (Vowpal "
        "Wabbit's decision-service JSON: one decision a line with its outcome as the label) "
        "or parquet (needs --out and the 'parquet' extra).",
    ),
    out: str = typer.Option("-", "--out", "-o", help="Output file ('-': standard output)."),
    kind: list[str] = typer.Option(
        [],
        "--kind",
        help="Only events of this kind (repeat it): decision, reward, default, part, late, "
        "reset, set_stats. dsjson reads decisions and outcomes whatever this says.",
    ),
    since: str = typer.Option("", "--since", help="Events at or after: epoch or ISO 8601."),
    until: str = typer.Option("", "--until", help="Events before: epoch or ISO 8601."),
    page_size: int = typer.Option(
        1000, "--page-size", min=1, max=10_000, help="Events read per page (memory bound)."
    ),
    window: int = typer.Option(
        100_000,
        "--window",
        min=1,
        help="dsjson: decisions held while awaiting their outcome; when full the oldest is "
        "written without a label.",
    ),
) -> None:
    """Export an experiment's event log, streamed page by page (bounded memory)."""
    import contextlib
    import sys

    from octobandit import export as ex
    from octobandit.errors import OctobanditError
    from octobandit.model import OUTCOME_KINDS

    if bool(store) == bool(url):
        raise typer.BadParameter("give exactly one of --store/--db and --url")
    if fmt not in ex.FORMATS:
        raise typer.BadParameter(f"--format: one of {', '.join(ex.FORMATS)}")
    if fmt == "parquet" and out == "-":
        raise typer.BadParameter("--format parquet needs --out FILE")
    if store and "://" not in store and not os.path.exists(store):
        raise typer.BadParameter(f"--db: no such file {store!r}")
    kinds = ["decision", *OUTCOME_KINDS] if fmt == "dsjson" else (kind or None)
    source = ex.http_pages if url else ex.store_pages
    try:
        arms, spec, pages = source(
            url or store,
            experiment,
            page_size=page_size,
            kinds=kinds,
            since=since or None,
            until=until or None,
        )
        with contextlib.ExitStack() as stack:
            sink = (
                sys.stdout
                if out == "-" or fmt == "parquet"
                else stack.enter_context(open(out, "w", encoding="utf-8", newline=""))
            )
            if fmt == "parquet":
                summary = f"{ex.write_parquet(pages, out)} events"
            elif fmt == "jsonl":
                n = ex.write_jsonl(pages, sink)
                summary = f"{n} events"
            elif fmt == "csv":
                n = ex.write_csv(pages, sink)
                summary = f"{n} events"
            else:
                c = ex.write_dsjson(pages, sink, arms, spec, window=window)
                summary = (
                    f"{c.labelled + c.unlabelled} decisions ({c.labelled} labelled, "
                    f"{c.unlabelled} without an outcome, {c.orphans} outcomes skipped)"
                )
    except (OctobanditError, ex.ExportError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"exported {summary}", err=True)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
