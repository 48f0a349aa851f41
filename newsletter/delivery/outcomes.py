"""Recording what became of each message: sent, skipped, retried, failed, or handed
back because the relay failed; and, after each batch, whether an edition pauses
(too many recent failures) or is finished (nothing left open).

Each outcome is its own small transaction, so a crash loses at most the messages in
flight; a relay failure is never counted against a reader.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from newsletter.delivery.guards import RELAY_REST_SECONDS, RelayWatch
from newsletter.mail.smtp import RelayError, SendError
from newsletter.runtime import Runtime
from newsletter.store import claims as claims_mod
from newsletter.store import db
from newsletter.store import deliveries as deliveries_mod
from newsletter.store import editions as editions_mod
from newsletter.store import returns as returns_store
from newsletter.store.claims import ClaimedDelivery
from newsletter.store.returns import Target
from newsletter.store.statuses import MailEventKind, MailEventSource

Outcome = Literal["sent", "failed", "retried", "released", "returned", "skipped"]


@dataclass
class Counters:
    """What a run did; updated from the sending threads."""

    sent: int = 0
    failed: int = 0
    skipped: int = 0
    retried: int = 0
    bounced: int = 0
    released: int = 0
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    paused_reason: str | None = None
    relay_error: str | None = None  # the run stopped: the relay failed every connection
    waiting: str | None = None  # what an idle run waits for, while it waits
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + amount)

    @property
    def attempts(self) -> int:
        return self.sent + self.failed + self.retried

    @property
    def done(self) -> int:
        return self.sent + self.failed + self.skipped

    @property
    def duration(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    @property
    def rate(self) -> float:
        return self.sent / self.duration if self.duration > 0 else 0.0


@dataclass
class Outcomes:
    """Records outcomes for one run: its lease owner, counters and relay watch."""

    context: Runtime
    owner: str
    counters: Counters
    progress: Callable[[Counters], None]
    clock: Callable[[], datetime]
    relay: RelayWatch
    halt: threading.Event  # set when the relay is down: queued jobs go back untouched
    stop: threading.Event

    def skipped(self, delivery: ClaimedDelivery) -> Outcome:
        """The reader left after the claim: nothing is sent, nothing is counted against them."""
        with db.transaction(self.context.sessions) as session:
            claims_mod.skip_claimed(session, self.owner, delivery.id)
        self.counters.add("skipped")
        self.progress(self.counters)
        return "skipped"

    def relay_failed(self, delivery: ClaimedDelivery, exc: RelayError) -> Outcome:
        """Not the reader's fault: the delivery goes back untouched (no attempt counted).

        When the relay is down, the run stops; otherwise this delivery is free again
        at once for a healthier connection or the next claim.
        """
        if self.relay.failed():
            self.counters.relay_error = str(exc)
            self.halt.set()
            return "released"
        with db.transaction(self.context.sessions) as session:
            claims_mod.release(session, self.owner, [delivery.id])
        self.stop.wait(RELAY_REST_SECONDS)
        return "returned"

    def refused(self, delivery: ClaimedDelivery, exc: SendError) -> Outcome:
        """The server refused this message: 5xx fails at once, 4xx is retried later."""
        if exc.permanent:
            return self.failed(delivery, str(exc), hard_bounce=True)
        config = self.context.settings.delivery
        attempts = delivery.attempts + 1
        if attempts >= config.max_attempts:
            return self.failed(delivery, f"gave up after {attempts} attempts: {exc}", False)
        now = self.clock()
        retry_at = now + timedelta(seconds=config.retry_base_seconds * 2 ** (attempts - 1))
        with db.transaction(self.context.sessions) as session:
            deliveries_mod.mark_retry(session, delivery, self.owner, str(exc), retry_at, now)
        self.counters.add("retried")
        self.progress(self.counters)
        return "retried"

    def failed(self, delivery: ClaimedDelivery, error: str, hard_bounce: bool) -> Outcome:
        now = self.clock()
        bounce_after = self.context.settings.delivery.bounce_after
        with db.transaction(self.context.sessions) as session:
            deliveries_mod.mark_failed(
                session, delivery, self.owner, error, now, permanent=hard_bounce
            )
            if hard_bounce:  # the same record as a bounce that comes back by mail
                target = Target(delivery.subscriber_id, delivery.id, delivery.edition_id)
                returns_store.add_event(
                    session, MailEventKind.HARD_BOUNCE, MailEventSource.SMTP, target, error, now
                )
            bounced = hard_bounce and deliveries_mod.record_hard_bounce(
                session, delivery.subscriber_id, bounce_after, now
            )
        self.counters.add("failed")
        if bounced:
            self.counters.add("bounced")
        self.progress(self.counters)
        return "failed"


def judge_editions(context: Runtime, now: datetime, edition_ids: Iterable[int]) -> None:
    """After each batch: pause an edition whose recent deliveries fail too often (the
    relay or the list is broken, not a reader), or finish one with nothing left open."""
    config = context.settings.delivery
    for edition_id in edition_ids:
        # Immediate: it reads, then may write, while the senders commit marks; a
        # deferred SQLite transaction could not upgrade after their commits.
        with db.transaction(context.sessions, immediate=True) as session:
            window = config.failure_window
            scanned = window * config.max_attempts
            failed, total = deliveries_mod.failure_share(session, edition_id, window, scanned)
            if total >= window and failed / total > config.failure_threshold:
                reason = (
                    f"{failed} of the last {total} deliveries failed "
                    f"(more than {config.failure_threshold:.0%}); check the SMTP server "
                    "and the deliveries' last errors, then run `newsletter send-now`"
                )
                editions_mod.pause_edition(session, edition_id, reason)
            else:
                editions_mod.finish_edition_if_complete(session, edition_id, now)
