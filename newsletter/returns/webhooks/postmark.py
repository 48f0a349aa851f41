"""Postmark's bounce and spam complaint webhooks.

Postmark signs nothing; its webhook URL carries HTTP basic credentials
(`https://user:password@host/webhooks/postmark`), checked here in constant time.

A payload is one JSON object per event: `RecordType` "Bounce" (the kind in `Type`:
HardBounce, SoftBounce, Transient, …) or "SpamComplaint", with `ID` (the bounce id),
`Email`, `MessageID` (Postmark's own id, not the Message-ID header we set) and
`Details` (the receiving server's answer).
"""

from __future__ import annotations

import base64
import binascii
import hmac
from typing import Any

from newsletter.returns.events import ReturnEvent
from newsletter.returns.webhooks import Unauthorized, detail, event_key, mapping, text
from newsletter.store.statuses import MailEventKind, MailEventSource

# Bounce `Type`s that say the address does not take mail.
HARD = frozenset({"HardBounce", "BadEmailAddress"})
# A delivery that failed this time (full mailbox, DNS, a block or filter): recorded for
# the rates, never counted toward bounce_after. Other types (AutoResponder,
# AddressChange, OpenRelayTest, ManuallyDeactivated, …) are not about delivery.
SOFT = frozenset(
    {
        "SoftBounce",
        "Transient",
        "DnsError",
        "Blocked",
        "SpamNotification",
        "VirusNotification",
        "DMARCPolicy",
        "Unknown",
    }
)


def verify(authorization: str | None, username: str, password: str) -> None:
    """Raise Unauthorized unless the Authorization header carries these credentials."""
    scheme, _, encoded = (authorization or "").partition(" ")
    if scheme.lower() != "basic" or not encoded:
        raise Unauthorized("no basic credentials")
    try:
        given = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise Unauthorized("unreadable basic credentials") from None
    user, colon, secret = given.partition(b":")
    # Both compared whatever the first gives: the time taken says nothing of either.
    user_ok = hmac.compare_digest(user, username.encode())
    secret_ok = hmac.compare_digest(secret, password.encode())
    if not (colon and user_ok and secret_ok):
        raise Unauthorized("wrong basic credentials")


def events(payload: Any) -> list[ReturnEvent]:
    record = mapping(payload, "the Postmark webhook")
    record_type = text(record.get("RecordType"))
    bounce_type = text(record.get("Type"))
    if record_type == "SpamComplaint":
        kind = MailEventKind.COMPLAINT
    elif record_type == "Bounce" and bounce_type in HARD:
        kind = MailEventKind.HARD_BOUNCE
    elif record_type == "Bounce" and bounce_type in SOFT:
        kind = MailEventKind.SOFT_BOUNCE
    else:
        return []  # deliveries, opens, clicks, auto-replies: nothing to act on
    email = text(record.get("Email"))
    if not email:
        return []
    bounce_id = text(record.get("ID"))
    key = (
        event_key("postmark", bounce_id)
        if bounce_id
        else event_key("postmark", record.get("MessageID"), record_type, bounce_type, email)
    )
    return [
        ReturnEvent(
            kind=kind,
            source=MailEventSource.POSTMARK,
            email=email,
            detail=detail(f"{bounce_type or record_type}:", record.get("Details")),
            key=key,
        )
    ]
