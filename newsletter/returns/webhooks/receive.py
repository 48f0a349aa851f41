"""One webhook request, from raw bytes to recorded events: check the provider is
configured, verify its signature over the bytes received, parse, `record.apply`.

Nothing is recorded unless the whole request verifies and parses. Recipients who are
not our readers are counted and ignored, so the relay is answered 200 and does not
retry them forever.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from newsletter.config.mail import WebhooksConfig
from newsletter.returns import record
from newsletter.returns.events import ReturnEvent
from newsletter.returns.webhooks import PROVIDERS, mailgun, postmark, sendgrid, ses
from newsletter.returns.webhooks import parse_json as parse
from newsletter.runtime import Runtime

log = logging.getLogger("newsletter.returns.webhooks")


@dataclass(frozen=True)
class Summary:
    """What a webhook request did: the relay's answer and the admin's log line."""

    provider: str
    events: int = 0
    recorded: int = 0
    duplicates: int = 0  # reports seen before (the relay sent them again)
    unknown: int = 0  # recipients who are not our readers: ignored
    confirmed: bool = False  # an SNS subscription was confirmed

    def as_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "events": self.events,
            "recorded": self.recorded,
            "duplicates": self.duplicates,
            "unknown": self.unknown,
            **({"confirmed": True} if self.confirmed else {}),
        }


class Relays:
    """The webhooks of the relays configured in `bounces.webhooks`, with what they
    remember between requests: SNS certificates and Mailgun's used tokens."""

    def __init__(
        self,
        context: Runtime,
        fetch: ses.Fetch = ses.https_get,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.context = context
        self.config: WebhooksConfig = context.settings.bounces.webhooks
        self.certificates = ses.Certificates(fetch)
        self.fetch = fetch
        self.tokens = mailgun.Tokens()
        self.clock = clock

    def configured(self, provider: str) -> bool:
        config = self.config
        return provider in PROVIDERS and bool(
            {
                "ses": config.ses_topic_arns,
                "postmark": config.postmark_password and config.postmark_username,
                "mailgun": config.mailgun_signing_key,
                "sendgrid": config.sendgrid_public_key,
            }[provider]
        )

    def receive(self, provider: str, body: bytes, headers: Mapping[str, str]) -> Summary:
        """Verify and apply one request; raises Rejected, Malformed or Unavailable.

        `headers` are keyed in lower case."""
        handle = {
            "ses": self._ses,
            "postmark": self._postmark,
            "mailgun": self._mailgun,
            "sendgrid": self._sendgrid,
        }[provider]
        return handle(body, headers)

    def _apply(self, provider: str, events: list[ReturnEvent]) -> Summary:
        applied = record.apply(self.context, events) if events else []
        summary = Summary(
            provider,
            events=len(applied),
            recorded=sum(1 for a in applied if a.recorded),
            duplicates=sum(1 for a in applied if a.target is not None and not a.recorded),
            unknown=sum(1 for a in applied if a.target is None),
        )
        if applied:
            log.info("%s webhook: %s", provider, summary.as_dict())
        return summary

    def _ses(self, body: bytes, headers: Mapping[str, str]) -> Summary:
        message = parse(body)
        ses.verify(message, self.config.ses_topic_arns, self.certificates)
        kind = message["Type"]
        if kind == "SubscriptionConfirmation":
            url = ses.subscribe_url(message)
            self.fetch(url)
            log.info("confirmed the SNS subscription to %s", message["TopicArn"])
            return Summary("ses", confirmed=True)
        if kind == "UnsubscribeConfirmation":
            log.warning("SNS says this endpoint left topic %s", message["TopicArn"])
            return Summary("ses")
        return self._apply("ses", ses.events(message))

    def _postmark(self, body: bytes, headers: Mapping[str, str]) -> Summary:
        username, password = self.config.postmark_username, self.config.postmark_password
        assert username is not None and password is not None  # see configured()
        postmark.verify(headers.get("authorization"), username, password)
        return self._apply("postmark", postmark.events(parse(body)))

    def _mailgun(self, body: bytes, headers: Mapping[str, str]) -> Summary:
        key = self.config.mailgun_signing_key
        assert key is not None  # see configured()
        payload = parse(body)
        now = self.clock()
        mailgun.verify(payload, key, self.tokens, now)
        try:
            return self._apply("mailgun", mailgun.events(payload))
        except Exception:
            self.tokens.release(mailgun.signature_token(payload))
            raise

    def _sendgrid(self, body: bytes, headers: Mapping[str, str]) -> Summary:
        key = self.config.sendgrid_public_key
        assert key is not None  # see configured()
        signature = headers.get(sendgrid.SIGNATURE_HEADER)
        sendgrid.verify(body, signature, headers.get(sendgrid.TIMESTAMP_HEADER), key)
        return self._apply("sendgrid", sendgrid.events(parse(body)))
