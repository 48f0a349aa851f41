"""`newsletter inbound`: the SMTP/LMTP listener for bounces, complaints and
List-Unsubscribe mail."""

from __future__ import annotations

import signal
import threading
from types import FrameType

import click

from newsletter.cli.base import State, cli, console, pass_state


@cli.command(
    epilog="""\b
Examples:
  newsletter inbound                      # SMTP on 127.0.0.1:2525
  newsletter inbound --port 2526 --lmtp   # LMTP, for a Postfix lmtp: transport
\b
Point the MTA's transport for bounces@ and unsubscribe@ of the bounce domain here,
e.g. Postfix: `bounces@papers.example.org smtp:[127.0.0.1]:2525`."""
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", default=2525, show_default=True, type=click.IntRange(0, 65535), help="TCP port."
)
@click.option("--lmtp", is_flag=True, help="Speak LMTP (RFC 2033) instead of SMTP.")
@pass_state
def inbound(state: State, host: str, port: int, lmtp: bool) -> None:
    """Receive bounces (DSN), spam complaints (ARF) and List-Unsubscribe mail.

    Hard bounces count toward delivery.bounce_after, complaints and unsubscribe mail
    unsubscribe the reader at once; anything else is stored for the admin. Prints one
    line per message and runs until Ctrl-C or SIGTERM.
    """
    from newsletter.returns.server import InboundServer

    context = state.context()
    stop = threading.Event()

    def finish(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, finish) for sig in (signal.SIGINT, signal.SIGTERM)}
    server = InboundServer(
        context, host, port, lmtp=lmtp, report=lambda line: console.print(line, markup=False)
    )
    try:
        server.serve(stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    console.print("Stopped.")
