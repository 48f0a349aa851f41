"""Abuse reports (ARF, RFC 5965) read into complaint ReturnEvents (pure).

A mailbox provider's feedback loop sends one when a reader marks a digest as spam:
multipart/report; report-type=feedback-report, with a machine-readable
message/feedback-report part and the original message (or its headers). Which
delivery it is about comes from that original: see newsletter.returns.original.
"""

from __future__ import annotations

from email.message import Message
from email.parser import HeaderParser

from newsletter.mail.verp import ReturnAddresses
from newsletter.returns.events import ReturnEvent
from newsletter.returns.original import (
    Clues,
    clues_of,
    first_address,
    header_text,
    original_headers,
    report_key,
)
from newsletter.store.statuses import MailEventKind, MailEventSource

# Feedback types that mean "this reader does not want this mail" (RFC 5965 and
# 6650); `not-spam`, `auth-failure` and `virus` say nothing about the reader's wish.
COMPLAINT_TYPES = frozenset({"abuse", "fraud", "other"})


def is_arf(report: Message) -> bool:
    return (
        report.get_content_type() == "multipart/report"
        and str(report.get_param("report-type", "")).lower() == "feedback-report"
    )


def feedback_fields(report: Message) -> Message | None:
    """The message/feedback-report part's fields, however the parser left them."""
    for part in report.walk():
        if part.get_content_type() != "message/feedback-report":
            continue
        payload = part.get_payload()
        if isinstance(payload, list) and payload and isinstance(payload[0], Message):
            return payload[0]
        if isinstance(payload, str):
            return HeaderParser().parsestr(payload)
    return None


def complaint_events(
    report: Message,
    *,
    returns: ReturnAddresses,
    secret_key: str,
    fallback_key: str,
    delivery_id: int | None = None,
) -> list[ReturnEvent]:
    """The complaint an abuse report makes, or [] when it is no complaint (another
    feedback type) or names no reader at all. `delivery_id`: from the VERP address
    the report was sent to (feedback loops often answer the Return-Path)."""
    fields = feedback_fields(report)
    kind = header_text(fields, "Feedback-Type").lower() if fields is not None else "abuse"
    if kind not in COMPLAINT_TYPES:
        return []
    quoted = original_headers(report)
    clues = clues_of(quoted, returns, secret_key) if quoted is not None else Clues()
    if delivery_id is not None:
        clues = Clues(delivery_id, clues.subscriber_id, clues.message_id, clues.email)
    email = first_address(header_text(fields, "Original-Rcpt-To")) if fields else None
    email = email or clues.email
    if (
        clues.delivery_id is None
        and clues.subscriber_id is None
        and not (clues.message_id or email)
    ):
        return []
    reporter = header_text(fields, "User-Agent") if fields is not None else ""
    detail = " ".join(p for p in (f"feedback-type {kind}", reporter) if p)
    about = email or clues.message_id or str(clues.delivery_id or clues.subscriber_id)
    return [
        ReturnEvent(
            kind=MailEventKind.COMPLAINT,
            source=MailEventSource.INBOUND,
            delivery_id=clues.delivery_id,
            message_id=clues.message_id,
            subscriber_id=clues.subscriber_id,
            email=email,
            detail=detail,
            key=report_key(report, about, fallback_key),
        )
    ]
