"""`newsletter demo`: everything end to end on the embedded defaults."""

from __future__ import annotations

from pathlib import Path

import click

from newsletter import demo as demo_service
from newsletter.cli.base import State, cli, console, pass_state
from newsletter.config import Settings


@cli.command(epilog="Example: newsletter demo --output demo-output")
@click.option(
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo-output"),
    show_default=True,
    help="Work folder: the demo database and every received message (emptied first).",
)
@pass_state
def demo(state: State, output: Path) -> None:
    """Ingest sample papers, add three readers, send a real edition to a local SMTP catcher.

    Needs no network and no setup: a fresh SQLite database and an SMTP capture
    server on a free loopback port, both inside the output folder and this process.
    """
    settings = state.settings if state.config_path.exists() else Settings()
    result = demo_service.run(settings, output.resolve(), echo=console.print)
    console.print()
    for reader, titles in result.picks.items():
        console.print(f"[bold]{reader}[/] got {len(titles)} paper(s):")
        for title in titles:
            console.print(f"  • {title}", markup=False)
    console.print()
    console.print(f"Messages (.eml and .html): {result.folder / 'mail'}")
    for path in result.messages:
        console.print(f"  open {path}", markup=False)
    console.print(f"Database: {result.database}")
