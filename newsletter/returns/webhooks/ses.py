"""Amazon SES notifications, delivered by SNS to an HTTPS subscription.

SNS signs each message: SignatureVersion 1 is SHA1withRSA, 2 is SHA256withRSA, over
"Name\\nvalue\\n" for a fixed list of fields in byte order (Notification: Message,
MessageId, Subject if present, Timestamp, TopicArn, Type; the subscription messages:
Message, MessageId, SubscribeURL, Timestamp, Token, TopicArn, Type). The certificate
comes from SigningCertURL, which must be https on an `sns.<region>.amazonaws.com`
host: a message pointing at any other certificate could have signed itself.

A SubscriptionConfirmation, once verified and of a configured topic, is confirmed by
fetching its SubscribeURL (same host rule). A Notification's Message is SES's JSON:
notificationType (or eventType, with event publishing) Bounce or Complaint; the mail
object's `headers` (when header inclusion is on) carry our Message-ID, `messageId` is
SES's own id.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from newsletter.returns.events import ReturnEvent
from newsletter.returns.webhooks import (
    Malformed,
    Rejected,
    Unavailable,
    detail,
    event_key,
    mapping,
    text,
)
from newsletter.store.statuses import MailEventKind, MailEventSource

Fetch = Callable[[str], bytes]
SNS_HOST = re.compile(r"^sns\.[a-z0-9-]+\.amazonaws\.com$")
NOTIFICATION_FIELDS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
SUBSCRIPTION_FIELDS = (
    "Message",
    "MessageId",
    "SubscribeURL",
    "Timestamp",
    "Token",
    "TopicArn",
    "Type",
)
SIGNED_FIELDS = {
    "Notification": NOTIFICATION_FIELDS,
    "SubscriptionConfirmation": SUBSCRIPTION_FIELDS,
    "UnsubscribeConfirmation": SUBSCRIPTION_FIELDS,
}
HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}
FETCH_TIMEOUT = 10.0
MAX_FETCH_BYTES = 64 * 1024  # a PEM certificate is ~2 KB, a confirmation answer less


def https_get(url: str) -> bytes:
    """The network edge: GET an SNS URL (already checked), no redirects followed."""
    try:
        with (
            httpx.Client(timeout=FETCH_TIMEOUT, follow_redirects=False) as client,
            client.stream("GET", url) as response,
        ):
            if response.status_code != 200:
                raise Unavailable(f"{url}: HTTP {response.status_code}")
            body = bytearray()
            for chunk in response.iter_bytes():
                body.extend(chunk)
                if len(body) > MAX_FETCH_BYTES:
                    raise Unavailable(f"{url}: answer too large")
            return bytes(body)
    except httpx.HTTPError as exc:
        raise Unavailable(f"{url}: {type(exc).__name__}") from None


def sns_url(url: str, what: str) -> str:
    """`url` when it is https on an SNS host (no credentials, no port); else Rejected."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise Rejected(f"{what} is not a URL") from None
    host = parts.hostname or ""
    if parts.scheme != "https" or port not in (None, 443) or parts.username is not None:
        raise Rejected(f"{what} is not a plain https URL")
    if not SNS_HOST.match(host) or parts.netloc.lower() not in (host, f"{host}:443"):
        raise Rejected(f"{what} is not on an sns.<region>.amazonaws.com host")
    return url


class Certificates:
    """SNS signing certificates by URL, fetched once through `fetch`."""

    def __init__(self, fetch: Fetch = https_get, limit: int = 32) -> None:
        self._fetch = fetch
        self._limit = limit
        self._certificates: dict[str, x509.Certificate] = {}
        self._lock = threading.Lock()

    def key(self, url: str, now: datetime) -> rsa.RSAPublicKey:
        certificate = self._certificate(sns_url(url, "SigningCertURL"))
        if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
            raise Rejected("the SNS signing certificate is not valid now")
        key = certificate.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise Rejected("the SNS signing certificate has no RSA key")
        return key

    def _certificate(self, url: str) -> x509.Certificate:
        with self._lock:
            cached = self._certificates.get(url)
        if cached is not None:
            return cached
        if not urlsplit(url).path.lower().endswith(".pem"):
            raise Rejected("SigningCertURL is not a certificate")
        try:
            certificate = x509.load_pem_x509_certificate(self._fetch(url))
        except ValueError:
            raise Unavailable("the SNS signing certificate cannot be read") from None
        with self._lock:
            if len(self._certificates) >= self._limit:  # SNS rotates rarely: a bound, no LRU
                self._certificates.clear()
            self._certificates[url] = certificate
        return certificate


def string_to_sign(message: dict[str, Any]) -> bytes:
    fields = SIGNED_FIELDS.get(text(message.get("Type")))
    if fields is None:
        raise Malformed(f"unknown SNS message type {text(message.get('Type'))!r}")
    lines = []
    for name in fields:
        value = message.get(name)
        if value is None and name == "Subject":
            continue
        if not isinstance(value, str):
            raise Rejected(f"the SNS message has no {name}")
        lines.append(f"{name}\n{value}\n")
    return "".join(lines).encode()


def verify(
    message: Any,
    topics: Sequence[str],
    certificates: Certificates,
    now: datetime | None = None,
) -> None:
    """Raise Rejected unless SNS signed this message for one of `topics`."""
    message = mapping(message, "the SNS message")
    if text(message.get("TopicArn")) not in topics:
        raise Rejected("the SNS topic is not one of bounces.webhooks.ses_topic_arns")
    algorithm = HASHES.get(text(message.get("SignatureVersion")))
    if algorithm is None:
        raise Rejected("unknown SNS SignatureVersion")
    signed = string_to_sign(message)
    try:
        signature = base64.b64decode(text(message.get("Signature")), validate=True)
    except (binascii.Error, ValueError):
        raise Rejected("unreadable SNS signature") from None
    key = certificates.key(text(message.get("SigningCertURL")), now or datetime.now(UTC))
    try:
        key.verify(signature, signed, padding.PKCS1v15(), algorithm())
    except InvalidSignature:
        raise Rejected("wrong SNS signature") from None


def subscribe_url(message: dict[str, Any]) -> str:
    return sns_url(text(message.get("SubscribeURL")), "SubscribeURL")


def events(message: dict[str, Any]) -> list[ReturnEvent]:
    """The bounces and complaints of a verified Notification."""
    try:
        notice = json.loads(text(message.get("Message")))
    except ValueError:
        return []  # SNS's own notes, such as "Successfully validated SNS topic …"
    if not isinstance(notice, dict):
        return []
    kind_name = text(notice.get("notificationType") or notice.get("eventType"))
    mail = notice.get("mail")
    mail = mail if isinstance(mail, dict) else {}
    ses_id = text(mail.get("messageId"))
    ours = _our_message_id(mail)
    if kind_name == "Bounce":
        report = mapping(notice.get("bounce"), "bounce")
        recipients = report.get("bouncedRecipients")
        bounce_type = text(report.get("bounceType"))
        # Transient and Undetermined: SES could not tell the address is gone for good.
        hard = bounce_type == "Permanent"
        kind = MailEventKind.HARD_BOUNCE if hard else MailEventKind.SOFT_BOUNCE
        heading = f"{bounce_type}/{text(report.get('bounceSubType'))}:"
    elif kind_name == "Complaint":
        report = mapping(notice.get("complaint"), "complaint")
        if text(report.get("complaintFeedbackType")) == "not-spam":
            return []  # the recipient's provider says it is *not* a complaint
        recipients = report.get("complainedRecipients")
        kind = MailEventKind.COMPLAINT
        heading = f"complaint/{text(report.get('complaintFeedbackType')) or 'unspecified'}:"
    else:
        return []  # deliveries, sends, opens, clicks
    # feedbackId names one bounce or complaint; SNS's MessageId stands in without it.
    report_id = text(report.get("feedbackId")) or text(message.get("MessageId"))
    found = []
    for recipient in recipients if isinstance(recipients, list) else []:
        if not isinstance(recipient, dict) or not text(recipient.get("emailAddress")):
            continue
        email = text(recipient["emailAddress"])
        found.append(
            ReturnEvent(
                kind=kind,
                source=MailEventSource.SES,
                message_id=ours,
                return_path=text(mail.get("source")) or None,
                email=email,
                detail=detail(heading, recipient.get("status"), recipient.get("diagnosticCode")),
                key=event_key("ses", ses_id, report_id, email.lower()),
            )
        )
    return found


def _our_message_id(mail: dict[str, Any]) -> str | None:
    """Our Message-ID from the original headers SES echoes (header inclusion on)."""
    headers = mail.get("headers")
    for header in headers if isinstance(headers, list) else []:
        if isinstance(header, dict) and text(header.get("name")).lower() == "message-id":
            return text(header.get("value")).strip() or None
    common = mail.get("commonHeaders")
    if isinstance(common, dict) and text(common.get("messageId")):
        return text(common.get("messageId")).strip()
    return None
