"""Delivery status notifications (bounces) read into ReturnEvents (pure).

RFC 3464 reports (multipart/report; report-type=delivery-status) are read field by
field: per recipient, `Action: failed` with a 5.x.x Status is a hard bounce; a 4.x.x
one, a full mailbox (5.2.2) or `Action: delayed` is a soft bounce; the Diagnostic-Code
is kept for the admin. Everything else (the bounce formats of old MTAs and of big
providers that predate or ignore the RFC) goes through Mailman's flufl.bounce
detectors, which name the addresses that failed for good and those that failed for now.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from email.message import Message

import flufl.bounce

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

# flufl.bounce logs every detector it runs at INFO: noise in the inbound log.
logging.getLogger("flufl.bounce").setLevel(logging.WARNING)


@dataclass(frozen=True)
class Failure:
    email: str
    hard: bool
    detail: str  # status and diagnostic, for the admin


def is_dsn(report: Message) -> bool:
    return (
        report.get_content_type() == "multipart/report"
        and str(report.get_param("report-type", "")).lower() == "delivery-status"
    )


def failures(report: Message) -> list[Failure]:
    """Every recipient the bounce says failed, RFC 3464 fields first, then the
    heuristics for the formats that have none. [] when it names no failure (a
    delivery report, a vacation reply, a warning naming nobody)."""
    found = _rfc3464(report) if is_dsn(report) else []
    return found or _heuristic(report)


def _rfc3464(report: Message) -> list[Failure]:
    found: list[Failure] = []
    for part in report.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        groups = part.get_payload()
        if not isinstance(groups, list):
            continue
        for fields in groups[1:]:  # the first group is about the message, not a recipient
            failure = _recipient(fields) if isinstance(fields, Message) else None
            if failure is not None:
                found.append(failure)
    return found


def _recipient(fields: Message) -> Failure | None:
    action = header_text(fields, "Action").lower()
    status = header_text(fields, "Status").split(" ")[0]
    recipient = first_address(header_text(fields, "Original-Recipient")) or first_address(
        header_text(fields, "Final-Recipient")
    )
    if recipient is None or action not in ("failed", "delayed"):
        return None  # delivered, relayed, expanded: not a failure
    # A failure without a status is taken as final: the MTA gave up on it. A full
    # mailbox (X.2.2) says nothing about the address: Gmail and others send it as 5.2.2
    # for a reader who will empty it, so it is soft whatever its class.
    hard = action == "failed" and not status.startswith("4") and status[1:] != ".2.2"
    diagnostic = header_text(fields, "Diagnostic-Code")
    detail = " ".join(p for p in (action, status, diagnostic) if p)
    return Failure(recipient, hard, detail)


def _heuristic(report: Message) -> list[Failure]:
    try:
        temporary, permanent = flufl.bounce.all_failures(report)
    except Exception:  # a detector choking on odd input names nothing, never crashes us
        return []
    subject = header_text(report, "Subject")[:200]
    found = [
        Failure(_text(address), True, f"failed (detected) {subject}".strip())
        for address in sorted(permanent)
    ]
    found += [
        Failure(_text(address), False, f"delayed (detected) {subject}".strip())
        for address in sorted(temporary - permanent)
    ]
    return found


def _text(address: bytes | str) -> str:
    if isinstance(address, bytes):
        return address.decode("utf-8", "replace")
    return address


def bounce_events(
    report: Message,
    *,
    delivery_id: int | None,
    returns: ReturnAddresses,
    secret_key: str,
    fallback_key: str,
) -> list[ReturnEvent]:
    """The events of one bounce. `delivery_id` comes from the VERP address it was
    sent to (already verified); without it, the original message the bounce quotes
    names the delivery if it can."""
    found = failures(report)
    if not found:
        return []
    quoted = original_headers(report)
    clues = clues_of(quoted, returns, secret_key) if quoted is not None else Clues()
    return [
        ReturnEvent(
            kind=MailEventKind.HARD_BOUNCE if failure.hard else MailEventKind.SOFT_BOUNCE,
            source=MailEventSource.INBOUND,
            # One failure of several in a report is about one delivery only when the
            # VERP address says so; several recipients come from a shared relay.
            delivery_id=delivery_id if delivery_id is not None else clues.delivery_id,
            message_id=clues.message_id if len(found) == 1 else None,
            email=failure.email,
            detail=failure.detail,
            key=report_key(report, failure.email, fallback_key),
        )
        for failure in found
    ]
