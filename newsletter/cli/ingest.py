"""The `ingest` command: load papers from files or URLs, with progress and a summary."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from newsletter import ingest as ingest_service
from newsletter.cli.base import State, cli, console, pass_state, plural
from newsletter.sources.registry import FORMATS

_EPILOG = """\b
Example: newsletter ingest papers.jsonl daily.json
  newsletter ingest                      # the sources listed in config.yaml
  newsletter ingest --format arxiv 'https://export.arxiv.org/api/query?search_query=cat:cs.CL'
"""


@cli.command(epilog=_EPILOG)
@click.argument("sources", nargs=-1, metavar="[SOURCE]...")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="auto",
    show_default=True,
    help="Format of every SOURCE; auto guesses from the name and the content.",
)
@pass_state
def ingest(state: State, sources: tuple[str, ...], fmt: str) -> None:
    """Load papers from files or http(s) URLs (none given: the sources in config.yaml).

    Papers already stored are updated when a source has newer data (upvotes, a new
    version); running the same ingest twice adds nothing. A malformed source stops
    the whole run and nothing is written.
    """
    context = state.context()
    with _progress_bar() as on_progress:
        report = ingest_service.ingest(context, sources, fmt, progress=on_progress)
    _print_report(report)


@contextmanager
def _progress_bar() -> Iterator[ingest_service.ProgressCallback]:
    """A Rich bar over the sources (shown only on a terminal; silent in pipes and tests)."""
    if not console.is_terminal:
        yield lambda _event: None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("Reading sources", total=None)

        def update(event: ingest_service.Progress) -> None:
            if event.step == "reading":
                bar.update(task, total=event.total, description=f"Reading {event.location}")
            elif event.step == "read":
                bar.update(task, completed=event.done)
            else:
                bar.update(task, description="Storing papers")

        yield update


def _print_report(report: ingest_service.IngestReport) -> None:
    if len(report.sources) > 1:
        table = Table("format", "records", "new", "updated", "unchanged", "skipped")
        table.add_column("source", overflow="fold")  # paths and URLs shown whole
        for s in report.sources:
            counts = (s.records, s.new, s.updated, s.unchanged, len(s.skipped))
            table.add_row(s.format, *(str(n) for n in counts), escape(s.location))
        console.print(table)
    for s in report.sources:
        for skipped in s.skipped:
            console.print(
                f"[yellow]skipped[/] {escape(s.location)} {escape(skipped.where)}: "
                f"{escape(skipped.reason)}",
                soft_wrap=True,
            )
    console.print(
        f"Ingested {plural(sum(s.records for s in report.sources), 'record')} from "
        f"{plural(len(report.sources), 'source')}: {report.new} new, {report.updated} updated, "
        f"{report.unchanged} unchanged, {report.skipped} skipped.",
        soft_wrap=True,
    )
