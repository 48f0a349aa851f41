"""send-now, its dry run, and previews: planning plus draining, for the commands.

A dry run and a preview plan inside a transaction that is rolled back, so they show
exactly what sending would do and record nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from newsletter import db, digest
from newsletter.addresses import normalize_email
from newsletter.compose import Composer
from newsletter.context import Context
from newsletter.errors import NotFound, NothingToSend, RelayUnavailable
from newsletter.jobs import JobLoader, compose
from newsletter.mail.message import OutgoingMessage
from newsletter.models import Delivery, utcnow
from newsletter.outbox import Counters, DrainOptions, Transport, drain
from newsletter.store import outbox as store
from newsletter.store.outbox import ClaimedDelivery
from newsletter.store.subscribers import get_subscriber
from newsletter.views import DigestItem


@dataclass(frozen=True)
class SendNowResult:
    edition_key: str
    planned: int
    resumed: bool
    counters: Counters
    dry_run_bytes: list[int] = field(default_factory=list)  # message sizes, --dry-run only


class _Rollback(Exception):
    """Raised inside a transaction to undo it (dry runs and previews record nothing)."""


def send_now(
    context: Context,
    *,
    email: str | None = None,
    dry_run: bool = False,
    transport: Transport | None = None,
    stop: threading.Event | None = None,
    progress: Callable[[Counters], None] | None = None,
    on_planned: Callable[[int], None] | None = None,
    clock: Callable[[], datetime] = utcnow,
    workers: int = 1,
) -> SendNowResult:
    """Plan this week's edition if needed, resume it if paused, and drain it now.

    `on_planned` gets the number of deliveries left to send, for a progress bar.
    `workers` > 1 sends from that many processes (see drain_processes; they use the
    real clock and their own SMTP pools, so `transport` and `clock` apply to planning
    only).
    """
    address = _known_address(context, email) if email else None
    if dry_run:
        return _dry_run(context, address, clock())
    plan = digest.plan_edition(context, clock(), address)
    edition = plan.edition
    subscriber_id = None
    with db.transaction(context.sessions) as session:
        resumed = store.resume_edition(session, edition.id) and edition.status == "paused"
        open_count = store.count_open(session, edition.id)
        if address is not None:
            subscriber_id = _subscriber_id(session, address)
    if on_planned is not None:
        on_planned(open_count)
    options = DrainOptions(
        edition_id=edition.id,
        subscriber_id=subscriber_id,
        ignore_schedule=True,
        wait_for_retries=True,
        processes=workers if workers > 1 else 0,
    )
    counters = drain(
        context, options, transport=transport, stop=stop, progress=progress, clock=clock
    )
    if counters.relay_error:
        raise RelayUnavailable(
            f"{counters.relay_error}; sending stopped after {counters.sent} message(s), the "
            f"rest of edition {edition.key} is kept: run `newsletter send-now` again once "
            "the relay works"
        )
    return SendNowResult(edition.key, plan.planned, resumed, counters)


def _dry_run(context: Context, address: str | None, now: datetime) -> SendNowResult:
    digest.embed_window(context, now)  # kept, although the plan below is rolled back
    composer = Composer(context.settings, context.secret_key)
    counters = Counters()
    sizes: list[int] = []
    result: list[tuple[str, int]] = []
    try:
        with db.transaction(context.sessions, immediate=True) as session:
            plan = digest.plan_in(session, context.settings, now, address)
            subscriber_id = _subscriber_id(session, address) if address else None
            deliveries = store.open_deliveries(session, plan.edition.id, subscriber_id)
            for job in JobLoader(context).load(session, deliveries):
                sizes.append(len(compose(composer, job).data))
            result.append((plan.edition.key, plan.planned))
            raise _Rollback
    except _Rollback:
        pass
    counters.finished = time.monotonic()
    key, planned = result[0]
    return SendNowResult(key, planned, False, counters, sizes)


def _known_address(context: Context, email: str) -> str:
    return normalize_email(email)


def _subscriber_id(session: Session, address: str) -> int:
    subscriber = get_subscriber(session, address)
    if subscriber is None:
        raise NotFound(f"no subscriber with address {address}")
    return subscriber.id


@dataclass(frozen=True)
class Preview:
    edition_key: str
    message: OutgoingMessage
    items: tuple[DigestItem, ...]
    kind: str  # digest | quiet
    status: str  # the delivery's state: queued (would be sent now), sent, …


def preview(context: Context, email: str, now: datetime | None = None) -> Preview:
    """Exactly what send-now would send this reader now; records nothing."""
    address = _known_address(context, email)
    now = now or utcnow()
    digest.embed_window(context, now)  # kept, although the plan below is rolled back
    composer = Composer(context.settings, context.secret_key)
    found: list[Preview] = []
    try:
        with db.transaction(context.sessions, immediate=True) as session:
            subscriber_id = _subscriber_id(session, address)
            plan = digest.plan_in(session, context.settings, now, address)
            row = session.get(Delivery, _delivery_id(session, plan.edition.id, subscriber_id))
            assert row is not None
            claimed = ClaimedDelivery(
                row.id, row.edition_id, subscriber_id, address, row.kind, row.attempts, 0
            )
            job = JobLoader(context).load(session, [claimed])[0]
            found.append(
                Preview(job.edition_key, compose(composer, job), job.items, row.kind, row.status)
            )
            raise _Rollback
    except _Rollback:
        pass
    return found[0]


def _delivery_id(session: Session, edition_id: int, subscriber_id: int) -> int:
    row = store.delivery_for(session, edition_id, subscriber_id)
    if row is None:
        raise NothingToSend(
            "nothing would be sent to this address this week: it is not active, is paused, "
            "or no paper matched its topics (digest.skip_empty is on)"
        )
    return row.id
