"""`newsletter demo`: everything end to end on the embedded defaults."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

from newsletter import demo as demo_service
from newsletter.cli.base import State, cli, console, pass_state, plural
from newsletter.config import Settings

# The command that opens a file in the desktop's default application.
OPENER = {"darwin": "open", "win32": "start"}.get(sys.platform, "xdg-open")


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
    """Ingest this week's papers, add three readers, send a real edition to a local SMTP catcher.

    The papers are a recorded Hugging Face daily list, re-dated into this week's edition.
    Needs no network and no setup: a fresh SQLite database and an SMTP capture
    server on a free loopback port, both inside the output folder and this process.
    """
    settings = state.settings if state.config_path.exists() else Settings()
    result = demo_service.run(settings, output.resolve(), echo=console.print)
    console.print()
    for reader, titles in result.picks.items():
        console.print(f"[bold]{reader}[/] got {plural(len(titles), 'paper')}:")
        for title in titles:
            console.print(f"  • {title}", markup=False)
    console.print()
    console.print(f"Messages (.eml and .html) are in {result.folder / 'mail'}; open one with:")
    for path in result.messages:
        console.print(f"  {OPENER} {shlex.quote(str(path))}", markup=False)
    console.print(f"Database: {result.database}")
    console.print("To follow the links in the emails, serve the demo database and keep it running:")
    config = shlex.quote(str(result.config))
    console.print(f"  {_program()} --config {config} serve --no-scheduler", markup=False)


def _program() -> str:
    """How this process was started, so the printed command works as pasted
    (`make demo` runs .venv/bin/newsletter, which may not be on the PATH)."""
    started = Path(sys.argv[0])
    if started.name == "newsletter":
        return shlex.quote(sys.argv[0])
    return f"{shlex.quote(sys.executable)} -m newsletter"
