"""The relays' bounce and complaint webhooks: one module per provider, each a pure
`verify` (raising `Rejected` on a missing or wrong signature) and `events(payload)`
turning the provider's documented payload into `ReturnEvent`s. `receive.py` ties
them to the configuration and to `record.apply`.

A webhook is trusted only through its signature (or Postmark's basic credentials):
an endpoint that believed unsigned reports would let anyone unsubscribe anyone.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from newsletter.errors import InvalidInput, NewsletterError

PROVIDERS = ("ses", "postmark", "mailgun", "sendgrid")
KEY_MAX = 200  # mail_events.event_key


class Rejected(NewsletterError):
    """The request is not provably from the relay: nothing of it is believed (403)."""


class Unauthorized(Rejected):
    """Missing or wrong HTTP basic credentials (401, with a challenge)."""


class Malformed(InvalidInput):
    """The body is not the provider's JSON (400)."""


class Unavailable(NewsletterError):
    """A signature could not be checked for want of a resource we fetch (503, so the
    relay tries again later), or a subscription could not be confirmed."""


def parse_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise Malformed("the body is not JSON") from None


def mapping(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Malformed(f"{what} is not a JSON object")
    return value


def text(value: Any) -> str:
    """A payload field as text: relays send numbers where one expects strings."""
    if value is None or isinstance(value, dict | list):
        return ""
    return str(value)


def event_key(provider: str, *parts: object) -> str:
    """A report's key in mail_events: the provider's ids of the event, so a webhook the
    relay sends again is recorded once. Long keys are hashed to fit the column."""
    key = ":".join([provider, *(text(part) for part in parts)])
    if len(key) <= KEY_MAX:
        return key
    return f"{provider}:sha256:{hashlib.sha256(key.encode()).hexdigest()}"


def detail(*parts: object) -> str:
    """The admin's one-line summary of what the relay said."""
    return " ".join(" ".join(text(part).split()) for part in parts if text(part).strip())[:1000]
