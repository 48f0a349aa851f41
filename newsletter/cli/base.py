"""The `newsletter` command group and what every command shares.

Commands are thin: parse, call one service function, print. Named errors become a
one-line message on stderr and a non-zero exit at the edge (main), never a traceback.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import update_wrapper
from pathlib import Path
from typing import Any, TextIO, TypeVar

import click
from rich.console import Console

from newsletter.config import Settings, load_settings, resolve_path
from newsletter.runtime import Runtime

F = TypeVar("F", bound=Callable[..., Any])

# Output to a pipe or file is never wrapped (rich would wrap at 80 columns there): lines stay
# whole for grep and logs, and tables get the width they need.
PIPE_WIDTH = 240


def _console(stream: TextIO, *, stderr: bool = False) -> Console:
    tty = stream.isatty()
    return Console(
        stderr=stderr, highlight=False, soft_wrap=not tty, width=None if tty else PIPE_WIDTH
    )


console = _console(sys.stdout)
err_console = _console(sys.stderr, stderr=True)


def plural(count: int, singular: str, plural_form: str | None = None) -> str:
    """'1 delivery', '3 deliveries': the count and the word in the right number."""
    word = singular if count == 1 else (plural_form or f"{singular}s")
    return f"{count} {word}"


@dataclass
class State:
    """Lazily loaded so `--help` works without a config file."""

    config_path: Path
    _settings: Settings | None = None
    _context: Runtime | None = field(default=None, repr=False)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config_path)
        return self._settings

    def context(self, require_schema: bool = True) -> Runtime:
        if self._context is None:
            self._context = Runtime(self.settings)
        if require_schema:
            self._context.require_schema()
        return self._context

    def close(self) -> None:
        if self._context is not None:
            self._context.close()


# Each command's module, imported when that command runs (or help lists it): a run of
# send-now never loads the web server, the scheduler, the feed parsers or the demo's
# mail catcher. tests/test_cli_docs.py checks this list against what modules register.
COMMAND_MODULES = {
    "admin-password": "password",
    "init": "admin",
    "subscribe": "admin",
    "feedback": "admin",
    "unsubscribe": "admin",
    "subscribers": "admin",
    "import-subscribers": "admin",
    "send-now": "delivery",
    "worker": "delivery",
    "preview": "delivery",
    "demo": "demo",
    "ingest": "ingest",
    "match": "matching",
    "scheduler": "schedule",
    "status": "schedule",
    "serve": "serve",
    "inbound": "inbound",
}


class LazyGroup(click.Group):
    """A group whose commands are imported on first use, from COMMAND_MODULES."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self.commands) | COMMAND_MODULES.keys())

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = COMMAND_MODULES.get(cmd_name)
        if cmd_name not in self.commands and module is not None:
            importlib.import_module(f"newsletter.cli.{module}")  # registers its commands
        return self.commands.get(cmd_name)


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="Example: newsletter --config config.yaml send-now --dry-run",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Config file [default: $NEWSLETTER_CONFIG, else ./config.yaml].",
)
@click.version_option(package_name="trending-papers", prog_name="newsletter")
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None) -> None:
    """Trending Papers: a weekly, personalized trending-papers newsletter.

    Run `newsletter init`, `newsletter ingest`, add subscribers, then `newsletter
    send-now` (or `newsletter serve` for the web app and the weekly schedule).
    """
    state = State(resolve_path(config_path))
    ctx.obj = state
    ctx.call_on_close(state.close)


def pass_state(function: F) -> F:
    """Hand the command the shared State instead of click's context."""

    @click.pass_context
    def wrapper(ctx: click.Context, *args: Any, **kwargs: Any) -> Any:
        return ctx.invoke(function, ctx.ensure_object(State), *args, **kwargs)

    return update_wrapper(wrapper, function)  # type: ignore[return-value]
