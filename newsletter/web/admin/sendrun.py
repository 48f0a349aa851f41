"""send-now from the dashboard: one run at a time, on a background thread of the
server, with its progress kept for the page to poll.

The run is the same service as `newsletter send-now` (plan once, resume a paused
edition, drain); re-running never mails anyone twice, so a second click after a run
finished is harmless, and a click during one is refused.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any

from newsletter.delivery import dispatch
from newsletter.delivery.outcomes import Counters
from newsletter.errors import NewsletterError
from newsletter.runtime import Runtime
from newsletter.store.models import utcnow

log = logging.getLogger("newsletter.web.admin")

IDLE, PLANNING, SENDING, DONE, FAILED = "idle", "planning", "sending", "done", "failed"


@dataclass(frozen=True)
class RunView:
    state: str = IDLE
    started_by: str = ""
    edition: str = ""
    total: int = 0  # deliveries open when sending started
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    message: str = ""  # how it ended, in a sentence
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def running(self) -> bool:
        return self.state in (PLANNING, SENDING)

    def as_json(self) -> dict[str, Any]:
        values = asdict(self)
        for key in ("started_at", "finished_at"):
            values[key] = values[key].isoformat() if values[key] else None
        return {**values, "running": self.running}


class SendRun:
    def __init__(self, context: Runtime) -> None:
        self.context = context
        self._view = RunView()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.stop = threading.Event()  # set when the server shuts down

    def view(self) -> RunView:
        with self._lock:
            return self._view

    def start(self, admin: str) -> bool:
        """Start a run; False when one is already running."""
        with self._lock:
            if self._view.running:
                return False
            self._view = RunView(PLANNING, admin, started_at=utcnow())
            self._thread = threading.Thread(target=self._run, name="admin-send-now", daemon=True)
            self._thread.start()
        return True

    def close(self, timeout: float = 30.0) -> None:
        """At server shutdown: stop a run between messages; unsent deliveries are
        released for the next run instead of waiting for their claims to expire."""
        self.stop.set()
        self.join(timeout)

    def join(self, timeout: float | None = None) -> None:
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _update(self, **values: Any) -> None:
        with self._lock:
            self._view = replace(self._view, **values)

    def _planned(self, total: int) -> None:
        self._update(state=SENDING, total=total)

    def _progress(self, counters: Counters) -> None:
        self._update(sent=counters.sent, failed=counters.failed, skipped=counters.skipped)

    def _run(self) -> None:
        try:
            result = dispatch.send_now(
                self.context, stop=self.stop, on_planned=self._planned, progress=self._progress
            )
        except NewsletterError as exc:
            self._update(state=FAILED, message=str(exc), finished_at=utcnow())
            return
        except Exception:  # a bug must end the run visibly, not leave it "running"
            log.exception("send-now from the dashboard failed")
            self._update(
                state=FAILED, message="internal error (see the server log)", finished_at=utcnow()
            )
            return
        counters, outlook = result.counters, result.outlook
        message = f"edition {result.edition_key}: {counters.sent} sent, {counters.failed} failed"
        if counters.paused_reason:
            message = f"edition {result.edition_key} paused: {counters.paused_reason}"
        elif outlook.nothing or outlook.complete:
            message = f"nothing to send: {outlook.nothing or outlook.complete}"
        self._update(
            state=FAILED if counters.paused_reason else DONE,
            edition=result.edition_key,
            sent=counters.sent,
            failed=counters.failed,
            skipped=counters.skipped,
            message=message,
            finished_at=utcnow(),
        )
