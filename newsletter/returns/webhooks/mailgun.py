"""Mailgun's webhooks (JSON: `{"signature": {...}, "event-data": {...}}`).

The signature is HMAC-SHA256(signing key, timestamp + token), hex. It covers only the
timestamp and the token, not the event: whoever saw one signed request could attach
its signature to an event of their making. So a signature is good for 15 minutes and
for one request (`Tokens` remembers the tokens used).

Events: "failed" with `severity` permanent (hard) or temporary (soft), "complained".
`event-data.message.headers.message-id` is our Message-ID without its angle brackets.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from typing import Any

from newsletter.returns.events import ReturnEvent
from newsletter.returns.webhooks import Malformed, Rejected, detail, event_key, mapping, text
from newsletter.store.statuses import MailEventKind, MailEventSource

MAX_AGE_SECONDS = 15 * 60
# A "failed" event of an address Mailgun did not even try because it unsubscribed or
# complained before: not a bounce (the reader has already left).
NOT_BOUNCES = frozenset({"suppress-unsubscribe", "suppress-complaint"})


class Tokens:
    """The tokens of the signatures accepted in the last MAX_AGE_SECONDS (older ones
    are refused as stale anyway). Per process: each web worker keeps its own."""

    def __init__(self) -> None:
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def claim(self, token: str, now: float) -> bool:
        """Take the token for this request; False when another request had it."""
        with self._lock:
            if token in self._seen:
                return False
            self._seen[token] = now
            cutoff = now - 2 * MAX_AGE_SECONDS
            for old in [t for t, at in self._seen.items() if at < cutoff]:
                del self._seen[old]
            return True

    def release(self, token: str) -> None:
        """A request that could not be applied: the relay may send it again."""
        with self._lock:
            self._seen.pop(token, None)


def signature_token(payload: Any) -> str:
    block = mapping(mapping(payload, "the Mailgun webhook").get("signature"), "signature")
    return text(block.get("token"))


def verify(payload: Any, signing_key: str, tokens: Tokens, now: float | None = None) -> None:
    """Raise Rejected unless the signature block is Mailgun's, fresh and unused; the
    token is then claimed (see `Tokens.release`)."""
    body = mapping(payload, "the Mailgun webhook")
    block = body.get("signature")
    if not isinstance(block, dict):
        raise Rejected("no signature")
    timestamp, token = text(block.get("timestamp")), text(block.get("token"))
    signature = text(block.get("signature"))
    if not (timestamp and token and signature):
        raise Rejected("incomplete signature")
    expected = hmac.new(
        signing_key.encode(), (timestamp + token).encode(), hashlib.sha256
    ).hexdigest()
    if not hmac.compare_digest(expected.encode(), signature.lower().encode()):
        raise Rejected("wrong signature")
    try:
        signed_at = float(timestamp)
    except ValueError:
        raise Rejected("unreadable signature timestamp") from None
    now = time.time() if now is None else now
    if abs(now - signed_at) > MAX_AGE_SECONDS:
        raise Rejected("stale signature timestamp")
    if not tokens.claim(token, now):
        raise Rejected("signature token used before")


def events(payload: Any) -> list[ReturnEvent]:
    data = mapping(mapping(payload, "the Mailgun webhook").get("event-data"), "event-data")
    name = text(data.get("event"))
    severity = text(data.get("severity"))
    if name == "complained":
        kind = MailEventKind.COMPLAINT
    elif name == "failed" and severity == "permanent":
        if text(data.get("reason")) in NOT_BOUNCES:
            return []
        kind = MailEventKind.HARD_BOUNCE
    elif name == "failed" and severity == "temporary":
        kind = MailEventKind.SOFT_BOUNCE
    elif name == "failed":
        raise Malformed(f"a failed event with severity {severity!r}")
    else:
        return []  # delivered, opened, clicked, …
    message = data.get("message")
    headers = message.get("headers") if isinstance(message, dict) else None
    message_id = text(headers.get("message-id")) if isinstance(headers, dict) else ""
    status = data.get("delivery-status")
    status = status if isinstance(status, dict) else {}
    recipient = text(data.get("recipient"))
    if not (recipient or message_id):
        return []
    return [
        ReturnEvent(
            kind=kind,
            source=MailEventSource.MAILGUN,
            message_id=f"<{message_id.strip('<>')}>" if message_id else None,
            return_path=_sender(data),
            email=recipient or None,
            detail=detail(
                f"{name} ({severity or 'complaint'}):",
                status.get("code"),
                status.get("message") or status.get("description") or data.get("reason"),
            ),
            key=_key(payload, data, recipient),
        )
    ]


def _key(payload: Any, data: dict[str, Any], recipient: str) -> str:
    """event-data.id is unique only within a day: with the event's own timestamp it names
    one event for good, across the relay's retries. Without an id, the signature's token."""
    if text(data.get("id")):
        return event_key("mailgun", data.get("id"), data.get("timestamp"), recipient)
    return event_key("mailgun", "token", signature_token(payload))


def _sender(data: dict[str, Any]) -> str | None:
    """The envelope sender Mailgun used: our VERP address, naming the delivery."""
    envelope = data.get("envelope")
    return (text(envelope.get("sender")) or None) if isinstance(envelope, dict) else None
