"""The config sections of mail: the relay, the sender, DKIM, the outbox, and where
bounces come back with the relay webhooks that are trusted.

A webhook is answered only when its provider's secret is set here: an endpoint that
accepts unsigned bounce reports would let anyone unsubscribe anyone.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ADDRESS = re.compile(r"^[^@\s+]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")
# arn:aws:sns:<region>:<account>:<topic>; a typo here would make every SES notice a 403.
SNS_TOPIC_ARN = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}$")


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SmtpConfig(Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8025, ge=1, le=65535)
    username: str | None = None
    password: str | None = None
    security: Literal["none", "starttls", "ssl"] = "none"
    timeout: float = Field(default=30.0, gt=0)
    connections: int = Field(default=4, ge=1, le=64)
    max_rate: float | None = Field(default=None, gt=0)


class SenderConfig(Section):
    from_address: str = "papers@example.org"
    from_name: str = "Trending Papers"
    reply_to: str | None = None

    @field_validator("from_name")
    @classmethod
    def _no_control_chars(cls, value: str) -> str:
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise ValueError("must not contain control characters (CR, LF, …)")
        return value


class DkimConfig(Section):
    domain: str
    selector: str
    private_key_path: Path


class DeliveryConfig(Section):
    batch_size: int = Field(default=100, ge=1, le=10_000)
    lease_seconds: int = Field(default=300, ge=5)
    max_attempts: int = Field(default=5, ge=1)
    retry_base_seconds: float = Field(default=60.0, ge=0)
    bounce_after: int = Field(default=3, ge=1)
    failure_threshold: float = Field(default=0.05, gt=0, le=1)
    failure_window: int = Field(default=500, ge=10)


class WebhooksConfig(Section):
    """Each relay's secret; a provider with none set gets 404 at /webhooks/<provider>."""

    # Amazon SES through SNS: the topic ARNs whose signed notifications are accepted.
    ses_topic_arns: tuple[str, ...] = ()
    # Postmark signs nothing: its webhook URL carries HTTP basic credentials.
    postmark_username: str | None = None
    postmark_password: str | None = Field(default=None, min_length=12)
    # Mailgun: the "HTTP webhook signing key" of the sending domain.
    mailgun_signing_key: str | None = Field(default=None, min_length=16)
    # SendGrid: the Signed Event Webhook's verification key (base64 DER, ECDSA P-256).
    sendgrid_public_key: str | None = None

    @field_validator("ses_topic_arns")
    @classmethod
    def _topic_arns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for arn in value:
            if not SNS_TOPIC_ARN.match(arn):
                raise ValueError(f"{arn!r} is not a topic ARN like arn:aws:sns:REGION:ACCOUNT:NAME")
        return value

    @field_validator("sendgrid_public_key")
    @classmethod
    def _verification_key(cls, value: str | None) -> str | None:
        if value is None:
            return value
        # Loaded only for a site that set the key: every command reads this config.
        from cryptography.exceptions import UnsupportedAlgorithm
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.serialization import load_der_public_key

        try:
            key = load_der_public_key(base64.b64decode("".join(value.split()), validate=True))
        except (ValueError, UnsupportedAlgorithm):
            key = None
        if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
            raise ValueError("must be the base64 ECDSA P-256 verification key SendGrid shows")
        return value

    @model_validator(mode="after")
    def _postmark_pair(self) -> WebhooksConfig:
        if (self.postmark_username is None) != (self.postmark_password is None):
            raise ValueError("postmark_username and postmark_password must be set together")
        return self


class BouncesConfig(Section):
    """Where bounces, complaints and unsubscribe mail come back (`newsletter inbound`)."""

    # Envelope senders are `<local>+<token>@<domain>` of this address; the
    # List-Unsubscribe mailto uses the same domain. Default: bounces@<sender domain>.
    address: str | None = None
    # The largest message `newsletter inbound` accepts (a DSN carrying a whole digest
    # is ~100 KB; anything much larger is not a bounce).
    max_message_bytes: int = Field(default=2_000_000, ge=10_000, le=50_000_000)
    webhooks: WebhooksConfig = WebhooksConfig()

    @field_validator("address")
    @classmethod
    def _plain_address(cls, value: str | None) -> str | None:
        if value is not None and not ADDRESS.match(value):
            raise ValueError(f"{value!r} is not a plain address like bounces@example.org (no '+')")
        return value
