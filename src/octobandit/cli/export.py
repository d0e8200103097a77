"""`octobandit export`: an experiment's event log to a file."""

from __future__ import annotations

import os

import typer

from octobandit.cli._app import app


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
