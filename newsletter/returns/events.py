"""A bounce, complaint or unsubscribe as a parser or webhook reports it (pure data)."""

from __future__ import annotations

from dataclasses import dataclass

from newsletter.store.statuses import MailEventKind, MailEventSource


@dataclass(frozen=True)
class ReturnEvent:
    """What came back, and every clue to the message it is about, best first:
    `delivery_id` (signed into the VERP envelope sender, or the `return_path` that
    carries it), `message_id` (echoed by a webhook), `subscriber_id` (signed into the
    unsubscribe address), `email`."""

    kind: MailEventKind
    source: MailEventSource
    delivery_id: int | None = None
    # The envelope sender a relay reports the message had: our signed VERP address
    # names the delivery (record.apply verifies it; the parsers know no key).
    return_path: str | None = None
    message_id: str | None = None
    subscriber_id: int | None = None
    email: str | None = None
    detail: str = ""  # the status code and diagnostic, for the admin
    # The provider's event id (or the report's own Message-ID): the same report
    # delivered twice is recorded once.
    key: str | None = None
