"""Transactional messages sent at once: confirm (double opt-in), welcome, goodbye.

One message over the same SMTP transport as the digests; an SMTP failure becomes a
one-line DeliveryError for the CLI or the web app to show.
"""

from __future__ import annotations

from newsletter import db
from newsletter.compose import Composer, NoticeKind
from newsletter.context import Context
from newsletter.errors import DeliveryError
from newsletter.mail.smtp import SendError, SmtpPool
from newsletter.models import utcnow
from newsletter.store.subscribers import mark_confirmation_sent
from newsletter.subscriptions import SubscriberInfo


def send_notice(context: Context, kind: NoticeKind, info: SubscriberInfo) -> str:
    """Compose and send one notice now; returns its Message-ID."""
    composer = Composer(context.settings, context.secret_key)
    topics = [_topic_name(context, slug) for slug in info.topics]
    message = composer.notice(kind, subscriber_id=info.id, email=info.email, topics=topics)
    pool = SmtpPool(context.settings.smtp, size=1)
    try:
        pool.send(message.sender, message.recipient, message.data)
    except SendError as exc:
        raise DeliveryError(f"could not send the {kind} email to {info.email}: {exc}") from None
    finally:
        pool.close()
    return message.message_id


def send_confirmation(context: Context, info: SubscriberInfo) -> None:
    send_notice(context, "confirm", info)
    with db.transaction(context.sessions) as session:
        mark_confirmation_sent(session, info.id, utcnow())


def send_welcome(context: Context, info: SubscriberInfo) -> None:
    send_notice(context, "welcome", info)


def send_goodbye(context: Context, info: SubscriberInfo) -> None:
    send_notice(context, "goodbye", info)


def _topic_name(context: Context, slug: str) -> str:
    topic = context.settings.topic(slug)
    return topic.name if topic is not None else slug
