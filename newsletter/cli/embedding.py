"""The progress bar of embedding new papers and interests, for the commands that plan or
match. It goes to stderr (stdout stays for what a command prints: JSON, a message's text)
and shows only once there is something to embed."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from newsletter.cli.base import err_console
from newsletter.planning.embeddings import EmbedProgress

DESCRIPTION = "Embedding new papers and interests"


class _Rate(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:.1f}/s")


@contextmanager
def embedding_bar() -> Iterator[EmbedProgress]:
    """A (done, total) callback drawing the bar; the bar ends when the last text is in."""
    bar = Progress(
        TextColumn(DESCRIPTION),
        BarColumn(),
        MofNCompleteColumn(),
        _Rate(),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
    )
    task: TaskID | None = None

    def update(done: int, total: int) -> None:
        nonlocal task
        if task is None:
            task = bar.add_task(DESCRIPTION, total=total)
            bar.start()
        bar.update(task, completed=done, total=total)
        if done >= total:
            bar.stop()  # before a sending bar or the command's own output

    try:
        yield update
    finally:
        bar.stop()
