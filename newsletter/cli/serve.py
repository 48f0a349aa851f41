"""`newsletter serve`: the web app under uvicorn, plus the weekly scheduler."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Iterator

import click
import uvicorn

from newsletter.cli.base import State, cli, console, pass_state, plural
from newsletter.readers import subscriptions
from newsletter.runtime import Runtime


def start_scheduler(context: Runtime) -> Callable[[], None] | None:
    """Start the weekly scheduler in the background; returns how to stop it.

    Several `serve` processes may run: only the one holding the scheduler lease runs
    the jobs (see newsletter.scheduler).
    """
    from newsletter.scheduler import start_in_background

    return start_in_background(context)


@cli.command(epilog="Example: newsletter serve --host 0.0.0.0 --port 8000")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", default=8000, show_default=True, type=click.IntRange(1, 65535), help="TCP port."
)
@click.option(
    "--no-scheduler", is_flag=True, help="Serve the web app only, without the weekly job."
)
@pass_state
def serve(state: State, host: str, port: int, no_scheduler: bool) -> None:
    """Run the subscriber web app (and the weekly scheduler unless --no-scheduler)."""
    from newsletter.web import create_app

    context = state.context()
    purged = subscriptions.purge_pending(context)
    app = create_app(context)
    stop = None if no_scheduler else start_scheduler(context)
    console.print(f"Serving {context.settings.site.name} on http://{host}:{port}/", markup=False)
    if purged:
        console.print(f"Purged {plural(purged, 'expired pending subscription')}.")
    try:
        proxies = list(context.settings.web.trusted_proxies)
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="info",
            server_header=False,
            # uvicorn trusts X-Forwarded-* from 127.0.0.1 unless told otherwise, which
            # lets any local client (or a proxy that passes the header on) choose the
            # address the per-IP limit counts.
            proxy_headers=bool(proxies),
            forwarded_allow_ips=proxies or None,
        )
        _Server(config).run()
    finally:
        if stop is not None:
            stop()


class _Server(uvicorn.Server):
    """uvicorn's graceful stop on SIGTERM or Ctrl-C, then a normal return.

    uvicorn raises the signal again once it has stopped, which would end the process
    before the scheduler is stopped and its lease handed to a standby.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        stops = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in stops}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
