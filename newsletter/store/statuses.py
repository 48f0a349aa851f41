"""The values a status (or kind) column may hold: enums the code compares and sets,
and CHECK constraints that make the database refuse any other value.

StrEnum members are the stored strings themselves: they compare equal to them, and
rows read back carry plain strings.
"""

from __future__ import annotations

from enum import StrEnum


class SubscriberStatus(StrEnum):
    PENDING = "pending"  # asked to subscribe, not confirmed yet
    ACTIVE = "active"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"  # too many hard bounces: never mailed again


class EditionStatus(StrEnum):
    SENDING = "sending"
    PAUSED = "paused"  # the failure breaker stopped it; `resume` sends again
    DONE = "done"


class DeliveryStatus(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"  # leased by a worker
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"  # the reader left (or paused) before it went out


class DeliveryKind(StrEnum):
    DIGEST = "digest"
    QUIET = "quiet"  # nothing matched: a short note instead of papers


# Deliveries still to send (queued, or leased and maybe given back).
OPEN_STATUSES = (DeliveryStatus.QUEUED, DeliveryStatus.SENDING)


def one_of(column: str, values: type[StrEnum]) -> str:
    """The SQL condition of a CHECK constraint: `column` holds one of these values."""
    listed = ", ".join(f"'{member.value}'" for member in values)
    return f"{column} IN ({listed})"


class Feeling(StrEnum):
    """How a reader feels about a paper they gave or marked (see store/examples.py)."""

    LIKE = "like"  # an example: "papers like these", or "More like this" from an email
    FEWER = "fewer"  # "Fewer like this": it and what is close to it are held back


class Origin(StrEnum):
    """Where a reader's mark on a paper came from."""

    GIVEN = "given"  # typed or uploaded on the subscribe or preferences page
    EMAIL = "email"  # a "More / Fewer like this" link in a digest
    ADMIN = "admin"  # `newsletter subscribe --paper` or `newsletter feedback`


class MailEventKind(StrEnum):
    """What came back from the mail system about a message (see store/returns.py)."""

    HARD_BOUNCE = "hard_bounce"  # the address does not take mail: counts toward bounce_after
    SOFT_BOUNCE = "soft_bounce"  # a mailbox full, a greylist: recorded, not counted
    COMPLAINT = "complaint"  # the reader reported it as spam: unsubscribed at once
    UNSUBSCRIBE = "unsubscribe"  # mail to the List-Unsubscribe mailto address


class MailEventSource(StrEnum):
    SMTP = "smtp"  # the relay refused it during the SMTP session
    INBOUND = "inbound"  # a DSN, ARF report or unsubscribe mail to `newsletter inbound`
    SES = "ses"
    POSTMARK = "postmark"
    MAILGUN = "mailgun"
    SENDGRID = "sendgrid"
