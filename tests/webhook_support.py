"""The relays' side of the webhook tests: each provider's documented payloads (from
tests/fixtures/webhooks), signed the way that provider signs them, posted over HTTP.

SNS signs with a key whose certificate it serves from sns.<region>.amazonaws.com; here
a key and a self-signed certificate made with `cryptography`, served through the
fetcher injected at the app's only outer network edge (`FakeSns`).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import secrets
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from fastapi.testclient import TestClient
from httpx import Response

from newsletter.returns.webhooks import Unavailable

FIXTURES = Path(__file__).parent / "fixtures" / "webhooks"
TOPIC = "arn:aws:sns:eu-west-1:123456789012:ses-bounces"
CERT_URL = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-7506a1e35b36ef5a444dd1a8e7cc3ed8.pem"
CONFIRM_PREFIX = "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription"
POSTMARK_USER, POSTMARK_PASSWORD = "relay", "correct-horse-battery-staple"
MAILGUN_KEY = "key-" + "5" * 32
REPORTS = ("hard", "soft", "complaint")


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def self_signed(key: rsa.RSAPrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


class FakeSns:
    """Amazon's side of the network edge: serves certificates by URL and answers
    subscription confirmations; records every URL fetched."""

    def __init__(self, certificates: dict[str, bytes]) -> None:
        self.certificates = certificates
        self.fetched: list[str] = []

    def __call__(self, url: str) -> bytes:
        self.fetched.append(url)
        if url in self.certificates:
            return self.certificates[url]
        if url.startswith(CONFIRM_PREFIX):
            return b"<ConfirmSubscriptionResponse><SubscriptionArn>arn</SubscriptionArn>"
        raise Unavailable(f"{url}: HTTP 404")


def string_to_sign(message: dict[str, Any]) -> bytes:
    """As the SNS developer guide lists it, per message type."""
    if message["Type"] == "Notification":
        names = ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
    else:
        names = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]
    return "".join(f"{n}\n{message[n]}\n" for n in names if n in message).encode()


def sns_sign(message: dict[str, Any], key: rsa.RSAPrivateKey, version: str = "2") -> None:
    algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
    message["SignatureVersion"] = version
    signature = key.sign(string_to_sign(message), padding.PKCS1v15(), algorithm)
    message["Signature"] = base64.b64encode(signature).decode()


def sns_notification(
    notice: dict[str, Any], key: rsa.RSAPrivateKey, **fields: str
) -> dict[str, Any]:
    """An SES notice in the SNS envelope, signed (fields override before signing)."""
    message: dict[str, Any] = {
        "Type": "Notification",
        "MessageId": str(uuid.uuid4()),
        "TopicArn": TOPIC,
        "Subject": "Amazon SES Email Event Notification",
        "Message": json.dumps(notice),
        "Timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "SigningCertURL": CERT_URL,
        "UnsubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=x",
        **fields,
    }
    sns_sign(message, key, fields.get("SignatureVersion", "2"))
    return message


def post_sns(client: TestClient, message: dict[str, Any]) -> Response:
    # SNS posts its JSON as text/plain.
    return client.post(
        "/webhooks/ses",
        content=json.dumps(message).encode(),
        headers={
            "content-type": "text/plain; charset=UTF-8",
            "x-amz-sns-message-type": message.get("Type", ""),
            "x-amz-sns-message-id": message.get("MessageId", ""),
        },
    )


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"authorization": f"Basic {token}"}


def mailgun_sign(
    payload: dict[str, Any],
    key: str = MAILGUN_KEY,
    timestamp: int | None = None,
    token: str | None = None,
) -> dict[str, Any]:
    signed = copy.deepcopy(payload)
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    token = token or secrets.token_hex(25)  # Mailgun's tokens are 50 characters
    digest = hmac.new(key.encode(), (stamp + token).encode(), hashlib.sha256).hexdigest()
    signed["signature"] = {"timestamp": stamp, "token": token, "signature": digest}
    return signed


class SendGridKey:
    """A Signed Event Webhook key pair; `public` is what SendGrid shows to configure."""

    def __init__(self) -> None:
        self.private = ec.generate_private_key(ec.SECP256R1())
        der = self.private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.public = base64.b64encode(der).decode()

    def headers(self, body: bytes, timestamp: str | None = None) -> dict[str, str]:
        stamp = timestamp or str(int(time.time()))
        signature = self.private.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return {
            "content-type": "application/json",
            "x-twilio-email-event-webhook-signature": base64.b64encode(signature).decode(),
            "x-twilio-email-event-webhook-timestamp": stamp,
        }


FILES = {
    "ses": {
        "hard": "ses-bounce-permanent.json",
        "soft": "ses-bounce-transient.json",
        "complaint": "ses-complaint.json",
    },
    "postmark": {
        "hard": "postmark-hard-bounce.json",
        "soft": "postmark-soft-bounce.json",
        "complaint": "postmark-spam-complaint.json",
    },
    "mailgun": {
        "hard": "mailgun-failed-permanent.json",
        "soft": "mailgun-failed-temporary.json",
        "complaint": "mailgun-complained.json",
    },
    "sendgrid": {
        "hard": "sendgrid-bounce.json",
        "soft": "sendgrid-blocked.json",
        "complaint": "sendgrid-spamreport.json",
    },
}


class Prepared:
    def __init__(self, provider: str, body: bytes, headers: dict[str, str]) -> None:
        self.provider, self.body, self.headers = provider, body, headers

    def post(self, client: TestClient) -> Response:
        return client.post(f"/webhooks/{self.provider}", content=self.body, headers=self.headers)


class SesRelay:
    name = "ses"

    def __init__(self, key: rsa.RSAPrivateKey) -> None:
        self.key = key

    def request(self, report: str, twin: int = 0) -> Prepared:
        notice = fixture(FILES[self.name][report])
        notice[notice["notificationType"].lower()]["feedbackId"] += f"-{twin}"
        # SNS keeps a message's MessageId when it sends it again.
        message_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{report}/{twin}"))
        message = sns_notification(notice, self.key, MessageId=message_id)
        return Prepared(self.name, json.dumps(message).encode(), {"content-type": "text/plain"})


class PostmarkRelay:
    name = "postmark"

    def request(self, report: str, twin: int = 0) -> Prepared:
        record = fixture(FILES[self.name][report])
        record["ID"] += 1000 * twin
        headers = {"content-type": "application/json", **basic(POSTMARK_USER, POSTMARK_PASSWORD)}
        return Prepared(self.name, json.dumps(record).encode(), headers)


class MailgunRelay:
    name = "mailgun"

    def request(self, report: str, twin: int = 0) -> Prepared:
        payload = fixture(FILES[self.name][report])
        payload["event-data"]["id"] += f"-{twin}"
        body = json.dumps(mailgun_sign(payload)).encode()
        return Prepared(self.name, body, {"content-type": "application/json"})


class SendGridRelay:
    name = "sendgrid"

    def __init__(self, key: SendGridKey) -> None:
        self.key = key

    def request(self, report: str, twin: int = 0) -> Prepared:
        events = fixture(FILES[self.name][report])
        for event in events:
            event["sg_event_id"] += f"-{twin}"
        body = json.dumps(events).encode()
        return Prepared(self.name, body, self.key.headers(body))
