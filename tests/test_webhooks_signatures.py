"""Webhooks that are not provably from the relay change nothing: a wrong key, a tampered
body, a stale or reused Mailgun signature, an SNS certificate from anywhere but SNS."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.webhook_rig import Hooks, open_hooks, sns_key
from tests.webhook_support import (
    CERT_URL,
    CONFIRM_PREFIX,
    POSTMARK_USER,
    Prepared,
    SendGridKey,
    basic,
    fixture,
    mailgun_sign,
    post_sns,
    rsa_key,
    self_signed,
    sns_notification,
    sns_sign,
)


@pytest.fixture
def hooks(tmp_path: Path) -> Iterator[Hooks]:
    with open_hooks(tmp_path) as rig:
        yield rig


def assert_nothing_changed(hooks: Hooks) -> None:
    assert hooks.events() == []
    assert hooks.reader() == ("active", 0)


# --- Amazon SES through SNS ----------------------------------------------------------


def test_ses_accepts_signature_version_1(hooks: Hooks) -> None:
    notice = fixture("ses-bounce-permanent.json")
    message = sns_notification(notice, sns_key(), SignatureVersion="1")
    assert post_sns(hooks.client, message).status_code == 200
    assert hooks.reader() == ("active", 1)


def test_ses_refuses_a_message_signed_with_another_key(hooks: Hooks) -> None:
    message = sns_notification(fixture("ses-bounce-permanent.json"), rsa_key())
    assert post_sns(hooks.client, message).status_code == 403
    assert_nothing_changed(hooks)


def test_ses_refuses_a_message_changed_after_signing(hooks: Hooks) -> None:
    message = sns_notification(fixture("ses-bounce-transient.json"), sns_key())
    message["Message"] = message["Message"].replace('"Transient"', '"Permanent"')
    assert post_sns(hooks.client, message).status_code == 403
    assert_nothing_changed(hooks)


@pytest.mark.parametrize(
    "url",
    [
        "http://sns.eu-west-1.amazonaws.com/SimpleNotificationService-1.pem",
        "https://sns.eu-west-1.amazonaws.com.attacker.example/SimpleNotificationService-1.pem",
        "https://attacker.example/SimpleNotificationService-1.pem",
        "https://sns.eu-west-1.amazonaws.com@attacker.example/SimpleNotificationService-1.pem",
        "https://sns.eu-west-1.amazonaws.com:8443/SimpleNotificationService-1.pem",
        "https://s3.eu-west-1.amazonaws.com/SimpleNotificationService-1.pem",
    ],
)
def test_ses_never_fetches_a_certificate_from_anywhere_but_sns(hooks: Hooks, url: str) -> None:
    # The attacker's own certificate, which would verify their signature if fetched.
    attacker = rsa_key()
    hooks.sns.certificates[url] = self_signed(attacker)
    message = sns_notification(fixture("ses-complaint.json"), attacker, SigningCertURL=url)
    assert post_sns(hooks.client, message).status_code == 403
    assert hooks.sns.fetched == []
    assert_nothing_changed(hooks)


def test_ses_refuses_a_topic_that_is_not_configured(hooks: Hooks) -> None:
    other = "arn:aws:sns:eu-west-1:999999999999:someone-elses-topic"
    message = sns_notification(fixture("ses-complaint.json"), sns_key(), TopicArn=other)
    assert post_sns(hooks.client, message).status_code == 403
    assert_nothing_changed(hooks)


def test_ses_fetches_each_signing_certificate_once(hooks: Hooks) -> None:
    for twin in range(3):
        assert hooks.post("ses", "soft", twin=twin).status_code == 200
    assert hooks.sns.fetched == [CERT_URL]


def test_ses_answers_503_when_the_certificate_cannot_be_fetched(hooks: Hooks) -> None:
    url = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-rotated.pem"
    message = sns_notification(fixture("ses-complaint.json"), sns_key(), SigningCertURL=url)
    response = post_sns(hooks.client, message)
    assert response.status_code == 503  # SNS retries later
    assert_nothing_changed(hooks)


def test_ses_confirms_a_signed_subscription_of_its_topic(hooks: Hooks) -> None:
    confirmation = fixture("ses-subscription-confirmation.json")
    confirmation["SigningCertURL"] = CERT_URL
    sns_sign(confirmation, sns_key())
    response = post_sns(hooks.client, confirmation)
    assert response.status_code == 200 and response.json()["confirmed"] is True
    assert hooks.sns.fetched == [CERT_URL, confirmation["SubscribeURL"]]


@pytest.mark.parametrize("forged", ["unsigned", "foreign SubscribeURL"])
def test_ses_confirms_no_forged_subscription(hooks: Hooks, forged: str) -> None:
    confirmation = fixture("ses-subscription-confirmation.json")
    confirmation["SigningCertURL"] = CERT_URL
    if forged == "unsigned":
        confirmation["Signature"] = "AAAA"
    else:
        confirmation["SubscribeURL"] = "https://attacker.example/?Action=ConfirmSubscription"
        sns_sign(confirmation, sns_key())
    assert post_sns(hooks.client, confirmation).status_code == 403
    assert not any(url.startswith(CONFIRM_PREFIX) for url in hooks.sns.fetched)
    assert "https://attacker.example/?Action=ConfirmSubscription" not in hooks.sns.fetched


# --- Postmark ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [
        {},
        basic(POSTMARK_USER, "wrong-password-here"),
        basic("someone", "correct-horse-battery-staple"),
        {"authorization": "Bearer correct-horse-battery-staple"},
        {"authorization": "Basic not*base64"},
    ],
)
def test_postmark_without_its_credentials_gets_401(
    hooks: Hooks, authorization: dict[str, str]
) -> None:
    body = json.dumps(fixture("postmark-spam-complaint.json")).encode()
    headers = {"content-type": "application/json", **authorization}
    response = Prepared("postmark", body, headers).post(hooks.client)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Basic")
    assert_nothing_changed(hooks)


# --- Mailgun -------------------------------------------------------------------------


def post_mailgun(hooks: Hooks, payload: dict[str, object]) -> int:
    body = json.dumps(payload).encode()
    prepared = Prepared("mailgun", body, {"content-type": "application/json"})
    return int(prepared.post(hooks.client).status_code)


@pytest.mark.parametrize(
    ("key", "skew"),
    [
        ("key-" + "6" * 32, 0),  # another domain's key
        (None, -16 * 60),  # stale
        (None, 16 * 60),  # from the future
    ],
    ids=["another-key", "stale", "future"],
)
def test_mailgun_refuses_a_wrong_or_stale_signature(
    hooks: Hooks, key: str | None, skew: int
) -> None:
    # The time is read when the test runs, not when it is collected: a long run
    # would otherwise bring "16 minutes ahead" back within the window.
    signing: dict[str, object] = {"timestamp": int(time.time()) + skew}
    if key is not None:
        signing["key"] = key
    payload = mailgun_sign(fixture("mailgun-complained.json"), **signing)  # type: ignore[arg-type]
    assert post_mailgun(hooks, payload) == 403
    assert_nothing_changed(hooks)


def test_mailgun_refuses_a_signature_with_its_digest_changed(hooks: Hooks) -> None:
    payload = mailgun_sign(fixture("mailgun-complained.json"))
    digest = payload["signature"]["signature"]
    payload["signature"]["signature"] = ("0" if digest[0] != "0" else "1") + digest[1:]
    assert post_mailgun(hooks, payload) == 403
    assert_nothing_changed(hooks)


def test_mailgun_refuses_a_signature_used_before(hooks: Hooks) -> None:
    first = mailgun_sign(fixture("mailgun-failed-temporary.json"))
    assert post_mailgun(hooks, first) == 200
    # The signature covers no event: someone who saw it could attach it to theirs.
    forged = fixture("mailgun-complained.json")
    forged["signature"] = first["signature"]
    assert post_mailgun(hooks, forged) == 403
    assert hooks.reader() == ("active", 0)
    assert [kind for kind, _, _ in hooks.events()] == ["soft_bounce"]


# --- SendGrid ------------------------------------------------------------------------


def test_sendgrid_refuses_a_batch_signed_with_another_key(hooks: Hooks) -> None:
    body = json.dumps(fixture("sendgrid-spamreport.json")).encode()
    response = Prepared("sendgrid", body, SendGridKey().headers(body)).post(hooks.client)
    assert response.status_code == 403
    assert_nothing_changed(hooks)


def test_sendgrid_refuses_a_batch_changed_after_signing(hooks: Hooks) -> None:
    prepared = hooks.relays["sendgrid"].request("soft")
    prepared.body = prepared.body.replace(b'"blocked"', b'"bounce"')
    assert prepared.post(hooks.client).status_code == 403
    assert_nothing_changed(hooks)


@pytest.mark.parametrize("dropped", ["signature", "timestamp", "both"])
def test_sendgrid_refuses_a_batch_without_its_signature_headers(hooks: Hooks, dropped: str) -> None:
    prepared = hooks.relays["sendgrid"].request("complaint")
    for name in ("signature", "timestamp"):
        if dropped in (name, "both"):
            del prepared.headers[f"x-twilio-email-event-webhook-{name}"]
    assert prepared.post(hooks.client).status_code == 403
    assert_nothing_changed(hooks)


def test_sendgrid_refuses_a_signature_under_another_timestamp(hooks: Hooks) -> None:
    prepared = hooks.relays["sendgrid"].request("complaint")
    stamp = prepared.headers["x-twilio-email-event-webhook-timestamp"]
    prepared.headers["x-twilio-email-event-webhook-timestamp"] = str(int(stamp) + 1)
    assert prepared.post(hooks.client).status_code == 403
    assert_nothing_changed(hooks)
