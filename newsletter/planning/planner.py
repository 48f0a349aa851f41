"""Planning an edition: take its window's papers, choose each active reader's, and
record one delivery per reader (see `plan_edition`). The database's unique keys make
planning idempotent: two planners racing each other both succeed and each row exists
once. `why_nothing` says in one line why a plan or preview would send nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.errors import NotFound
from newsletter.matching import Interest
from newsletter.matching.embedder import paper_text
from newsletter.matching.expand import topic_names
from newsletter.planning import embeddings, relevance
from newsletter.planning.embeddings import EmbedProgress
from newsletter.planning.relevance import interests_for, text_interest
from newsletter.planning.selection import Reader, choose_for, general_top
from newsletter.planning.weeks import (
    EditionSchedule,
    current_schedule,
    planned_window,
    reader_zone,
    schedule_for,
    send_instant,
)
from newsletter.runtime import Runtime
from newsletter.store import db
from newsletter.store import editions as editions_mod
from newsletter.store import plans as plans_mod
from newsletter.store.editions import EditionInfo
from newsletter.store.models import utcnow
from newsletter.store.papers import (
    count_listed_between,
    latest_listing,
    papers_listed_between,
    unembedded_between,
)
from newsletter.store.statuses import DeliveryKind, SubscriberStatus
from newsletter.store.subscribers import count_readers_to_mail, get_subscriber, readers_choices

# --- why an edition has nothing -------------------------------------------------------

_INACTIVE: dict[str, str] = {
    SubscriberStatus.PENDING: "has not confirmed the subscription yet",
    SubscriberStatus.UNSUBSCRIBED: "has unsubscribed",
    SubscriberStatus.BOUNCED: "is marked bounced (too many hard bounces)",
}


def why_nothing(session: Session, edition: EditionInfo, email: str | None = None) -> str:
    """The one reason planning gave a reader (or, without `email`, anyone) nothing.

    In the order an admin would check: the reader, then the window's papers, then
    matching. Reads only.
    """
    if email is not None:
        subscriber = get_subscriber(session, email)
        if subscriber is None:
            return f"there is no subscriber with address {email}"
        if subscriber.status != SubscriberStatus.ACTIVE:
            return f"{email} {_INACTIVE.get(subscriber.status, 'is ' + subscriber.status)}"
        if subscriber.paused:
            return f"{email} has paused their digest"
    elif not count_readers_to_mail(session):
        return "there is no active reader (or every active reader has paused their digest)"
    start, end = edition.window_start, edition.window_end
    papers = count_listed_between(session, start, end)
    if not papers:
        newest = latest_listing(session)
        stored = "no paper is stored" if newest is None else f"the newest was {_moment(newest)}"
        return (
            f"no paper was listed in the window of edition {edition.key} "
            f"({_moment(start)} to {_moment(end)}); {stored}: run `newsletter ingest`"
        )
    whose = f"{email}'s" if email is not None else "any reader's"
    return (
        f"none of the {papers} papers listed in the window of edition {edition.key} "
        f"({_moment(start)} to {_moment(end)}) matched {whose} topics and interests, "
        "and digest.skip_empty is on"
    )


def _moment(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


# --- planning -------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanResult:
    edition: EditionInfo
    created_edition: bool
    planned: int  # deliveries this call created
    digests: int
    quiet: int
    without_papers: int  # readers left out: nothing matched and skip_empty is on


def plan_edition(
    context: Runtime,
    now: datetime | None = None,
    email: str | None = None,
    key: str | None = None,
    embedding: EmbedProgress | None = None,
) -> PlanResult:
    """Plan an edition (idempotent): `key`, else the week `now` falls in.

    `email` plans only that reader; `embedding` is told the progress of embedding new
    papers and interests first (see embed_window).
    """
    now = now or utcnow()
    embed_window(context, now, key, embedding)
    with db.transaction(context.sessions, immediate=True) as session:
        return plan_in(session, context.settings, now, email, key)


def embed_window(
    context: Runtime,
    now: datetime | None = None,
    key: str | None = None,
    progress: EmbedProgress | None = None,
) -> int:
    """Embed the window's papers and the readers' interests before planning.

    Vectors are computed outside any transaction and stored chunk by chunk in short
    ones of their own: a plan that is rolled back (dry run, preview) keeps them, a
    killed run keeps the chunks done, the next run does not embed them again, and
    senders are never kept from the database while the model runs. `progress` is told
    (done, total) when there is something to embed. Returns how many papers were.
    """
    settings = context.settings
    if settings.matching.semantic == "off":
        return 0
    now = now or utcnow()
    model = embeddings.stored_model_name(settings.matching)
    with db.transaction(context.sessions) as session:
        start, end = _window(session, settings, _schedule(settings, now, key), now)
        stale = {
            paper_id: paper_text(title, abstract)
            for paper_id, title, abstract in unembedded_between(session, start, end, model)
        }
        topics, texts = readers_choices(session)
    # Every spelling of a text is embedded: planning ranks whichever a reader typed. So is
    # every configured topic, with its names: a one-word interest is compared with the
    # names and may be matched as the topic (matching.expand).
    interests = interests_for(settings, topics, texts) + _every_topic(settings)
    return embeddings.store_new_embeddings(context, settings, stale, interests, progress).papers


def _every_topic(settings: Settings) -> list[Interest]:
    """The configured topics and their names, as the interests matching.expand embeds."""
    topics = [t for t in (relevance.topic_interest(settings, c.slug) for c in settings.topics) if t]
    return topics + [text_interest(name) for t in topics for name in topic_names(t)]


def _schedule(settings: Settings, now: datetime, key: str | None) -> EditionSchedule:
    if key is not None:
        return schedule_for(settings.digest, key)
    return current_schedule(settings.digest, now)


def _window(
    session: Session, settings: Settings, schedule: EditionSchedule, now: datetime
) -> tuple[datetime, datetime]:
    previous_end = editions_mod.previous_window_end(session, schedule.key)
    return planned_window(schedule, previous_end, now, settings.digest.window_days)


def plan_in(
    session: Session,
    settings: Settings,
    now: datetime,
    email: str | None = None,
    key: str | None = None,
) -> PlanResult:
    """Planning inside the caller's transaction (send-now --dry-run rolls it back)."""
    if email is not None and get_subscriber(session, email) is None:
        # Checked first: a mistyped address must not leave a new edition behind.
        raise NotFound(f"no subscriber with address {email}")
    schedule = _schedule(settings, now, key)
    start, end = _window(session, settings, schedule, now)
    edition, created = editions_mod.ensure_edition(
        session, schedule.key, start, end, schedule.scheduled_for
    )
    if not created and edition.window_end < end:
        edition = editions_mod.widen_empty_edition(session, edition.id, start, end)
    subscribers = plans_mod.subscribers_to_plan(session, edition.id, email)
    if not subscribers:
        return PlanResult(edition, created, 0, 0, 0, 0)
    papers = papers_listed_between(session, edition.window_start, edition.window_end)
    top = general_top(papers, settings.matching.half_life_days)
    editions_mod.add_edition_papers(session, edition.id, [p.id for p in top])
    delivered = plans_mod.delivered_papers(session, [p.id for p in papers])
    chosen = choose_for(session, settings, subscribers, papers, delivered)
    planned = _deliveries(settings, edition.key, subscribers, chosen)
    count = plans_mod.insert_deliveries(session, edition.id, planned, now)
    quiet = sum(1 for p in planned if p.kind == DeliveryKind.QUIET)
    return PlanResult(
        edition, created, count, len(planned) - quiet, quiet, len(subscribers) - len(planned)
    )


def _deliveries(
    settings: Settings,
    key: str,
    subscribers: Sequence[Reader],
    chosen: Mapping[int, tuple[plans_mod.PlannedPaper, ...]],
) -> list[plans_mod.PlannedDelivery]:
    config = settings.digest
    due_by_zone: dict[str | None, datetime] = {}
    planned: list[plans_mod.PlannedDelivery] = []
    for subscriber in subscribers:
        papers = chosen.get(subscriber.id, ())
        if not papers and config.skip_empty:
            continue
        zone_name = subscriber.timezone
        if zone_name not in due_by_zone:
            zone = reader_zone(zone_name, config.zone)
            due_by_zone[zone_name] = send_instant(key, config.weekday_index, config.time, zone)
        kind = DeliveryKind.DIGEST if papers else DeliveryKind.QUIET
        planned.append(
            plans_mod.PlannedDelivery(subscriber.id, kind, due_by_zone[zone_name], papers)
        )
    return planned
