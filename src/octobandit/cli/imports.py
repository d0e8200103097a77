"""`octobandit import`: logged bandit feedback into a new experiment (see docs/import.md)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import typer

from octobandit.cli._app import app

if TYPE_CHECKING:
    from octobandit.imports import Row, Summary
    from octobandit.model import ExperimentRecord

#: names an experiment created by ``octobandit import`` starts with (a re-run resumes it)
IMPORT_MARK = "octobandit import"

#: exit statuses
OK, FAILED, SKIPPED_ROWS = 0, 1, 3


@app.command("import")
def import_log(
    experiment: str = typer.Argument(..., help="The experiment to create (or resume) and fill."),
    path: str = typer.Argument(..., help="The file to read ('-': standard input)."),
    store: str = typer.Option(
        ...,
        "--store",
        "--db",
        help="Write this store directly: an SQLite file (created if missing) or a PostgreSQL URL.",
    ),
    state: str = typer.Option(
        "", "--state", help="The store's Redis state store, if it has one (redis://…)."
    ),
    fmt: str = typer.Option(
        "auto",
        "--format",
        "-f",
        help="jsonl or csv (octobandit export's), obd (the Open Bandit Dataset's CSV), dsjson "
        "(Vowpal Wabbit), or auto: guessed from the first line.",
    ),
    policy: str = typer.Option(
        "thompson",
        "--policy",
        help="The new experiment's policy: a type (thompson, ucb1, epsilon_greedy, ...) or a "
        'JSON spec such as \'{"type": "epsilon_greedy", "epsilon": 0.1}\'.',
    ),
    reward: str = typer.Option(
        "binary", "--reward", help="The new experiment's reward type: binary or continuous."
    ),
    features: str = typer.Option(
        "",
        "--context-features",
        help="Declare these context features (comma-separated) on the new experiment; each "
        "decision's context is reduced to them (needed by linear and logistic policies).",
    ),
    position: int = typer.Option(
        0, "--position", min=0, help="obd: import only the rows of this position (0: all)."
    ),
    rekey: bool = typer.Option(
        False,
        "--rekey",
        help="Derive new decision ids from the experiment id and the original ones (to import "
        "a log into the store it came from).",
    ),
    batch_size: int = typer.Option(
        5000,
        "--batch-size",
        min=1,
        max=25_000,
        help="Rows per transaction (memory bound; a failing batch writes nothing).",
    ),
    skip_bad: bool = typer.Option(
        False,
        "--skip-bad",
        help="Leave out rows that cannot be read or are refused, count them and go on "
        "(exit status 3 if any).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Import logged bandit feedback (decisions with propensities, contexts and outcomes)
    into a new experiment, in batches; re-running resumes and adds nothing twice.

    Exit status: 0 imported; 1 failed (a re-run resumes); 2 bad options;
    3 imported, with rows left out by --skip-bad.
    """
    import contextlib
    import json
    import sys
    import time

    from octobandit import imports as im
    from octobandit.engine import Engine
    from octobandit.errors import OctobanditError
    from octobandit.storage import open_store

    spec: object
    try:
        spec = json.loads(policy) if policy.lstrip().startswith("{") else {"type": policy}
    except ValueError:
        raise typer.BadParameter("--policy: not JSON") from None
    if fmt not in (*im.FORMATS, "auto"):
        raise typer.BadParameter(f"--format: one of auto, {', '.join(im.FORMATS)}")
    names = [f.strip() for f in features.split(",") if f.strip()]
    summary = im.Summary(experiment)
    started = time.perf_counter()
    status = OK
    with contextlib.ExitStack() as stack:
        try:
            source = (
                sys.stdin
                if path == "-"
                else stack.enter_context(open(path, encoding="utf-8", newline=""))
            )
        except OSError as exc:
            typer.echo(f"error: {path}: {exc.strerror}", err=True)
            raise typer.Exit(FAILED) from None
        first = source.readline()
        kind = im.guess_format(path, first) if fmt == "auto" else fmt

        def lines() -> Iterator[str]:
            yield first
            yield from source

        try:
            engine = Engine(open_store(store, state=state or None))
            stack.callback(engine.storage.close)
            try:
                record = engine.get_experiment(experiment)
            except OctobanditError as exc:
                if exc.code != "experiment_not_found":
                    raise
                body: dict[str, object] = {
                    "id": experiment,
                    "name": f"{IMPORT_MARK} ({kind})",
                    "policy": spec,
                    "reward": {"type": reward},
                }
                if names:
                    body["context"] = {"features": names}
                engine.create_experiment(body)
                summary.created = True
            else:
                _check_resumable(record, spec, reward, names)
            rows = im.reader(kind, lines(), position=position or None)
            if names:
                rows = _only(rows, names)
            im.run_import(
                engine,
                experiment,
                rows,
                batch_size=batch_size,
                skip_bad=skip_bad,
                rekey=rekey,
                summary=summary,
            )
        except im.BadRow as exc:
            typer.echo(f"error: {path}: {exc}", err=True)
            status = FAILED
        except OctobanditError as exc:
            typer.echo(f"error: {exc.message}", err=True)
            status = FAILED
        if status == FAILED and summary.created and not summary.batches:
            with contextlib.suppress(OctobanditError):  # nothing imported: leave no trace
                engine.delete_experiment(experiment)
            summary.created = False
    summary.seconds = time.perf_counter() - started
    if status == OK and summary.bad_count:
        status = SKIPPED_ROWS
    if as_json:
        typer.echo(json.dumps({**summary.as_dict(), "format": kind, "status": status}))
    else:
        typer.echo(_text(summary, kind), err=True)
    raise typer.Exit(status)


def _check_resumable(record: ExperimentRecord, spec: object, reward: str, names: list[str]) -> None:
    """An existing experiment takes an import only if an import created it, with the same
    reward type, policy type and context features."""
    from octobandit.errors import Conflict

    if not record.name.startswith(IMPORT_MARK):
        raise Conflict(
            f"experiment {record.id!r} exists and was not created by octobandit import: "
            "import into a new experiment",
            code="experiment_exists",
        )
    wanted = spec.get("type") if isinstance(spec, dict) else None
    features = record.options.get("context_features") or []
    if record.reward_type != reward or record.policy.get("type") != wanted or features != names:
        raise Conflict(
            f"experiment {record.id!r} was imported with reward {record.reward_type!r}, policy "
            f"{record.policy.get('type')!r} and context features {features}: give the same "
            "options to resume it",
            code="experiment_exists",
        )


def _only(rows: Iterator[Row], names: list[str]) -> Iterator[Row]:
    """Decisions' object contexts reduced to the declared features."""
    for row in rows:
        d = row.decision
        if d is not None and isinstance(d.context, dict):
            d.context = {k: d.context[k] for k in names if k in d.context}
        yield row


def _text(s: Summary, kind: str) -> str:
    lines = [
        f"imported {s.decisions} decisions and {s.outcomes} outcomes into {s.experiment_id!r}"
        f" ({kind}, {s.lines} lines, {s.batches} batches, {s.seconds:.1f} s"
        + (f", {s.decisions / s.seconds:,.0f} decisions/s)" if s.seconds > 0 else ")"),
    ]
    if s.created:
        lines.append(f"  created the experiment with {len(s.arms_added)} arms")
    elif s.arms_added:
        lines.append(f"  added arms: {', '.join(s.arms_added[:20])}")
    if s.duplicate_decisions or s.duplicate_outcomes:
        lines.append(
            f"  already there (skipped): {s.duplicate_decisions} decisions,"
            f" {s.duplicate_outcomes} outcomes"
        )
    if s.orphans:
        lines.append(f"  outcomes without their decision (skipped): {s.orphans}")
    for why, n in sorted(s.skipped.items()):
        lines.append(f"  left out: {n} × {why}")
    if s.bad_count:
        lines.append(f"  bad rows left out (--skip-bad): {s.bad_count}")
        lines.extend(f"    {m}" for m in s.bad_rows)
    return "\n".join(lines)
