"""`newsletter admin-password`: hash a password for the `admins:` list of the config."""

from __future__ import annotations

import getpass
import sys

import click
from argon2 import PasswordHasher

from newsletter.cli.base import cli

MIN_LENGTH = 12  # the login is rate limited, but a short password still falls to a list


@cli.command(
    "admin-password",
    epilog="Example: newsletter admin-password < password.txt\n\n"
    "Then in config.yaml:\n\n"
    "  admins:\n\n"
    "    - {email: you@example.org, password_hash: '$argon2id$...'}",
)
def admin_password() -> None:
    """Read a password on stdin and print its argon2 hash for `admins:` in the config.

    From a terminal the password is asked for twice without echo; from a pipe the
    first line is read.
    """
    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if password != getpass.getpass("Again: "):
            raise click.ClickException("the two passwords differ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise click.ClickException("no password given on stdin")
    if len(password) < MIN_LENGTH:
        raise click.ClickException(f"the password is too short (at least {MIN_LENGTH} characters)")
    click.echo(PasswordHasher().hash(password))
