"""Delivery commands: send-now, worker, preview."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from types import FrameType

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from newsletter.cli.base import State, cli, console, pass_state, plural
from newsletter.cli.embedding import embedding_bar
from newsletter.delivery import dispatch
from newsletter.delivery import drain as drain_mod
from newsletter.delivery.outcomes import Counters
from newsletter.errors import NothingToSend, RelayUnavailable


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """SIGTERM/SIGINT set an event: in-flight messages finish, the rest is released."""
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for number, old in previous.items():
            signal.signal(number, old)


def summary(counters: Counters) -> str:
    return (
        f"sent {counters.sent}, failed {counters.failed}, skipped {counters.skipped}, "
        f"retried {counters.retried} in {counters.duration:.1f}s "
        f"({counters.rate:.1f} messages/second)"
    )


WORKERS = click.option(
    "--workers",
    type=click.IntRange(1, 16),
    default=1,
    show_default=True,
    help="Processes that compose messages; claiming, sending and recording stay in this one.",
)


@cli.command("send-now", epilog="Example: newsletter send-now --dry-run")
@click.option("--dry-run", is_flag=True, help="Plan and render, but send and record nothing.")
@click.option("--to", "email", metavar="EMAIL", help="Only this subscriber.")
@WORKERS
@pass_state
def send_now(state: State, dry_run: bool, email: str | None, workers: int) -> None:
    """Plan this week's edition (once) and deliver it now, with a progress bar.

    Re-running never sends a subscriber the same edition twice; a paused edition
    is resumed.
    """
    context = state.context()
    if dry_run:
        with embedding_bar() as embedding:
            result = dispatch.send_now(context, email=email, dry_run=True, embedding=embedding)
        _dry_run_report(result)
        return
    progress = _progress()
    task = progress.add_task("Sending", total=None)

    def planned(total: int) -> None:  # the bar shows once there is something to send
        progress.update(task, total=total)
        progress.start()

    with stop_on_signals() as stop, embedding_bar() as embedding:
        try:
            result = dispatch.send_now(
                context,
                email=email,
                workers=workers,
                stop=stop,
                on_planned=planned,
                progress=lambda c: progress.update(
                    task, completed=c.done, description=c.waiting or "Sending"
                ),
                embedding=embedding,
            )
        finally:
            progress.stop()
    _nothing_to_send(result)
    counters = result.counters
    if result.resumed:
        console.print(f"Resumed the paused edition {result.edition_key}.")
    new = plural(result.planned, "new delivery", "new deliveries")
    console.print(f"Edition {result.edition_key}: planned {new}; " + summary(counters) + ".")
    if counters.paused_reason:
        console.print(f"[red]Edition paused:[/] {counters.paused_reason}", markup=True)
        raise click.exceptions.Exit(1)
    if stop.is_set():
        console.print("Stopped; unsent deliveries were released for the next run.")
        raise click.exceptions.Exit(130)


def _dry_run_report(result: dispatch.SendNowResult) -> None:
    sizes = sorted(result.dry_run_bytes)
    median = sizes[len(sizes) // 2] if sizes else 0
    if sizes:
        console.print(
            f"Dry run of edition {result.edition_key}: {plural(len(sizes), 'message')} "
            f"would be sent (median size {median / 1024:.1f} KB); nothing was sent or recorded."
        )
    _nothing_to_send(result)


def _nothing_to_send(result: dispatch.SendNowResult) -> None:
    """Say why a run had nothing to send: already complete (fine) or the one reason."""
    outlook = result.outlook
    if outlook.complete:
        console.print(outlook.complete[0].upper() + outlook.complete[1:] + ".")
        raise click.exceptions.Exit(0)
    if outlook.nothing:
        raise NothingToSend(f"nothing to send in edition {result.edition_key}: {outlook.nothing}")


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


@cli.command(epilog="Example: newsletter worker --loop")
@click.option("--loop", is_flag=True, help="Keep polling for due deliveries until stopped.")
@click.option("--batch", type=click.IntRange(1, 10_000), help="Deliveries claimed at a time.")
@WORKERS
@pass_state
def worker(state: State, loop: bool, batch: int | None, workers: int) -> None:
    """Send due deliveries of every edition; several workers share the work.

    SIGTERM or Ctrl-C finishes the messages in flight and releases the rest.
    """
    context = state.context()
    processes = workers if workers > 1 else 0
    options = drain_mod.DrainOptions(loop=loop, batch_size=batch, processes=processes)
    with stop_on_signals() as stop:
        counters = drain_mod.drain(context, options, stop=stop)
    console.print("Worker: " + summary(counters) + ".")
    if counters.relay_error:  # its deliveries wait, untouched, for the next worker
        raise RelayUnavailable(f"{counters.relay_error}; the worker stopped")


@cli.command(epilog="Example: newsletter preview ada@example.org --html digest.html")
@click.argument("email")
@click.option(
    "--html",
    "html_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the HTML part to this file.",
)
@click.option("--text", "show_text", is_flag=True, help="Print the plain-text part.")
@click.option(
    "--eml",
    "eml_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the whole message (.eml) to this file.",
)
@pass_state
def preview(
    state: State, email: str, html_file: Path | None, show_text: bool, eml_file: Path | None
) -> None:
    """Show exactly what send-now would send this subscriber now, without dispatch."""
    context = state.context()
    with embedding_bar() as embedding:
        found = dispatch.preview(context, email, embedding=embedding)
    parsed = message_from_bytes(found.message.data, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    if eml_file is not None:
        eml_file.write_bytes(found.message.data)
    if html_file is not None:
        html_file.write_text(_part(parsed, "html"), encoding="utf-8")
    if show_text:
        click.echo(_part(parsed, "plain"))
    if html_file or eml_file or show_text:
        return
    console.print(f"Edition {found.edition_key} to {found.message.recipient} ({found.status})")
    console.print(f"Subject: {parsed['Subject']}", markup=False)
    if not found.items:
        console.print("A quiet-week note: no paper matched this week.")
    for number, item in enumerate(found.items, start=1):
        console.print(f"{number:2d}. {item.paper.title}  [{item.reason}]", markup=False)


def _part(message: EmailMessage, subtype: str) -> str:
    body = message.get_body(preferencelist=(subtype,))
    return "" if body is None else str(body.get_content())  # type: ignore[attr-defined]
