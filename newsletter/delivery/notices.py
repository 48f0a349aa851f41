"""Transactional messages sent at once: confirm (double opt-in), welcome, goodbye.

One message over the same SMTP transport as the digests; an SMTP failure becomes a
one-line DeliveryError for the CLI or the web app to show.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from newsletter.config import DigestConfig
from newsletter.delivery.compose import Composer, NoticeKind
from newsletter.errors import DeliveryError
from newsletter.mail.smtp import SendError, SmtpPool
from newsletter.planning.weeks import reader_zone
from newsletter.readers.subscriptions import SubscriberInfo
from newsletter.runtime import Runtime
from newsletter.store import db
from newsletter.store import subscribers as store
from newsletter.store.models import utcnow

log = logging.getLogger(__name__)
RETRY_BATCH = 50  # owed confirmations one drain round sends at most


class NoticeNotSent(DeliveryError):
    """The relay did not take a notice; `permanent` when it refused it for good."""

    def __init__(self, message: str, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


def send_notice(context: Runtime, kind: NoticeKind, info: SubscriberInfo) -> str:
    """Compose and send one notice now; returns its Message-ID."""
    composer = Composer(context.settings, context.secret_key)
    topics = [_topic_name(context, slug) for slug in info.topics]
    message = composer.notice(
        kind,
        subscriber_id=info.id,
        email=info.email,
        topics=topics,
        interests=info.interests,
        delivery=delivery_time(context.settings.digest, info.timezone),
    )
    pool = SmtpPool(context.settings.smtp, size=1)
    try:
        pool.send(message.sender, message.recipient, message.data)
    except SendError as exc:
        message_text = f"could not send the {kind} email to {info.email}: {exc}"
        raise NoticeNotSent(message_text, exc.permanent) from None
    finally:
        pool.close()
    return message.message_id


def send_confirmation(
    context: Runtime, info: SubscriberInfo, claimed_at: datetime | None = None
) -> None:
    """Send the confirm email; the cooldown then counts it.

    `claimed_at` is the cooldown claim a web request took before sending: if the relay
    does not take the message the claim is given back, so the next request or the
    scheduler's drain (`retry_confirmations`) sends it. Without a claim (the CLI), the
    send time is recorded only once the relay accepted the message.
    """
    try:
        send_notice(context, "confirm", info)
    except NoticeNotSent as exc:
        if claimed_at is not None:
            with db.transaction(context.sessions) as session:
                store.release_confirmation(session, info.id, claimed_at, refused=exc.permanent)
        raise
    if claimed_at is None:
        with db.transaction(context.sessions) as session:
            store.mark_confirmation_sent(session, info.id, utcnow())


def retry_confirmations(context: Runtime, now: datetime | None = None) -> int:
    """Send the confirmations the relay could not take earlier; returns how many went out.

    For the scheduler's drain. Each one is claimed like a web request's (so a request
    racing it cannot send it twice); the round stops at the first failure, which is
    most likely the relay still being away. Never raises: the digests must go on.
    """
    now = now or utcnow()
    settings = context.settings.web
    cooldown = timedelta(hours=settings.confirmation_cooldown_hours)
    since = now - timedelta(days=settings.pending_expiry_days)
    sent = 0
    try:
        with db.transaction(context.sessions) as session:
            owed = [
                SubscriberInfo.of(s) for s in store.owed_confirmations(session, since, RETRY_BATCH)
            ]
        for info in owed:
            with db.transaction(context.sessions) as session:
                if not store.claim_confirmation(session, info.id, now, cooldown):
                    continue  # a web request sent it meanwhile
            send_confirmation(context, info, claimed_at=now)
            sent += 1
    except DeliveryError as exc:
        log.warning("confirmation emails wait for the next round: %s", exc)
    except Exception:
        log.exception("could not retry the confirmation emails")
    return sent


def send_welcome(context: Runtime, info: SubscriberInfo) -> None:
    send_notice(context, "welcome", info)


def send_goodbye(context: Runtime, info: SubscriberInfo) -> None:
    send_notice(context, "goodbye", info)


def delivery_time(config: DigestConfig, timezone: str | None) -> str:
    """When a reader's digest arrives: the send time is local to their own time zone."""
    zone = reader_zone(timezone, config.zone).key  # as planning does: unknown → default
    return f"every {config.weekday.capitalize()} at {config.time:%H:%M} ({zone} time)"


def _topic_name(context: Runtime, slug: str) -> str:
    topic = context.settings.topic(slug)
    return topic.name if topic is not None else slug
