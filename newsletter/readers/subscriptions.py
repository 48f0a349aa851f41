"""Use cases around a subscriber's life: subscribe, confirm, change, unsubscribe, import.

Each call is one transaction: on any error nothing is written.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.errors import InvalidInput, NotFound
from newsletter.mail.addresses import mailable_email, normalize_email
from newsletter.runtime import Runtime
from newsletter.store import db
from newsletter.store import subscribers as store
from newsletter.store.models import Subscriber, utcnow
from newsletter.store.statuses import Origin, SubscriberStatus

if TYPE_CHECKING:
    from newsletter.readers.examples import Found

MAX_INTEREST_LENGTH = 200
MAX_INTERESTS = 20


@dataclass(frozen=True)
class SubscriberInfo:
    """A subscriber as the CLI and web show it, detached from the session."""

    id: int
    email: str
    status: str
    topics: tuple[str, ...]
    interests: tuple[str, ...]
    timezone: str | None
    paused: bool

    @classmethod
    def of(cls, subscriber: Subscriber) -> SubscriberInfo:
        return cls(
            id=subscriber.id,
            email=subscriber.email,
            status=subscriber.status,
            topics=tuple(subscriber.topic_slugs),
            interests=tuple(subscriber.interest_texts),
            timezone=subscriber.timezone,
            paused=subscriber.paused,
        )


@dataclass(frozen=True)
class SubscribeResult:
    subscriber: SubscriberInfo
    created: bool
    needs_confirmation: bool  # pending: a confirmation email should go out


def check_topics(settings: Settings, topics: Iterable[str]) -> list[str]:
    slugs = list(dict.fromkeys(t.strip().lower() for t in topics if t.strip()))
    configured = {t.slug for t in settings.topics}  # an import checks every row: no scans
    unknown = [s for s in slugs if s not in configured]
    if unknown:
        known = ", ".join(t.slug for t in settings.topics) or "none configured"
        raise InvalidInput(f"unknown topic {unknown[0]!r} (known topics: {known})")
    return slugs


def clean_interests(interests: Iterable[str]) -> list[str]:
    """Free text is kept as inert text: trimmed, single-spaced, no control characters."""
    cleaned: list[str] = []
    for raw in interests:
        printable = (
            raw if raw.isprintable() else "".join(c if c.isprintable() else " " for c in raw)
        )
        text = " ".join(printable.split())
        if not text:
            continue
        if len(text) > MAX_INTEREST_LENGTH:
            raise InvalidInput(
                f"interest too long ({len(text)} > {MAX_INTEREST_LENGTH} characters)"
            )
        cleaned.append(text)
    if len(cleaned) > MAX_INTERESTS:
        raise InvalidInput(f"too many interests ({len(cleaned)} > {MAX_INTERESTS})")
    return list(dict.fromkeys(cleaned))


def subscribe(
    context: Runtime,
    email: str,
    topics: Sequence[str] = (),
    interests: Sequence[str] = (),
    *,
    confirmed: bool = False,
    timezone: str | None = None,
    examples: Found | None = None,
    origin: Origin = Origin.GIVEN,
) -> SubscribeResult:
    """Add a subscriber, or update the topics of a known one.

    An active subscriber stays active; an unsubscribed one comes back as pending (or
    active with `confirmed`), so a re-subscription is confirmed again by its owner.
    `examples` (see readers.examples.find_papers) become the reader's example papers
    in the same transaction.
    """
    address = mailable_email(email)
    slugs = check_topics(context.settings, topics)
    texts = clean_interests(interests)
    with db.transaction(context.sessions, immediate=True) as session:
        subscriber = store.get_subscriber(session, address)
        created = subscriber is None
        if subscriber is None:
            status = SubscriberStatus.ACTIVE if confirmed else SubscriberStatus.PENDING
            subscriber = store.add_subscriber(
                session, address, status=status, topics=slugs, interests=texts, timezone=timezone
            )
        else:
            store.update_subscriber(
                session,
                subscriber,
                choices=(slugs, texts) if slugs or texts else None,
                timezone=timezone or ...,
            )
            if confirmed and subscriber.status != SubscriberStatus.ACTIVE:
                store.set_status(subscriber, SubscriberStatus.ACTIVE)
            elif subscriber.status == SubscriberStatus.UNSUBSCRIBED:
                store.set_status(subscriber, SubscriberStatus.PENDING)
        if examples is not None and examples.external_ids:
            # Loaded here: it brings the arXiv client, which a bulk import never needs.
            from newsletter.readers.examples import check_room, keep_examples

            check_room(session, context, subscriber.id, len(examples.external_ids))
            keep_examples(session, subscriber.id, examples, origin, utcnow())
        info = SubscriberInfo.of(subscriber)
    return SubscribeResult(
        info, created, needs_confirmation=info.status == SubscriberStatus.PENDING
    )


def unsubscribe(context: Runtime, email: str) -> SubscriberInfo:
    address = normalize_email(email)
    with db.transaction(context.sessions, immediate=True) as session:
        subscriber = store.get_subscriber(session, address)
        if subscriber is None:
            raise NotFound(f"no subscriber with address {address}")
        if subscriber.status != SubscriberStatus.BOUNCED:
            store.set_status(subscriber, SubscriberStatus.UNSUBSCRIBED)
        return SubscriberInfo.of(subscriber)


def list_all(context: Runtime) -> list[SubscriberInfo]:
    with db.transaction(context.sessions) as session:
        return [SubscriberInfo.of(s) for s in store.list_subscribers(session)]


@dataclass
class ImportReport:
    added: int = 0
    updated: int = 0
    problems: list[str] = field(default_factory=list)  # "line 7: invalid email address …"


def import_csv(context: Runtime, path: Path) -> ImportReport:
    """Load `email,topics[,interests]` rows (both lists separated by ';'); bad rows are
    reported by line, and so is a repeated address (its first row counts).

    Every row is checked first, then the good ones are written in bulk in one
    transaction; imported subscribers are active (the admin vouches for them, as with
    `subscribe --confirmed`). Without an `interests` column a known subscriber keeps
    the interests they typed.
    """
    rows = _read_rows(path)
    report = ImportReport()
    good: dict[str, store.Choices] = {}
    first_line: dict[str, int] = {}
    for line, row in rows:
        try:
            address = mailable_email(row.get("email") or "")
            topics = check_topics(context.settings, (row.get("topics") or "").split(";"))
            typed = row.get("interests")
            interests = None if typed is None else clean_interests(typed.split(";"))
        except InvalidInput as exc:
            report.problems.append(f"line {line}: {exc}")
            continue
        if address in first_line:
            report.problems.append(
                f"line {line}: {address} is already on line {first_line[address]}; "
                "this row is not imported"
            )
            continue
        first_line[address] = line
        good[address] = (topics, interests)
    with db.transaction(context.sessions, immediate=True) as session:
        known = store.ids_by_email(session, list(good))
        new = {address: choices for address, choices in good.items() if address not in known}
        store.add_active_subscribers(session, new, utcnow())
        store.replace_choices(session, {known[a]: c for a, c in good.items() if a in known})
    report.added, report.updated = len(new), len(good) - len(new)
    return report


def _read_rows(path: Path) -> list[tuple[int, dict[str, str]]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InvalidInput(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{path}: cannot read as UTF-8 text: {exc}") from None
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip().lower() for h in reader.fieldnames or []]
    if "email" not in header:
        raise InvalidInput(f"{path}: the first line must be a header with an 'email' column")
    reader.fieldnames = header
    try:
        # reader.line_num is the physical line, so quoted newlines still point right.
        return [
            (reader.line_num, {k: (v or "").strip() for k, v in row.items() if k}) for row in reader
        ]
    except csv.Error as exc:
        raise InvalidInput(f"{path}: line {reader.line_num}: malformed CSV: {exc}") from None


# --- The web app's use cases: double opt-in, preferences and unsubscribe by signed id ---


@dataclass(frozen=True)
class SubscriptionRequest:
    """What a public subscribe request did; the web answers the same whatever it says."""

    subscriber: SubscriberInfo
    send_confirmation: bool  # pending, and no confirmation went out within the cooldown
    claimed_at: datetime | None = None  # the cooldown claim to give back if sending fails


@dataclass(frozen=True)
class StatusChange:
    subscriber: SubscriberInfo
    changed: bool  # False when the subscriber already was in (or cannot reach) that state


def request_subscription(
    context: Runtime,
    email: str,
    topics: Sequence[str] = (),
    interests: Sequence[str] = (),
    *,
    timezone: str | None = None,
    now: datetime | None = None,
    examples: Found | None = None,
) -> SubscriptionRequest:
    """A stranger asks to subscribe an address: nothing changes for a confirmed reader.

    Unlike `subscribe`, an anonymous request never edits an active subscriber's topics
    (only the owner may, through their preferences link) and never revives a bounced
    address. New and unsubscribed addresses become pending until their owner confirms;
    their `examples` (found beforehand, see readers.examples) are kept with them.
    """
    now = now or utcnow()
    address = mailable_email(email)
    slugs = check_topics(context.settings, topics)
    texts = clean_interests(interests)
    timezone = check_timezone(timezone) if timezone else None
    with db.transaction(context.sessions, immediate=True) as session:
        subscriber = store.get_subscriber(session, address)
        if subscriber is None:
            subscriber = store.add_subscriber(
                session, address, topics=slugs, interests=texts, timezone=timezone, now=now
            )
        elif subscriber.status in (SubscriberStatus.PENDING, SubscriberStatus.UNSUBSCRIBED):
            store.update_subscriber(
                session, subscriber, choices=(slugs, texts), timezone=timezone or ...
            )
            if subscriber.status == SubscriberStatus.UNSUBSCRIBED:
                store.set_status(subscriber, SubscriberStatus.PENDING, now)
        if examples is not None and subscriber.status == SubscriberStatus.PENDING:
            # Loaded here: it brings the arXiv client, which a bulk import never needs.
            from newsletter.readers.examples import check_room, keep_examples

            check_room(session, context, subscriber.id, len(examples.external_ids))
            keep_examples(session, subscriber.id, examples, Origin.GIVEN, now)
        cooldown = timedelta(hours=context.settings.web.confirmation_cooldown_hours)
        due = subscriber.status == SubscriberStatus.PENDING and store.claim_confirmation(
            session, subscriber.id, now, cooldown
        )
        return SubscriptionRequest(
            SubscriberInfo.of(subscriber), send_confirmation=due, claimed_at=now if due else None
        )


def confirm(context: Runtime, subscriber_id: int) -> StatusChange:
    """pending → active; any other state is left alone (a late click changes nothing)."""
    with db.transaction(context.sessions, immediate=True) as session:
        subscriber = _by_id(session, subscriber_id)
        changed = subscriber.status == SubscriberStatus.PENDING
        if changed:
            store.set_status(subscriber, SubscriberStatus.ACTIVE)
        return StatusChange(SubscriberInfo.of(subscriber), changed)


def get_preferences(context: Runtime, subscriber_id: int) -> SubscriberInfo:
    with db.transaction(context.sessions) as session:
        return SubscriberInfo.of(_by_id(session, subscriber_id))


def update_preferences(
    context: Runtime,
    subscriber_id: int,
    *,
    topics: Sequence[str],
    interests: Sequence[str],
    timezone: str | None,
    paused: bool,
) -> SubscriberInfo:
    """Replace topics, interests, time zone and pause; the status is never changed here."""
    slugs = check_topics(context.settings, topics)
    texts = clean_interests(interests)
    zone = check_timezone(timezone) if timezone else None
    with db.transaction(context.sessions, immediate=True) as session:
        subscriber = _by_id(session, subscriber_id)
        store.update_subscriber(
            session, subscriber, choices=(slugs, texts), timezone=zone, paused=paused
        )
        return SubscriberInfo.of(subscriber)


def unsubscribe_by_id(context: Runtime, subscriber_id: int) -> StatusChange:
    """Stop all mail; the delivery engine re-checks the status before each send, so an
    edition already planned skips this reader too. Bounced addresses stay bounced."""
    with db.transaction(context.sessions, immediate=True) as session:
        subscriber = _by_id(session, subscriber_id)
        changed = subscriber.status in (SubscriberStatus.PENDING, SubscriberStatus.ACTIVE)
        if changed:
            store.set_status(subscriber, SubscriberStatus.UNSUBSCRIBED)
        return StatusChange(SubscriberInfo.of(subscriber), changed)


def purge_pending(context: Runtime, older_than_days: int | None = None) -> int:
    """Delete subscriptions left unconfirmed for longer than the expiry; returns how many."""
    days = context.settings.web.pending_expiry_days if older_than_days is None else older_than_days
    cutoff = utcnow() - timedelta(days=days)
    with db.transaction(context.sessions, immediate=True) as session:
        return store.delete_pending_before(session, cutoff)


def check_timezone(name: str) -> str:
    text = name.strip()
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(
            f"unknown time zone {name!r} (use an IANA name like Europe/Berlin)"
        ) from None
    return text


def _by_id(session: Session, subscriber_id: int) -> Subscriber:
    subscriber = store.get_subscriber_by_id(session, subscriber_id)
    if subscriber is None:
        raise NotFound(f"no subscriber with id {subscriber_id}")
    return subscriber
