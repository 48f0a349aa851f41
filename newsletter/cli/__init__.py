"""Entry point of the `newsletter` console script."""

from __future__ import annotations

import os
import sys

import click

from newsletter.cli.base import cli, err_console
from newsletter.errors import NewsletterError

__all__ = ["cli", "main"]


def main(argv: list[str] | None = None) -> None:
    try:
        # Without standalone mode click returns a command's `Exit` code instead of
        # exiting; it must still become the process's exit status.
        code = cli.main(args=argv, prog_name="newsletter", standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        err_console.print("Aborted.")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except NewsletterError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        err_console.print("Interrupted.")
        sys.exit(130)
    except Exception as exc:  # the last guard: a bug still gets one line, not a traceback
        if os.environ.get("NEWSLETTER_DEBUG"):
            raise
        _fail(f"internal error: {type(exc).__name__}: {exc} (set NEWSLETTER_DEBUG=1 for details)")


def _fail(message: str) -> None:
    err_console.print(f"Error: {message}", markup=False, soft_wrap=True)
    sys.exit(1)
