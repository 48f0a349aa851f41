"""SendGrid's Signed Event Webhook: a JSON array of events per request.

SendGrid signs the `X-Twilio-Email-Event-Webhook-Timestamp` header followed by the raw
body with ECDSA P-256 / SHA-256 and sends the DER signature, base64, in
`X-Twilio-Email-Event-Webhook-Signature`; the verification key is shown (base64 DER)
where the webhook is set up.

The signature covers the whole body, so a replayed request can only repeat events
already recorded (each has its `sg_event_id`): no freshness window is needed, and
none is imposed on SendGrid's retries, which go on for up to three days.

Events: "bounce" (`type` "bounce": hard, "blocked": soft), "dropped" (`reason`
"Bounced Address": hard, SendGrid no longer tries the address), "spamreport".
"""

from __future__ import annotations

import base64
import binascii
from functools import lru_cache
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key

from newsletter.returns.events import ReturnEvent
from newsletter.returns.webhooks import Malformed, Rejected, detail, event_key, text
from newsletter.store.statuses import MailEventKind, MailEventSource

SIGNATURE_HEADER = "x-twilio-email-event-webhook-signature"
TIMESTAMP_HEADER = "x-twilio-email-event-webhook-timestamp"


@lru_cache(maxsize=4)
def public_key(encoded: str) -> ec.EllipticCurvePublicKey:
    """The verification key as configured (config validation already checked it)."""
    try:
        key = load_der_public_key(base64.b64decode("".join(encoded.split()), validate=True))
    except (ValueError, UnsupportedAlgorithm):
        raise ValueError("bounces.webhooks.sendgrid_public_key is not a public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError("bounces.webhooks.sendgrid_public_key is not an ECDSA key")
    return key


def verify(body: bytes, signature: str | None, timestamp: str | None, key: str) -> None:
    """Raise Rejected unless SendGrid signed this timestamp and these exact bytes."""
    if not signature or not timestamp:
        raise Rejected("no SendGrid signature headers")
    try:
        der = base64.b64decode(signature.strip(), validate=True)
        public_key(key).verify(der, timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except (binascii.Error, ValueError, InvalidSignature):
        raise Rejected("wrong SendGrid signature") from None


def events(payload: Any) -> list[ReturnEvent]:
    if not isinstance(payload, list):
        raise Malformed("the SendGrid webhook is not a JSON array")
    found = []
    for item in payload:
        if not isinstance(item, dict):
            raise Malformed("a SendGrid event is not a JSON object")
        event = _event(item)
        if event is not None:
            found.append(event)
    return found


def _kind(item: dict[str, Any]) -> MailEventKind | None:
    name = text(item.get("event"))
    if name == "spamreport":
        return MailEventKind.COMPLAINT
    if name == "bounce":
        blocked = text(item.get("type")) == "blocked"
        return MailEventKind.SOFT_BOUNCE if blocked else MailEventKind.HARD_BOUNCE
    if name == "dropped" and text(item.get("reason")) == "Bounced Address":
        return MailEventKind.HARD_BOUNCE
    return None  # processed, delivered, deferred, opens, clicks, other drops


def _event(item: dict[str, Any]) -> ReturnEvent | None:
    kind = _kind(item)
    email = text(item.get("email"))
    if kind is None or not email:
        return None
    event_id = text(item.get("sg_event_id"))
    key = (
        event_key("sendgrid", event_id)
        if event_id
        else event_key(
            "sendgrid", item.get("sg_message_id"), item.get("event"), email, item.get("timestamp")
        )
    )
    # smtp-id is the message's Message-ID header as SendGrid received it.
    smtp_id = text(item.get("smtp-id"))
    return ReturnEvent(
        kind=kind,
        source=MailEventSource.SENDGRID,
        message_id=smtp_id or None,
        email=email,
        detail=detail(
            f"{item.get('event')}{'/' + text(item.get('type')) if item.get('type') else ''}:",
            item.get("status"),
            item.get("reason"),
        ),
        key=key,
    )
