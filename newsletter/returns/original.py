"""The clues a report carries about the message it is about (pure).

A bounce or an abuse report usually quotes our original message, whole
(message/rfc822) or its headers only (text/rfc822-headers). Its headers name the
delivery in several ways, best first: the VERP envelope sender the receiver wrote
as Return-Path (signed), the List-Unsubscribe mailto (signed, names the reader), the
Message-ID, and the To address. Only the signed ones are trusted as they are; the
others are matched against what was sent by `record.find_target`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesHeaderParser, HeaderParser

from newsletter.errors import InvalidToken
from newsletter.mail.verp import UNSUBSCRIBE_LOCAL, ReturnAddresses, split_address
from newsletter.tokens import AddressPurpose, read_address_token

_MAILTO = re.compile(r"<mailto:([^>?]+)[^>]*>", re.IGNORECASE)
_ANGLED = re.compile(r"<([^<>\s]+@[^<>\s]+)>")
_BARE = re.compile(r"[^\s<>,;:\"]+@[^\s<>,;:\"]+")


@dataclass(frozen=True)
class Clues:
    delivery_id: int | None = None
    subscriber_id: int | None = None
    message_id: str | None = None
    email: str | None = None


def header_text(message: Message, name: str) -> str:
    """A header as plain text, whatever the parser made of it ('' when absent)."""
    value = message.get(name)
    return " ".join(str(value).split()) if value is not None else ""


def first_address(text: str) -> str | None:
    """The first address in a header value or report field (`rfc822; a@b`, `<a@b>`)."""
    angled = _ANGLED.search(text)
    if angled:
        return angled[1]
    bare = _BARE.search(text.rpartition(";")[2])  # after an `rfc822;` type, if any
    return bare[0] if bare else None


def original_headers(report: Message) -> Message | None:
    """The headers of the message a report quotes, or None if it quotes none."""
    for part in report.walk():
        kind = part.get_content_type()
        if kind == "message/rfc822":
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                return payload[0]
        elif kind == "text/rfc822-headers":
            raw = part.get_payload(decode=True)
            if isinstance(raw, bytes):
                return BytesHeaderParser().parsebytes(raw)
            return HeaderParser().parsestr(str(part.get_payload()))
    return None


def clues_of(headers: Message, returns: ReturnAddresses, secret_key: str) -> Clues:
    """What the quoted headers say about the delivery; tokens that do not verify are
    ignored (a forger gains nothing, the other clues still count)."""
    return_path = first_address(header_text(headers, "Return-Path"))
    delivery_id = verp_delivery(return_path, returns, secret_key) if return_path else None
    subscriber_id = None
    for address in _MAILTO.findall(header_text(headers, "List-Unsubscribe")):
        tagged = split_address(address)
        if tagged and tagged.tag and tagged.local == UNSUBSCRIBE_LOCAL:
            subscriber_id = signed_id(secret_key, "unsubscribe-mail", tagged.tag)
    message_id = header_text(headers, "Message-ID") or None
    return Clues(delivery_id, subscriber_id, message_id, first_address(header_text(headers, "To")))


def verp_delivery(address: str, returns: ReturnAddresses, secret_key: str) -> int | None:
    """The delivery signed into one of our VERP envelope senders; None for any other
    address or a token that does not verify."""
    tagged = split_address(address)
    if tagged and tagged.tag and tagged.local == returns.bounce_local:
        return signed_id(secret_key, "bounce", tagged.tag)
    return None


def signed_id(secret_key: str, purpose: AddressPurpose, token: str) -> int | None:
    """The id signed into an address token, or None when it does not verify."""
    try:
        return read_address_token(secret_key, purpose, token)
    except InvalidToken:
        return None


def report_key(report: Message, recipient: str, fallback: str) -> str:
    """The key that makes one report count once: its own Message-ID and the recipient
    it is about; `fallback` (a digest of the raw bytes) when it has no Message-ID."""
    own = header_text(report, "Message-ID") or fallback
    key = f"inbound {own} {recipient.lower()}"
    if len(key) <= 200:  # the column's width
        return key
    return key[:150] + " " + hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:40]
