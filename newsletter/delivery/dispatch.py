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

from newsletter.config import Settings
from newsletter.delivery.claimed import JobLoader, compose
from newsletter.delivery.compose import Composer
from newsletter.delivery.drain import DrainOptions, Transport, drain
from newsletter.delivery.outcomes import Counters
from newsletter.errors import NotFound, NothingToSend, RelayUnavailable
from newsletter.mail.addresses import normalize_email
from newsletter.mail.message import OutgoingMessage
from newsletter.planning import planner, weeks
from newsletter.planning.embeddings import EmbedProgress
from newsletter.render.content import DigestItem
from newsletter.runtime import Runtime
from newsletter.store import db, editions, plans
from newsletter.store import deliveries as deliveries_mod
from newsletter.store.claims import ClaimedDelivery
from newsletter.store.models import utcnow
from newsletter.store.papers import count_listed_between
from newsletter.store.statuses import OPEN_STATUSES, EditionStatus
from newsletter.store.subscribers import get_subscriber


@dataclass(frozen=True)
class Outlook:
    """Why a run has nothing to send, when it has nothing to send."""

    nothing: str | None = None  # the reason nobody (or the one reader) gets anything
    complete: str | None = None  # the edition was already delivered: what waits next


@dataclass(frozen=True)
class SendNowResult:
    edition_key: str
    planned: int
    resumed: bool
    counters: Counters
    dry_run_bytes: list[int] = field(default_factory=list)  # message sizes, --dry-run only
    outlook: Outlook = field(default_factory=Outlook)


def send_now(
    context: Runtime,
    *,
    email: str | None = None,
    dry_run: bool = False,
    transport: Transport | None = None,
    stop: threading.Event | None = None,
    progress: Callable[[Counters], None] | None = None,
    on_planned: Callable[[int], None] | None = None,
    clock: Callable[[], datetime] = utcnow,
    workers: int = 1,
    embedding: EmbedProgress | None = None,
) -> SendNowResult:
    """Plan this week's edition if needed, resume it if paused, and drain it now.

    `on_planned` gets the number of deliveries left to send, for a progress bar;
    `embedding` the progress of embedding new papers and interests before planning.
    `workers` > 1 sends from that many processes (see drain_processes; they use the
    real clock and their own SMTP pools, so `transport` and `clock` apply to planning
    only).
    """
    address = _known_address(context, email) if email else None
    now = clock()
    if dry_run:
        return _dry_run(context, address, now, embedding)
    plan = planner.plan_edition(context, now, address, embedding=embedding)
    edition = plan.edition
    subscriber_id = None
    with db.transaction(context.sessions) as session:
        if address is not None:
            subscriber_id = _subscriber_id(session, address)
        open_count = deliveries_mod.count_open(session, edition.id, subscriber_id)
        outlook = Outlook()
        if not open_count:
            outlook = _outlook(session, context.settings, edition, address, now)
        # An edition with nothing open is left as it is: resuming it would only
        # mark it done again, or open an empty one.
        resumed = bool(open_count) and editions.resume_edition(session, edition.id)
        resumed = resumed and edition.status == EditionStatus.PAUSED
    if not open_count:
        return SendNowResult(edition.key, plan.planned, False, Counters(), outlook=outlook)
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
            f"{counters.relay_error}; sending stopped after {counters.sent} sent, the rest "
            f"of edition {edition.key} is kept: run `newsletter send-now` again once the "
            "relay works"
        )
    return SendNowResult(edition.key, plan.planned, resumed, counters)


def _outlook(
    session: Session,
    settings: Settings,
    edition: editions.EditionInfo,
    address: str | None,
    now: datetime,
) -> Outlook:
    """Nothing is open in the edition (or for the one reader): say why."""
    if address is None:
        delivered = editions.has_deliveries(session, edition.id)
    else:
        reader = _subscriber_id(session, address)
        delivered = plans.delivery_for(session, edition.id, reader) is not None
    if not delivered:
        return Outlook(nothing=planner.why_nothing(session, edition, address))
    waiting = count_listed_between(session, edition.window_end, now)
    following = weeks.following_key(settings.digest, edition.key)
    return Outlook(
        complete=(
            f"edition {edition.key} is already complete"
            + (f" for {address}" if address else "")
            + f"; new papers listed since, waiting for the next edition ({following}): "
            f"{waiting}"
        )
    )


def _dry_run(
    context: Runtime, address: str | None, now: datetime, embedding: EmbedProgress | None
) -> SendNowResult:
    # Vectors are kept, although the plan below is rolled back.
    planner.embed_window(context, now, progress=embedding)
    composer = Composer(context.settings, context.secret_key)
    counters = Counters()
    with db.rolled_back(context.sessions) as session:
        plan = planner.plan_in(session, context.settings, now, address)
        subscriber_id = _subscriber_id(session, address) if address else None
        deliveries = deliveries_mod.open_deliveries(session, plan.edition.id, subscriber_id)
        jobs = JobLoader(context).load(session, deliveries)
        sizes = [len(compose(composer, job).data) for job in jobs]
        outlook = Outlook()
        if not deliveries:
            outlook = _outlook(session, context.settings, plan.edition, address, now)
    counters.finished = time.monotonic()
    return SendNowResult(plan.edition.key, plan.planned, False, counters, sizes, outlook)


def _known_address(context: Runtime, email: str) -> str:
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


def preview(
    context: Runtime,
    email: str,
    now: datetime | None = None,
    embedding: EmbedProgress | None = None,
) -> Preview:
    """Exactly what this reader would be sent next if send-now ran now; records nothing.

    That is this week's edition, or the next one once this week's has reached them.
    """
    address = _known_address(context, email)
    now = now or utcnow()
    settings = context.settings
    with db.transaction(context.sessions) as session:
        key = _next_key_for(session, settings, now, _subscriber_id(session, address))
    planner.embed_window(
        context, now, key, embedding
    )  # kept, although the plan below is rolled back
    composer = Composer(settings, context.secret_key)
    with db.rolled_back(context.sessions) as session:
        subscriber_id = _subscriber_id(session, address)
        plan = planner.plan_in(session, settings, now, address, key)
        row = plans.delivery_for(session, plan.edition.id, subscriber_id)
        if row is None:
            reason = planner.why_nothing(session, plan.edition, address)
            raise NothingToSend(f"nothing would be sent to {address} in edition {key}: {reason}")
        claimed = ClaimedDelivery(
            row.id, row.edition_id, subscriber_id, address, row.kind, row.attempts, 0
        )
        job = JobLoader(context).load(session, [claimed])[0]
        return Preview(job.edition_key, compose(composer, job), job.items, row.kind, row.status)


def _next_key_for(session: Session, settings: Settings, now: datetime, subscriber_id: int) -> str:
    """This week's edition, unless it has already reached (or failed for) this reader."""
    key = weeks.current_schedule(settings.digest, now).key
    edition = editions.get_edition(session, key)
    row = None if edition is None else plans.delivery_for(session, edition.id, subscriber_id)
    if row is not None and row.status not in OPEN_STATUSES:
        return weeks.following_key(settings.digest, key)
    return key
